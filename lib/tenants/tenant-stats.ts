/**
 * Per-tenant figures the tenants view shows that nothing else records: the last wake durations
 * (written by the waker, once per wake) and the updates delivered per UTC day (written by the
 * forwarder, coalesced by services/forwarder/activity-flusher.ts, into a day's hash per delivery
 * shard: the counting spreads over a cluster's masters as the deliveries do). Bounded: at most
 * WAKE_TIMES_KEPT entries per tenant, a day's hash lives MESSAGES_DAY_TTL_S. Reads are one command
 * per key, never a pipeline across keys (on a Redis Cluster they hash to different slots).
 */
import type { RedisClient } from '../redis.js';
import { messagesDayKey, wakeTimesKey } from '../keys.js';
import { deliveryLayout, type DeliveryLayout } from '../delivery/shards.js';

/** Wake durations kept per tenant (newest first). */
export const WAKE_TIMES_KEPT = 50;
/** A tenant that has not woken for this long loses its list (a deleted tenant's goes with it). */
export const WAKE_TIMES_TTL_S = 30 * 86_400;
/** A day's message counts outlive the day by one more (yesterday stays readable). */
export const MESSAGES_DAY_TTL_S = 2 * 86_400;

/** `YYYY-MM-DD` of `now` in UTC: the day a message is counted on. */
export function utcDay(now = Date.now()): string {
  return new Date(now).toISOString().slice(0, 10);
}

/** Records one wake's duration: LPUSH + LTRIM + EXPIRE on the tenant's one key, in one MULTI. */
export async function recordWake(redis: RedisClient, tenantId: string, ms: number): Promise<void> {
  const key = wakeTimesKey(tenantId);
  await redis.multi().lpush(key, String(Math.max(0, Math.round(ms)))).ltrim(key, 0, WAKE_TIMES_KEPT - 1).expire(key, WAKE_TIMES_TTL_S).exec();
}

/** The day's count hash `tenantId` is counted in: its delivery shard's. */
export function messagesDayKeyOf(tenantId: string, day: string, layout: DeliveryLayout = deliveryLayout()): string {
  return messagesDayKey(day, layout.tagOf(tenantId));
}

/**
 * Counts one delivered update for today: one HINCRBY; the first count of a tenant that day also
 * sets the hash's TTL (a second command once per tenant per day, not per message). Should that
 * EXPIRE be lost, readers repair it (messagesToday).
 */
export async function countMessage(redis: RedisClient, tenantId: string, now = Date.now()): Promise<void> {
  const key = messagesDayKeyOf(tenantId, utcDay(now));
  if ((await redis.hincrby(key, tenantId, 1)) === 1) await redis.expire(key, MESSAGES_DAY_TTL_S);
}

/**
 * Today's count per tenant id (0 when none): one HMGET per delivery shard the ids are in, plus one
 * of the single hash earlier versions wrote (counts from before an upgrade that day); sets the TTL
 * of a hash that a lost EXPIRE left without one.
 */
export async function messagesToday(redis: RedisClient, tenantIds: readonly string[], now = Date.now()): Promise<number[]> {
  if (tenantIds.length === 0) return [];
  const day = utcDay(now);
  const byKey = new Map<string, string[]>();
  for (const id of new Set(tenantIds)) {
    const key = messagesDayKeyOf(id, day);
    const ids = byKey.get(key);
    if (ids) ids.push(id);
    else byKey.set(key, [id]);
  }
  const counts = new Map<string, number>();
  const add = (ids: readonly string[], values: ReadonlyArray<string | null>): void => {
    for (const [i, v] of values.entries()) if (v !== null) counts.set(ids[i] as string, (counts.get(ids[i] as string) ?? 0) + (Number(v) || 0));
  };
  const unique = [...new Set(tenantIds)];
  const read = async (key: string, ids: readonly string[]): Promise<void> => {
    const [values, ttl] = await Promise.all([redis.hmget(key, ...ids), redis.ttl(key)]);
    if (ttl === -1) await redis.expire(key, MESSAGES_DAY_TTL_S);
    add(ids, values);
  };
  await Promise.all([...[...byKey].map(([key, ids]) => read(key, ids)), read(messagesDayKey(day), unique)]);
  return tenantIds.map((id) => counts.get(id) ?? 0);
}

/** The recorded wake durations (ms, newest first) of each tenant: one LRANGE per tenant, sent together. */
export async function wakeTimes(redis: RedisClient, tenantIds: readonly string[]): Promise<number[][]> {
  return Promise.all(tenantIds.map(async (id) => (await redis.lrange(wakeTimesKey(id), 0, WAKE_TIMES_KEPT - 1)).map(Number).filter(Number.isFinite)));
}

/** Nearest-rank percentile (`p` in 0..100) of `values`; undefined when there are none. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}
