/**
 * Whether this host's agents are sandboxed, as the platform found at its start (lib/util/
 * agent-isolation.ts): written once by `npm start` beside the warm pool's report, read by
 * `ztm status`, so the operator sees the same line the start printed.
 */
import type { RedisClient } from '../redis.js';
import { isolationKey } from '../keys.js';


export interface IsolationReport {
  sandboxed: boolean;
  /** `agents sandboxed (...)` or `agents are NOT sandboxed: <reason>`. */
  line: string;
  reported_at: string;
}

export async function reportIsolation(redis: RedisClient, r: { sandboxed: boolean; line: string }, now = Date.now()): Promise<void> {
  await redis.hset(isolationKey, { sandboxed: r.sandboxed ? '1' : '0', line: r.line, at: String(now) });
}

/** Null when no platform of the embedded default reported (e.g. the Kubernetes runtime). */
export async function readIsolation(redis: RedisClient): Promise<IsolationReport | null> {
  const h = await redis.hgetall(isolationKey);
  const at = Number(h.at);
  if (!h.line || !Number.isFinite(at)) return null;
  return { sandboxed: h.sandboxed === '1', line: h.line, reported_at: new Date(at).toISOString() };
}
