/**
 * Decides the warm pool's size at each pool-keeper tick: reads the waker's record of recent wakes
 * (lib/warm-pool/wake-stats.ts), estimates the wake rate and the replenish time, and applies the
 * demand model (lib/warm-pool/demand-model.ts) between the configured bounds. The shrink hysteresis
 * lives in the warm pool report in Redis, not in this process: another keeper (or this one
 * restarted) takes over where the last one was.
 */
import type { RedisClient } from '../../lib/redis.js';
import { warmPoolKey } from '../../lib/keys.js';
import { readWakeStats, countSince } from '../../lib/warm-pool/wake-stats.js';
import { decide, ewmaRate, meanStartS, sizeFor, type HysteresisState, type PoolBounds } from '../../lib/warm-pool/demand-model.js';

export interface PoolSizerOptions {
  redis: RedisClient;
  bounds: PoolBounds;
  /** Wanted probability that a wake finds a ready member. */
  hitTarget: number;
  /** The keeper's tick (s): a claimed member is replaced at the next tick, so it adds to the replenish time. */
  tickS: number;
  /** Start time assumed until a cold start has been measured (s). */
  defaultStartS: number;
  /** Time constants of the rate estimate: the larger of a fast one (bursts count at once) and a slow one (memory). */
  fastTauS?: number;
  slowTauS?: number;
  /** How long the wanted size must stay below the kept one before the pool shrinks. */
  shrinkHoldS?: number;
  /** Window of the observed hit rate shown by `ztm status`. */
  observedWindowS?: number;
}

/** Everything one sizing looked at: logged with each change, reported to `ztm status`, exported as metrics. */
export interface Sizing {
  min: number;
  max: number;
  /** The size kept from now on. */
  size: number;
  previous: number;
  change?: 'grow' | 'shrink';
  /** The model's wanted size before the hysteresis. */
  wanted: number;
  ratePerS: number;
  /** The estimate before the cut-off (below one wake per slow window the rate counts as 0). */
  estimatedRatePerS: number;
  slowTauS: number;
  /** Replenish time used (s) and whether it was measured (else the default). */
  startS: number;
  startMeasured: boolean;
  load: number;
  /** Modelled probability that a wake finds a ready member at `size`. */
  probability: number;
  hitTarget: number;
  capped: boolean;
  /** Warm claims and cold starts recorded within observedWindowS. */
  observed: { warm: number; cold: number; windowS: number };
  hysteresis: HysteresisState;
  reason: string;
}

export class PoolSizer {
  private bounds: PoolBounds;
  private hitTarget: number;

  constructor(private readonly o: PoolSizerOptions) {
    if (!o.redis) throw new TypeError('PoolSizer: redis is required');
    this.bounds = { ...o.bounds };
    this.hitTarget = o.hitTarget;
    this.setBounds(o.bounds);
  }

  setBounds(b: PoolBounds, hitTarget = this.hitTarget): void {
    if (!Number.isInteger(b.min) || !Number.isInteger(b.max) || b.min < 0 || b.max < b.min) {
      throw new TypeError('PoolSizer: bounds must be whole numbers with 0 <= min <= max');
    }
    if (!(hitTarget > 0 && hitTarget < 1)) throw new TypeError('PoolSizer: hitTarget must be in (0, 1)');
    this.bounds = { ...b };
    this.hitTarget = hitTarget;
  }

  get currentBounds(): PoolBounds {
    return { ...this.bounds };
  }

  async size(now = Date.now()): Promise<Sizing> {
    const { min, max } = this.bounds;
    const [stats, saved] = await Promise.all([readWakeStats(this.o.redis), this.o.redis.hmget(warmPoolKey, 'target', 'low_since', 'low_max')]);
    const prev = savedState(saved, min);
    // The record's start is known only once it is full (older wakes were dropped).
    const since = stats.full ? stats.wakes.at(-1)?.at : undefined;
    const times = stats.wakes.map((w) => w.at);
    const slowTauS = this.o.slowTauS ?? 180;
    const estimated = Math.max(ewmaRate(times, now, this.o.fastTauS ?? 20, since), ewmaRate(times, now, slowTauS, since));
    // Less than one wake per slow window is no demand to keep members for (else any wake, however
    // long ago, would keep one member above WARM_POOL_MIN forever: the estimate never reaches 0).
    const ratePerS = estimated * slowTauS >= 1 ? estimated : 0;
    const measured = meanStartS(stats.coldStartsMs);
    const startS = (measured ?? this.o.defaultStartS) + this.o.tickS;
    const model = sizeFor({ min, max, ratePerS, replenishS: startS, hitTarget: this.hitTarget });
    const holdS = this.o.shrinkHoldS ?? 120;
    const d = decide(prev, model.size, now, holdS, { min, max });
    const size = d.state.size;
    const kept = sizeFor({ min: size, max: size, ratePerS, replenishS: startS, hitTarget: this.hitTarget });
    const windowS = this.o.observedWindowS ?? 600;
    const sizing: Sizing = {
      min, max, size, previous: prev.size, change: d.change, wanted: model.size, ratePerS, estimatedRatePerS: estimated, slowTauS, startS, startMeasured: measured !== undefined,
      load: model.load, probability: kept.probability, hitTarget: this.hitTarget, capped: model.capped,
      observed: { ...countSince(stats, now - windowS * 1000), windowS }, hysteresis: d.state, reason: '',
    };
    sizing.reason = reasonOf(sizing, holdS);
    return sizing;
  }
}

function savedState(saved: Array<string | null>, min: number): HysteresisState {
  const [target, lowSince, lowMax] = saved.map((v) => (v === null || v === '' ? undefined : Number(v)));
  const ok = (n: number | undefined): n is number => n !== undefined && Number.isInteger(n) && n >= 0;
  return {
    size: ok(target) ? target : min,
    lowSince: ok(lowSince) ? lowSince : null,
    lowMax: ok(lowMax) ? lowMax : 0,
  };
}

/** One line an operator can read: why the pool has the size it has. */
export function reasonOf(s: Omit<Sizing, 'reason'>, holdS: number): string {
  if (s.min === s.max) return `fixed size ${s.size} (WARM_POOL_TARGET)`;
  const p = `P(hit) ${s.probability.toFixed(3)}`;
  let why: string;
  if (s.load === 0) {
    why = s.estimatedRatePerS > 0 ? `fewer than one wake per ${s.slowTauS} s (${s.estimatedRatePerS.toFixed(4)}/s): WARM_POOL_MIN ${s.min}` : `no recent wakes: WARM_POOL_MIN ${s.min}`;
  } else {
    const start = `${s.startS.toFixed(1)} s replenish${s.startMeasured ? '' : ' (assumed: no cold start measured yet)'}`;
    why = `${s.ratePerS.toFixed(3)} wakes/s × ${start} = load ${s.load.toFixed(2)}: `;
    if (s.capped && s.wanted >= s.size) why += `capped at WARM_POOL_MAX ${s.max}, ${p} < target ${s.hitTarget}`;
    else if (s.wanted === s.min && s.wanted < s.size) why += `wants WARM_POOL_MIN ${s.min}`;
    else why += `${s.wanted} members give P(hit) >= ${s.hitTarget}`;
  }
  if (s.change === 'shrink') return `${why}; less wanted for ${holdS} s: down to ${s.size} (${p})`;
  if (s.wanted < s.size) return `${why}; keeping ${s.size} (${p}) until less has been wanted for ${holdS} s`;
  return why;
}
