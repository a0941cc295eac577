/**
 * The drain queues of a delivery layout (lib/delivery/shards.ts): one BullMQ queue per shard, opened
 * lazily on one shared connection. Queues opened here share the caller's connection; closing them
 * leaves it open.
 */
import { Queue, type ConnectionOptions } from 'bullmq';
import { QUEUE_PREFIX } from '../queues.js';
import type { DeliveryLayout, DeliveryShard } from './shards.js';

export class ShardQueues {
  private readonly open = new Map<string, Queue>();

  constructor(private readonly connection: ConnectionOptions, readonly layout: DeliveryLayout) {
    if (!connection || !layout) throw new TypeError('ShardQueues: connection and layout are required');
  }

  /** Queues of another layout on the same connection (the legacy one, for its leftovers). */
  withLayout(layout: DeliveryLayout): ShardQueues {
    return new ShardQueues(this.connection, layout);
  }

  /** The queue named `name` on this connection (any name: a parked job's recorded queue). */
  named(name: string): Queue {
    let q = this.open.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.connection, prefix: QUEUE_PREFIX });
      q.on('error', () => undefined); // surfaced by the calls that fail
      this.open.set(name, q);
    }
    return q;
  }

  forShard(shard: DeliveryShard): Queue {
    return this.named(shard.queue);
  }

  /** The queue of the tenant's drain jobs. */
  of(tenantId: string): Queue {
    return this.forShard(this.layout.shardOf(tenantId));
  }

  all(): Queue[] {
    return this.layout.shards.map((s) => this.forShard(s));
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.open.values()].map((q) => q.close()));
    this.open.clear();
  }
}
