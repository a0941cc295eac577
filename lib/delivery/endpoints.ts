/**
 * The runbook's endpoint cache (`router:endpoint:<id>`) and the hand-shake between drains waiting
 * for a wake and the waker that completes it (parked drain jobs are promoted when the pod is ready).
 */
import type { ConnectionOptions, Queue } from 'bullmq';
import type { RedisClient } from '../redis.js';
import { endpointKey, parkedDrainsKey as parkedKey, staleEndpointKey, startingNoticeKey, wakeFailedKey, wakeLockKey } from '../keys.js';
import { callScript } from '../redis-scripts.js';
import { decodeWakeFailure, encodeWakeFailure, type WakeFailure } from '../wake/wake-contract.js';
import { WAKE_DONE_CHANNEL } from './endpoint-watch.js';
import { promoteWhenDelayed } from './promote-job.js';
import { ShardQueues } from './shard-queues.js';
import { DeliveryLayout } from './shards.js';

/** How long a failed wake is remembered: drains waiting on it read it within seconds. */
const WAKE_FAILURE_TTL_S = 120;


export interface Endpoint {
  host: string;
  port: number;
  /** `host:port` as stored. */
  address: string;
}

export function parseEndpoint(address: string): Endpoint | undefined {
  const i = address.lastIndexOf(':');
  if (i <= 0) return undefined;
  const port = Number(address.slice(i + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { host: address.slice(0, i), port, address };
}

export class Endpoints {
  private readonly redis: RedisClient;
  readonly ttlS: number;

  constructor(options: { redis: RedisClient; ttlS?: number }) {
    if (!options.redis) throw new TypeError('Endpoints: redis is required');
    this.redis = options.redis;
    this.ttlS = options.ttlS ?? 86_400;
  }

  async get(tenantId: string): Promise<Endpoint | undefined> {
    const address = await this.redis.get(endpointKey(tenantId));
    return address ? parseEndpoint(address) : undefined;
  }

  async set(tenantId: string, address: string): Promise<void> {
    await this.redis.set(endpointKey(tenantId), address, 'EX', this.ttlS);
  }

  /**
   * Sets the endpoint and announces the wake's end in one round trip: a pipeline on one connection,
   * SET before PUBLISH, so a drain woken by the announcement reads the new endpoint. (PUBLISH names
   * no key: on a cluster it goes with the SET and the cluster bus carries it to every node.)
   */
  async publish(tenantId: string, address: string): Promise<void> {
    const results = await this.redis.pipeline().set(endpointKey(tenantId), address, 'EX', this.ttlS).publish(WAKE_DONE_CHANNEL, tenantId).exec();
    const failed = results?.find(([err]) => err)?.[0];
    if (failed) throw failed;
  }

  /** Tells drains waiting in place (EndpointWatch) that a wake of this tenant ended, ready or not. */
  async announceWakeDone(tenantId: string): Promise<void> {
    await this.redis.publish(WAKE_DONE_CHANNEL, tenantId);
  }

  /** Drops the endpoint only if it still is `address` (a newer wake's endpoint stays). */
  async invalidate(tenantId: string, address: string): Promise<boolean> {
    return (await callScript<number>(this.redis, 'ztmCompareAndDelete', endpointKey(tenantId), address)) === 1;
  }

  async drop(tenantId: string): Promise<void> {
    await this.redis.del(endpointKey(tenantId));
  }

  /** True once per wake: the caller sends "⏳ Starting up..." to the triggering chat. */
  async claimStartingNotice(tenantId: string, ttlS: number): Promise<boolean> {
    return (await this.redis.set(startingNoticeKey(tenantId), '1', 'EX', ttlS, 'NX')) === 'OK';
  }

  async isWaking(tenantId: string): Promise<boolean> {
    return (await this.redis.exists(wakeLockKey(tenantId))) === 1;
  }

  /**
   * Registers a drain job to be promoted as soon as the wake completes: `<queue>\t<job id>` (the
   * job's shard queue, so the waker needs no knowledge of the layout), or the bare id for `{forward}`.
   */
  async park(tenantId: string, jobId: string, queueName?: string): Promise<void> {
    const entry = queueName && queueName !== DeliveryLayout.LEGACY.shards[0]?.queue ? `${queueName}\t${jobId}` : jobId;
    await this.redis.multi().sadd(parkedKey(tenantId), entry).expire(parkedKey(tenantId), 3600).exec();
  }

  async recordWakeFailure(tenantId: string, failure: WakeFailure): Promise<void> {
    await this.redis.set(wakeFailedKey(tenantId), encodeWakeFailure(failure), 'EX', WAKE_FAILURE_TTL_S);
  }

  async lastWakeFailure(tenantId: string): Promise<WakeFailure | undefined> {
    return decodeWakeFailure(await this.redis.get(wakeFailedKey(tenantId)));
  }

  async clearWakeFailure(tenantId: string): Promise<void> {
    await this.redis.del(wakeFailedKey(tenantId));
  }

  /**
   * Counts a stale endpoint met by one update (the agent there refused the tenant's credential) and
   * returns how many it met within `ttlS`: the drainer re-wakes on the first, dead-letters on the next.
   */
  async noteStaleEndpoint(tenantId: string, chatId: string, updateId: number, ttlS: number): Promise<number> {
    const key = staleEndpointKey(tenantId, chatId, updateId);
    const [[, n]] = (await this.redis.multi().incr(key).expire(key, ttlS).exec()) as [[Error | null, number], unknown];
    return n;
  }

  /** Forgets the stale endpoints an update met (it left the mailbox, e.g. as a dead letter). */
  async clearStaleEndpoints(tenantId: string, chatId: string, updateId: number): Promise<void> {
    await this.redis.del(staleEndpointKey(tenantId, chatId, updateId));
  }

  /**
   * Wakes every drain parked on this tenant: called by the waker after a wake succeeded or failed.
   * A drain that parked a moment ago may not be delayed yet; retry its promotion briefly.
   */
  async promoteParked(tenantId: string, forwardQueue: Queue): Promise<number> {
    const [[, ids]] = (await this.redis.multi().smembers(parkedKey(tenantId)).del(parkedKey(tenantId)).exec()) as [[Error | null, string[]]];
    const promoted = await Promise.all(ids.map((entry) => {
      const tab = entry.indexOf('\t');
      if (tab < 0) return promoteWhenDelayed(forwardQueue, entry);
      return promoteWhenDelayed(this.queuesOn(forwardQueue).named(entry.slice(0, tab)), entry.slice(tab + 1));
    }));
    return promoted.filter(Boolean).length;
  }

  private shardQueues: ShardQueues | undefined;

  /** Shard queues opened on the connection of the caller's `{forward}` queue. */
  private queuesOn(forwardQueue: Queue): ShardQueues {
    this.shardQueues ??= new ShardQueues(forwardQueue.opts.connection as ConnectionOptions, DeliveryLayout.LEGACY);
    return this.shardQueues;
  }
}
