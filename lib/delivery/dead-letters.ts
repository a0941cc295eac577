/**
 * Updates whose delivery failed for good. They leave the chat's mailbox (so the chat moves on) in
 * the same atomic step that stores them here; operators list them and re-deliver them with ztm.
 */
import type { RedisClient } from '../redis.js';
import { NotFoundError } from '../errors.js';
import { attemptsKey, chatLeaseKey, deadDataKey, deadIndexKey, mailboxKey, outboxKey, scheduledKey, seenKey } from '../keys.js';
import { callScript } from '../redis-scripts.js';
import { attemptsField, scheduledMember, type Mailbox } from './mailbox.js';
import { decodeEnvelope } from './update.js';
import { DeliveryLayout, deliveryLayout, type DeliveryShard } from './shards.js';

/**
 * The legacy layout's dead-letter index (`{mbox}:dead`): still read (letters from before sharding),
 * never written. Each shard has its own (keys.ts deadIndexKey), beside the mailboxes they leave.
 */
export const DEAD_LETTER_INDEX = deadIndexKey(DeliveryLayout.LEGACY.shards[0]!.tag);

export interface DeadLetter {
  id: string;
  tenant_id: string;
  chat_id: string;
  update_id: number;
  failed_at: string;
  attempts: number;
  reason: string;
  envelope: string;
}

export type PublicDeadLetter = Omit<DeadLetter, 'envelope'>;

export class DeadLetterStore {
  private readonly redis: RedisClient;
  /** Where moveHead writes (the drained mailbox's layout). */
  readonly layout: DeliveryLayout;
  /** Every shard whose letters are read: the layout's and the legacy one. */
  private readonly readShards: DeliveryShard[];

  constructor(options: { redis: RedisClient; layout?: DeliveryLayout }) {
    if (!options.redis) throw new TypeError('DeadLetterStore: redis is required');
    this.redis = options.redis;
    this.layout = options.layout ?? deliveryLayout();
    const current = options.layout?.legacy ? deliveryLayout() : this.layout;
    this.readShards = [...DeliveryLayout.LEGACY.shards, ...current.shards];
  }

  /** The shards that may hold letter `id` (`<tenant>.<chat>.<update>`): its tenant's, then the legacy one. */
  private shardsOf(id: string): DeliveryShard[] {
    const tenantId = id.split('.')[0] ?? '';
    const own = (this.layout.legacy ? deliveryLayout() : this.layout).shardOf(tenantId);
    return [own, ...DeliveryLayout.LEGACY.shards];
  }

  private async readLetter(id: string): Promise<{ raw: string; shard: DeliveryShard } | undefined> {
    for (const shard of this.shardsOf(id)) {
      const raw = await this.redis.hget(deadDataKey(shard.tag), id);
      if (raw) return { raw, shard };
    }
    return undefined;
  }

  /**
   * Moves the chat's head to the store if this drainer still holds the lease, clearing its attempt
   * counter and answer outbox in the same step; -1 lease lost, 0 head moved. A malformed envelope
   * (no update id) is stored too (update_id -1, an id of its own), so it cannot hold its chat forever.
   */
  async moveHead(tenantId: string, chatId: string, envelope: string, leaseToken: string, attempts: number, reason: string): Promise<number> {
    let updateId: number;
    try {
      ({ updateId } = decodeEnvelope(envelope));
    } catch {
      updateId = -1;
    }
    const letter: DeadLetter = {
      id: updateId < 0 ? `${tenantId}.${chatId}.malformed-${Date.now()}` : `${tenantId}.${chatId}.${updateId}`, tenant_id: tenantId, chat_id: chatId, update_id: updateId,
      failed_at: new Date().toISOString(), attempts, reason: reason.slice(0, 500), envelope,
    };
    const { tag } = this.layout.shardOf(tenantId);
    return callScript<number>(this.redis, 'mbDeadLetter', mailboxKey(tenantId, chatId, this.layout), chatLeaseKey(tenantId, chatId, this.layout),
      deadIndexKey(tag), deadDataKey(tag), scheduledKey(tag), attemptsKey(tenantId, this.layout), outboxKey(tenantId, chatId, this.layout), envelope, leaseToken, letter.id, JSON.stringify(letter), Date.now(), scheduledMember(tenantId, chatId),
      attemptsField(tenantId, chatId, updateId));
  }

  async count(): Promise<number> {
    const counts = await Promise.all(this.readShards.map((s) => this.redis.zcard(deadIndexKey(s.tag))));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Dead letters per shard (`ztm status --shards`), legacy first. */
  async countByShard(): Promise<Array<{ shard: DeliveryShard; count: number }>> {
    return Promise.all(this.readShards.map(async (shard) => ({ shard, count: await this.redis.zcard(deadIndexKey(shard.tag)) })));
  }

  /** One dead letter with its stored update (envelope), for the dashboard. */
  async get(id: string): Promise<DeadLetter | undefined> {
    const found = await this.readLetter(id);
    return found ? (JSON.parse(found.raw) as DeadLetter) : undefined;
  }

  /** Dead letters newest first, positions `start`..`end` inclusive over every shard, with their envelopes. */
  async page(start: number, end: number): Promise<DeadLetter[]> {
    const perShard = await Promise.all(this.readShards.map(async (shard) => {
      const flat = await this.redis.zrevrange(deadIndexKey(shard.tag), 0, end, 'WITHSCORES');
      const out: Array<{ id: string; at: number; shard: DeliveryShard }> = [];
      for (let i = 0; i < flat.length; i += 2) out.push({ id: flat[i] as string, at: Number(flat[i + 1]), shard });
      return out;
    }));
    const picked = perShard.flat().sort((a, b) => b.at - a.at).slice(start, end + 1);
    if (picked.length === 0) return [];
    const values = await Promise.all(picked.map((p) => this.redis.hget(deadDataKey(p.shard.tag), p.id)));
    return values.filter((v): v is string => Boolean(v)).map((v) => JSON.parse(v) as DeadLetter);
  }

  async list(options: { tenantId?: string; limit?: number } = {}): Promise<PublicDeadLetter[]> {
    const out: PublicDeadLetter[] = [];
    const limit = options.limit ?? 1000;
    const shards = options.tenantId ? this.shardsOf(`${options.tenantId}.`) : this.readShards;
    for (const shard of shards) {
      const ids = await this.redis.zrange(deadIndexKey(shard.tag), 0, -1);
      for (let i = 0; i < ids.length && out.length < limit; i += 200) {
        const batch = ids.slice(i, i + 200);
        const values = await this.redis.hmget(deadDataKey(shard.tag), ...batch);
        for (const v of values) {
          if (!v) continue;
          const { envelope: _envelope, ...letter } = JSON.parse(v) as DeadLetter;
          if (!options.tenantId || letter.tenant_id === options.tenantId) out.push(letter);
          if (out.length >= limit) break;
        }
      }
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * Delivers a dead letter again: it re-enters its chat's mailbox at the tail (an operator's explicit
   * choice, so it may now follow newer updates of that chat) and leaves the store. A letter of the
   * legacy layout re-enters the mailbox's (sharded) layout.
   */
  async retry(mailbox: Mailbox, id: string): Promise<PublicDeadLetter> {
    const found = await this.readLetter(id);
    if (!found) throw new NotFoundError(`dead letter ${id} not found`);
    const letter = JSON.parse(found.raw) as DeadLetter;
    const { updateId, raw: body } = decodeEnvelope(letter.envelope);
    await this.redis.zrem(seenKey(letter.tenant_id, mailbox.layout), String(updateId));
    await mailbox.accept(letter.tenant_id, letter.chat_id, updateId, body);
    await this.redis.multi().hdel(deadDataKey(found.shard.tag), id).zrem(deadIndexKey(found.shard.tag), id).exec();
    const { envelope: _envelope, ...rest } = letter;
    return rest;
  }

  async retryAll(mailbox: Mailbox, tenantId?: string): Promise<{ retried: number }> {
    let retried = 0;
    for (const letter of await this.list({ ...(tenantId ? { tenantId } : {}), limit: 100_000 })) {
      await this.retry(mailbox, letter.id);
      retried++;
    }
    return { retried };
  }
}
