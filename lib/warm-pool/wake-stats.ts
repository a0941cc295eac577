/**
 * The record of recent wakes the pool-keeper sizes the warm pool from: written by the waker after
 * each wake that needed a member (a warm claim or a cold start), read by the pool-keeper. In Redis,
 * not in the waker's memory: the waker and the pool-keeper are separate Deployments, a waker may
 * have replicas, and a restarted keeper must not forget the demand.
 *
 * Bounded by count, whatever the rate: the last WAKE_RECORD_MAX wakes (`<ms>:w|c`) and the last
 * COLD_START_RECORD_MAX cold-start durations (`<ms>:<duration ms>`), both trimmed at every write.
 * Both keys share one hash tag, so one MULTI writes them on a Redis Cluster too.
 */
import type { RedisClient } from '../redis.js';
import { WARM_POOL_COLD_STARTS_KEY, WARM_POOL_WAKES_KEY } from '../keys.js';

/** Enough for a rate estimate over several minutes at a few wakes per second; a fuller record only shortens the window it covers. */
export const WAKE_RECORD_MAX = 5000;
export const COLD_START_RECORD_MAX = 32;

export type WakePath = 'warm' | 'cold';

export interface RecordedWake {
  at: number;
  path: WakePath;
}

export interface WakeStats {
  /** Newest first. */
  wakes: RecordedWake[];
  /** The record is full: wakes before the oldest one were dropped (the rate is measured since it). */
  full: boolean;
  /** Recent cold-start durations (ms), newest first. */
  coldStartsMs: number[];
}

/**
 * Records one wake. Paths other than warm and cold (already running, another wake in progress)
 * took no member and are not demand for the pool: ignored.
 */
export async function recordWakeDemand(redis: RedisClient, path: string, ms: number, now = Date.now()): Promise<void> {
  if (path !== 'warm' && path !== 'cold') return;
  const tx = redis.multi()
    .lpush(WARM_POOL_WAKES_KEY, `${now}:${path === 'warm' ? 'w' : 'c'}`)
    .ltrim(WARM_POOL_WAKES_KEY, 0, WAKE_RECORD_MAX - 1);
  if (path === 'cold' && Number.isFinite(ms) && ms >= 0) {
    tx.lpush(WARM_POOL_COLD_STARTS_KEY, `${now}:${Math.round(ms)}`).ltrim(WARM_POOL_COLD_STARTS_KEY, 0, COLD_START_RECORD_MAX - 1);
  }
  await tx.exec();
}

export async function readWakeStats(redis: RedisClient): Promise<WakeStats> {
  const [wakesRaw, coldRaw] = await Promise.all([
    redis.lrange(WARM_POOL_WAKES_KEY, 0, WAKE_RECORD_MAX - 1),
    redis.lrange(WARM_POOL_COLD_STARTS_KEY, 0, COLD_START_RECORD_MAX - 1),
  ]);
  const wakes: RecordedWake[] = [];
  for (const e of wakesRaw) {
    const [at, p] = e.split(':');
    const t = Number(at);
    // Anything else is not ours to interpret: skipped, never a failure of the keeper.
    if (Number.isFinite(t) && (p === 'w' || p === 'c')) wakes.push({ at: t, path: p === 'w' ? 'warm' : 'cold' });
  }
  const coldStartsMs: number[] = [];
  for (const e of coldRaw) {
    const d = Number(e.split(':')[1]);
    if (Number.isFinite(d) && d >= 0) coldStartsMs.push(d);
  }
  return { wakes, full: wakesRaw.length >= WAKE_RECORD_MAX, coldStartsMs };
}

/** Warm claims and cold starts among the wakes since `sinceMs`. */
export function countSince(stats: WakeStats, sinceMs: number): { warm: number; cold: number } {
  let warm = 0;
  let cold = 0;
  for (const w of stats.wakes) {
    if (w.at < sinceMs) continue;
    if (w.path === 'warm') warm++;
    else cold++;
  }
  return { warm, cold };
}
