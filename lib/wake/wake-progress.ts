/**
 * Where a tenant's wake is, for the operator: the waker records the runtime's start phases
 * (lib/runtime/runtime.ts StartPhase) in a small hash beside the wake lock, and the last failed wake
 * for days; `ztm tenant wake` prints the phases as they change, `ztm tenant get` shows both.
 * Written on phase changes only (a handful per wake), never per update or per heartbeat.
 */
import type { RedisClient } from '../redis.js';
import { lastWakeFailureKey, wakeProgressKey } from '../keys.js';
import { redactSecrets } from '../redact.js';
import type { StartPhase, StartProgress } from '../runtime/runtime.js';
import { decodeWakeFailure, encodeWakeFailure, type WakeFailure } from './wake-contract.js';

/** A start phase, or how the wake ended. */
export type WakePhase = StartPhase | 'failed';

/** What `ztm tenant wake` prints for each phase (the runbook's words). */
export const WAKE_PHASE_TEXT: Readonly<Record<WakePhase, string>> = Object.freeze({
  scheduling: 'scheduling',
  'waiting-for-node': 'waiting for a node',
  'pulling-image': 'pulling image',
  starting: 'starting',
  'restoring-state': 'restoring state',
  ready: 'ready',
  failed: 'failed',
});

const PHASES: ReadonlySet<string> = new Set(Object.keys(WAKE_PHASE_TEXT));

export interface WakeProgressView {
  /** Undefined until the runtime reported a first phase. */
  phase: WakePhase | undefined;
  detail: string | undefined;
  /** When the phase began (epoch ms). */
  since: number | undefined;
  /** When the wake took its lock (epoch ms). */
  started: number;
  /** When it gives up (epoch ms): its start's bound, COLD_START_TIMEOUT_S. */
  deadline: number | undefined;
}

/** How long an ended wake's last phase stays readable (a `ztm tenant wake` polling sees it). */
const ENDED_TTL_S = 60;
/** The last failure is history for `ztm tenant get`, not a signal: kept a week. */
const LAST_FAILURE_TTL_S = 7 * 86_400;
const MAX_DETAIL = 200;

export class WakeProgress {
  constructor(private readonly redis: RedisClient) {
    if (!redis) throw new TypeError('WakeProgress: redis is required');
  }

  /** A new wake holds the lock: the previous wake's phases go. */
  async begin(tenantId: string, o: { started: number; deadline: number; ttlS: number }): Promise<void> {
    const key = wakeProgressKey(tenantId);
    await this.redis.multi().del(key).hset(key, { started: String(o.started), deadline: String(o.deadline) }).expire(key, o.ttlS).exec();
  }

  /** A phase change (the caller skips repeats: heartbeats do not write). */
  async phase(tenantId: string, p: StartProgress | { phase: 'failed'; detail?: string }, ttlS: number): Promise<void> {
    const key = wakeProgressKey(tenantId);
    const detail = p.detail ? redactSecrets(p.detail).split('\n', 1)[0]?.slice(0, MAX_DETAIL) ?? '' : '';
    await this.redis.multi().hset(key, { phase: p.phase, detail, since: String(Date.now()) }).expire(key, ttlS).exec();
  }

  /** Keeps the hash as long as the lock it sits beside (called when the lock is renewed). */
  async touch(tenantId: string, ttlS: number): Promise<void> {
    await this.redis.expire(wakeProgressKey(tenantId), ttlS);
  }

  /** The wake ended: its last phase stays readable briefly. */
  async end(tenantId: string, outcome: 'ready' | 'failed', detail?: string): Promise<void> {
    await this.phase(tenantId, detail === undefined ? { phase: outcome } : { phase: outcome, detail }, ENDED_TTL_S);
  }

  async read(tenantId: string): Promise<WakeProgressView | undefined> {
    const h = await this.redis.hgetall(wakeProgressKey(tenantId));
    const started = num(h.started);
    if (started === undefined) return undefined;
    const phase = h.phase && PHASES.has(h.phase) ? (h.phase as WakePhase) : undefined;
    return { phase, detail: h.detail || undefined, since: num(h.since), started, deadline: num(h.deadline) };
  }

  /** Kept for `ztm tenant get` (the drains' copy, Endpoints.recordWakeFailure, lives two minutes). */
  async recordFailure(tenantId: string, failure: WakeFailure): Promise<void> {
    await this.redis.set(lastWakeFailureKey(tenantId), encodeWakeFailure({ ...failure, at: failure.at ?? Date.now() }), 'EX', LAST_FAILURE_TTL_S);
  }

  async lastFailure(tenantId: string): Promise<WakeFailure | undefined> {
    return decodeWakeFailure(await this.redis.get(lastWakeFailureKey(tenantId)));
  }

  /** The delete path: nothing of the tenant's wakes is left. */
  async forget(tenantId: string): Promise<void> {
    // Two commands: the keys are in different slots on a Redis Cluster.
    await Promise.all([this.redis.del(wakeProgressKey(tenantId)), this.redis.del(lastWakeFailureKey(tenantId))]);
  }
}

/** One line for `ztm`: `waiting for a node (0/3 nodes are available)`. */
export function wakePhaseLine(phase: WakePhase, detail: string | undefined): string {
  return detail ? `${WAKE_PHASE_TEXT[phase]} (${detail})` : WAKE_PHASE_TEXT[phase];
}

function num(v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}
