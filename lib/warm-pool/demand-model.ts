/**
 * How many warm members the pool needs so that a wake finds a ready one with a stated probability.
 * Pure: the pool-keeper feeds it the recent wakes and cold-start durations (lib/warm-pool/wake-stats.ts).
 *
 * The model. Every wake that finds a ready member claims it, and the pool-keeper starts a
 * replacement that is ready `replenish` seconds later; a wake that finds none starts cold and takes
 * no member. So the n members are n servers of a loss system: a claimed member is "busy" until its
 * replacement is ready, and a wake arriving while all n are busy misses. With wakes arriving as a
 * Poisson process of rate λ the miss probability is Erlang's B formula B(n, λ·replenish), whatever
 * the distribution of start times (only their mean matters). The size is the smallest n with
 * 1 - B(n, a) >= the hit target, clamped to [min, max].
 *
 * The rate is an exponentially weighted estimate over the recorded wakes (time constant `tau`), so
 * a burst raises it at once and it decays smoothly after. Growing is immediate; shrinking waits
 * until the wanted size has stayed below the current one for `shrinkHoldS` and then goes to the
 * largest size wanted during that hold, so the pool does not flap with every quiet minute.
 */

export interface PoolBounds {
  min: number;
  max: number;
}

/** Erlang B: the probability that a wake finds none of `n` members ready at offered load `a` (= λ·replenish). */
export function erlangB(n: number, a: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError('erlangB: n must be a whole number >= 0');
  if (!(a >= 0) || !Number.isFinite(a)) throw new RangeError('erlangB: a must be a finite number >= 0');
  // The standard recursion: stable for any n (no factorials).
  let b = 1;
  for (let k = 1; k <= n; k++) b = (a * b) / (k + a * b);
  return b;
}

/** The probability that a wake finds a ready member with `n` members at offered load `a`. */
export function hitProbability(n: number, a: number): number {
  return 1 - erlangB(n, a);
}

export interface SizeInput extends PoolBounds {
  /** Wakes per second that need a member (warm claims and cold starts). */
  ratePerS: number;
  /** Seconds from a claim until its replacement is ready (measured start time + the keeper's tick). */
  replenishS: number;
  /** Wanted probability that a wake finds a ready member, in (0, 1). */
  hitTarget: number;
}

export interface SizeAnswer {
  /** The size the model wants, clamped to [min, max]. */
  size: number;
  /** Modelled hit probability at that size. */
  probability: number;
  /** Offered load λ·replenish: the members busy being replaced, on average. */
  load: number;
  /** True when max was reached before the target probability (the pool is capped, not sized). */
  capped: boolean;
}

/** The smallest size in [min, max] whose modelled hit probability reaches the target. */
export function sizeFor(i: SizeInput): SizeAnswer {
  checkBounds(i);
  if (!(i.hitTarget > 0 && i.hitTarget < 1)) throw new RangeError('sizeFor: hitTarget must be in (0, 1)');
  if (!(i.ratePerS >= 0) || !Number.isFinite(i.ratePerS)) throw new RangeError('sizeFor: ratePerS must be a finite number >= 0');
  if (!(i.replenishS >= 0) || !Number.isFinite(i.replenishS)) throw new RangeError('sizeFor: replenishS must be a finite number >= 0');
  const load = i.ratePerS * i.replenishS;
  // No demand: nothing to size for; the floor is the operator's choice.
  if (load === 0) return { size: i.min, probability: i.min > 0 ? 1 : 0, load, capped: false };
  let b = 1;
  for (let n = 1; n <= i.max; n++) {
    b = (load * b) / (n + load * b);
    if (n >= i.min && 1 - b >= i.hitTarget) return { size: n, probability: 1 - b, load, capped: false };
  }
  const size = i.max;
  return { size, probability: size === 0 ? 0 : 1 - b, load, capped: true };
}

/**
 * Exponentially weighted wake rate (per second) at `now` from the wakes' times (ms), time constant
 * `tauS`. `sinceMs`: where the record begins (its oldest entry when it is full, or when recording
 * started); the weight before it is unknown, so the estimate is normalised over [sinceMs, now] only
 * (no history: not biased low; a constant rate is estimated as itself).
 */
export function ewmaRate(times: readonly number[], now: number, tauS: number, sinceMs?: number): number {
  if (!(tauS > 0)) throw new RangeError('ewmaRate: tauS must be > 0');
  const tauMs = tauS * 1000;
  let sum = 0;
  for (const t of times) {
    if (t > now) continue;
    sum += Math.exp(-(now - t) / tauMs);
  }
  if (sum === 0) return 0;
  const span = sinceMs === undefined ? Number.POSITIVE_INFINITY : Math.max(0, now - sinceMs);
  // ∫ exp(-age/τ) d(age) over the observed span, in seconds; at least one τ/10 so that one fresh
  // wake right after the record began does not read as an enormous rate.
  const weight = tauS * (1 - Math.exp(-Math.max(span, tauMs / 10) / tauMs));
  return sum / weight;
}

/** A robust start time from recent cold-start durations (ms): their mean, as Erlang B wants, in seconds. */
export function meanStartS(durationsMs: readonly number[]): number | undefined {
  const ok = durationsMs.filter((d) => Number.isFinite(d) && d >= 0);
  if (ok.length === 0) return undefined;
  return ok.reduce((a, b) => a + b, 0) / ok.length / 1000;
}

/** What the keeper remembers between ticks for the shrink hysteresis (kept in Redis with the report). */
export interface HysteresisState {
  /** The size the pool is kept at now. */
  size: number;
  /** Since when (ms) the wanted size has been below `size`; null while it is not. */
  lowSince: number | null;
  /** The largest size wanted since `lowSince`. */
  lowMax: number;
}

export interface Decision {
  state: HysteresisState;
  /** Set when the size changes. */
  change?: 'grow' | 'shrink';
}

/** Applies a wanted size: grow at once, shrink after `shrinkHoldS` of wanting less, to the most wanted meanwhile. */
export function decide(prev: HysteresisState, wanted: number, now: number, shrinkHoldS: number, bounds: PoolBounds): Decision {
  checkBounds(bounds);
  const want = Math.min(bounds.max, Math.max(bounds.min, wanted));
  // The bounds themselves changed (a new config): follow them at once.
  if (prev.size < bounds.min || prev.size > bounds.max) {
    const size = Math.min(bounds.max, Math.max(bounds.min, prev.size));
    const state = { size: Math.max(size, want), lowSince: null, lowMax: 0 };
    return { state, change: state.size > prev.size ? 'grow' : 'shrink' };
  }
  if (want > prev.size) return { state: { size: want, lowSince: null, lowMax: 0 }, change: 'grow' };
  if (want === prev.size) return { state: { size: prev.size, lowSince: null, lowMax: 0 } };
  const lowSince = prev.lowSince ?? now;
  const lowMax = prev.lowSince === null ? want : Math.max(prev.lowMax, want);
  if (now - lowSince >= shrinkHoldS * 1000) {
    // Down to the most wanted during the hold; a further drop holds again from now.
    return { state: { size: lowMax, lowSince: lowMax > want ? now : null, lowMax: want }, change: 'shrink' };
  }
  return { state: { size: prev.size, lowSince, lowMax } };
}

function checkBounds(b: PoolBounds): void {
  if (!Number.isInteger(b.min) || !Number.isInteger(b.max) || b.min < 0 || b.max < b.min) {
    throw new RangeError(`warm pool bounds must be whole numbers with 0 <= min <= max, got ${b.min}..${b.max}`);
  }
}
