/**
 * Updates whose delivery failed for good. They leave the chat's mailbox (so the chat moves on) in
 * the same atomic step that stores them here; operators list them and re-deliver them with ztm.
 */
import type { RedisClient } from '../redis.js';
import { NotFoundError } from '../errors.js';
import { attemptsKey, chatLeaseKey, mailboxKey, outboxKey, scheduledKey, seenKey } from '../keys.js';
import { callScript } from '../redis-scripts.js';
import { attemptsField, scheduledMember, type Mailbox } from './mailbox.js';
import { decodeEnvelope } from './update.js';

/** Zset of dead-letter ids scored by failure time (ms); exported for the status and metrics readers. */
export const DEAD_LETTER_INDEX = '{mbox}:dead';
const INDEX = DEAD_LETTER_INDEX;
const DATA = '{mbox}:dead:data';

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

  constructor(options: { redis: RedisClient }) {
    if (!options.redis) throw new TypeError('DeadLetterStore: redis is required');
    this.redis = options.redis;
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
    return callScript<number>(this.redis, 'mbDeadLetter', mailboxKey(tenantId, chatId), chatLeaseKey(tenantId, chatId), INDEX, DATA, scheduledKey,
      attemptsKey, outboxKey(tenantId, chatId), envelope, leaseToken, letter.id, JSON.stringify(letter), Date.now(), scheduledMember(tenantId, chatId),
      attemptsField(tenantId, chatId, updateId));
  }

  async count(): Promise<number> {
    return this.redis.zcard(INDEX);
  }

  /** One dead letter with its stored update (envelope), for the dashboard. */
  async get(id: string): Promise<DeadLetter | undefined> {
    const raw = await this.redis.hget(DATA, id);
    return raw ? (JSON.parse(raw) as DeadLetter) : undefined;
  }

  /** Dead letters newest first, positions `start`..`end` inclusive, with their envelopes. */
  async page(start: number, end: number): Promise<DeadLetter[]> {
    const ids = await this.redis.zrevrange(INDEX, start, end);
    if (ids.length === 0) return [];
    const values = await this.redis.hmget(DATA, ...ids);
    return values.filter((v): v is string => Boolean(v)).map((v) => JSON.parse(v) as DeadLetter);
  }

  async list(options: { tenantId?: string; limit?: number } = {}): Promise<PublicDeadLetter[]> {
    const ids = await this.redis.zrange(INDEX, 0, -1);
    const out: PublicDeadLetter[] = [];
    const limit = options.limit ?? 1000;
    for (let i = 0; i < ids.length && out.length < limit; i += 200) {
      const batch = ids.slice(i, i + 200);
      const values = await this.redis.hmget(DATA, ...batch);
      for (const v of values) {
        if (!v) continue;
        const { envelope: _envelope, ...letter } = JSON.parse(v) as DeadLetter;
        if (!options.tenantId || letter.tenant_id === options.tenantId) out.push(letter);
        if (out.length >= limit) break;
      }
    }
    return out;
  }

  /**
   * Delivers a dead letter again: it re-enters its chat's mailbox at the tail (an operator's explicit
   * choice, so it may now follow newer updates of that chat) and leaves the store.
   */
  async retry(mailbox: Mailbox, id: string): Promise<PublicDeadLetter> {
    const raw = await this.redis.hget(DATA, id);
    if (!raw) throw new NotFoundError(`dead letter ${id} not found`);
    const letter = JSON.parse(raw) as DeadLetter;
    const { updateId, raw: body } = decodeEnvelope(letter.envelope);
    await this.redis.del(seenKey(letter.tenant_id, updateId));
    await mailbox.accept(letter.tenant_id, letter.chat_id, updateId, body);
    await this.redis.multi().hdel(DATA, id).zrem(INDEX, id).exec();
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
