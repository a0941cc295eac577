/**
 * The warm pool's demand model (lib/warm-pool/demand-model.ts): Erlang B against values computed
 * by hand, sizes for given rates and start times, clamping to [min, max], the rate estimate, the
 * shrink hysteresis; and the configuration of the bounds (lib/config.ts: WARM_POOL_TARGET alone is
 * min = max, contradictions are refused with one line).
 */
import t from 'tap';
import { decide, erlangB, ewmaRate, hitProbability, meanStartS, sizeFor, type HysteresisState } from '../lib/warm-pool/demand-model.js';
import { loadConfig } from '../lib/config.js';
import { ConfigError } from '../lib/errors.js';

t.test('Erlang B matches the closed form', async (t) => {
  // B(n, a) = (a^n / n!) / Σ_{k<=n} a^k / k!
  const closed = (n: number, a: number): number => {
    let term = 1;
    let sum = 1;
    for (let k = 1; k <= n; k++) {
      term *= a / k;
      sum += term;
    }
    return term / sum;
  };
  for (const [n, a] of [[0, 1], [1, 1], [2, 1], [5, 2], [10, 7.5], [30, 25]] as const) {
    t.ok(Math.abs(erlangB(n, a) - closed(n, a)) < 1e-12, `B(${n}, ${a}) = ${closed(n, a).toFixed(6)}`);
  }
  t.equal(erlangB(3, 0), 0, 'no load: never a miss with members');
  t.equal(erlangB(0, 3), 1, 'no members: always a miss');
  t.ok(Math.abs(hitProbability(1, 1) - 0.5) < 1e-12, 'one member at load 1: half the wakes hit');
  t.throws(() => erlangB(-1, 1), RangeError);
  t.throws(() => erlangB(1, Number.NaN), RangeError);
});

t.test('the size is the smallest that reaches the target, within the bounds', async (t) => {
  // 0.1 wakes/s × 20 s = load 2: B(4,2) = 0.095 (hit 0.905), B(5,2) = 0.037 (hit 0.963).
  const base = { min: 0, max: 50, ratePerS: 0.1, replenishS: 20, hitTarget: 0.95 };
  const a = sizeFor(base);
  t.equal(a.size, 5);
  t.ok(Math.abs(a.load - 2) < 1e-9);
  t.ok(a.probability >= 0.95 && a.probability < 0.97, `P(hit) ${a.probability}`);
  t.equal(a.capped, false);
  t.equal(sizeFor({ ...base, hitTarget: 0.9 }).size, 4, 'a lower target: fewer members');
  t.equal(sizeFor({ ...base, hitTarget: 0.99 }).size, 7, 'B(7,2) = 0.0081 < 0.01 <= B(6,2) = 0.0121');
  t.equal(sizeFor({ ...base, replenishS: 40 }).size, 8, 'twice the start time, load 4: B(8,4) = 0.030');
  t.equal(sizeFor({ ...base, ratePerS: 0.2 }).size, 8, 'twice the rate: the same load as twice the start time');
  t.equal(sizeFor({ ...base, ratePerS: 0 }).size, 0, 'no wakes: the floor');
  t.equal(sizeFor({ ...base, ratePerS: 0, min: 2 }).size, 2, 'no wakes: min');
  t.equal(sizeFor({ ...base, min: 6 }).size, 6, 'min above the model: min');
  const capped = sizeFor({ ...base, max: 3 });
  t.equal(capped.size, 3, 'max below the model: max');
  t.equal(capped.capped, true);
  t.ok(Math.abs(capped.probability - hitProbability(3, 2)) < 1e-12, 'the capped size reports its own P(hit)');
  t.equal(sizeFor({ ...base, min: 0, max: 0 }).size, 0, 'fixed at zero stays zero');
  t.throws(() => sizeFor({ ...base, min: 3, max: 2 }), RangeError, 'min > max refused');
  t.throws(() => sizeFor({ ...base, hitTarget: 1 }), RangeError);
  // Monotone: more demand never means fewer members.
  let last = 0;
  for (let r = 0; r <= 2; r += 0.05) {
    const n = sizeFor({ ...base, ratePerS: r }).size;
    t.ok(n >= last, `rate ${r.toFixed(2)}: ${n} >= ${last}`);
    last = n;
  }
});

t.test('the rate estimate: a constant rate reads as itself, a burst raises it, silence lets it decay', async (t) => {
  const now = 1_000_000_000;
  // One wake every 2 s for 20 minutes: 0.5/s.
  const steady = Array.from({ length: 600 }, (_, i) => now - i * 2000);
  const r = ewmaRate(steady, now, 60);
  t.ok(Math.abs(r - 0.5) < 0.05, `steady 0.5/s reads ${r.toFixed(3)}`);
  // The same wakes, but the record starts 100 s ago (full record, older ones dropped): still 0.5/s.
  const recent = steady.filter((x) => x >= now - 100_000);
  const rTrunc = ewmaRate(recent, now, 60, now - 100_000);
  t.ok(Math.abs(rTrunc - 0.5) < 0.06, `truncated record normalised over its span reads ${rTrunc.toFixed(3)}`);
  t.ok(ewmaRate(recent, now, 60) < 0.45, 'without the start of the record the same wakes read low (0.5 × (1 - e^-100/60) = 0.41)');
  // 20 wakes in the last 10 s on top of nothing.
  const burst = Array.from({ length: 20 }, (_, i) => now - i * 500);
  const fast = ewmaRate(burst, now, 20);
  const slow = ewmaRate(burst, now, 180);
  t.ok(fast > 0.7, `fast estimate follows the burst: ${fast.toFixed(3)}`);
  t.ok(slow < fast / 4, `slow estimate barely moves: ${slow.toFixed(3)}`);
  const later = ewmaRate(burst, now + 120_000, 20);
  t.ok(later < fast / 50, `2 minutes of silence: the fast estimate decays to ${later.toFixed(4)}`);
  t.equal(ewmaRate([], now, 20), 0);
  t.equal(ewmaRate([now + 5000], now, 20), 0, 'a wake in the future (clock skew) is ignored');
  t.equal(meanStartS([1000, 3000, Number.NaN, -1]), 2, 'mean of valid durations, in seconds');
  t.equal(meanStartS([]), undefined);
});

t.test('hysteresis: grow at once, shrink only after the hold, to the most wanted meanwhile', async (t) => {
  const bounds = { min: 1, max: 10 };
  let s: HysteresisState = { size: 2, lowSince: null, lowMax: 0 };
  const step = (wanted: number, at: number): string | undefined => {
    const d = decide(s, wanted, at, 60, bounds);
    s = d.state;
    return d.change;
  };
  t.equal(step(6, 0), 'grow');
  t.equal(s.size, 6, 'grows at once');
  t.equal(step(3, 1000), undefined, 'wanting less: held');
  t.equal(step(4, 30_000), undefined);
  t.equal(step(2, 59_000), undefined, 'still within the hold');
  t.equal(s.size, 6);
  t.equal(step(2, 61_000), 'shrink', 'the hold has passed');
  t.equal(s.size, 4, 'to the largest size wanted during the hold, not the latest');
  t.equal(s.lowSince, 61_000, 'still wanting less than 4: a new hold starts now');
  t.equal(step(2, 122_000), 'shrink');
  t.equal(s.size, 2);
  t.equal(step(5, 123_000), 'grow', 'a new burst grows at once');
  t.equal(step(3, 124_000), undefined);
  t.equal(step(5, 125_000), undefined, 'wanting the kept size again ends the hold');
  t.equal(s.lowSince, null);
  t.equal(step(3, 180_000), undefined, 'the hold starts anew: no shrink at 180 s');
  t.equal(s.size, 5);
  t.equal(step(0, 300_000), 'shrink');
  t.equal(s.size, 3, 'the most wanted since 180 s');
  t.equal(step(0, 400_000), 'shrink');
  t.equal(s.size, 1, 'never below min');
  // Flapping demand around the size never shrinks within the hold.
  s = { size: 4, lowSince: null, lowMax: 0 };
  let changes = 0;
  for (let i = 0; i < 100; i++) if (step(i % 2 === 0 ? 3 : 4, i * 1000)) changes++;
  t.equal(changes, 0, 'demand flapping between 3 and 4 every second: no change');
  // New bounds are followed at once.
  s = { size: 8, lowSince: null, lowMax: 0 };
  const d = decide(s, 1, 0, 60, { min: 0, max: 3 });
  t.same([d.change, d.state.size], ['shrink', 3], 'a lower max applies at once');
  const up = decide({ size: 0, lowSince: null, lowMax: 0 }, 0, 0, 60, { min: 2, max: 5 });
  t.same([up.change, up.state.size], ['grow', 2], 'a higher min applies at once');
});

t.test('config: WARM_POOL_TARGET alone is min = max; MIN/MAX follow demand; contradictions refused in one line', async (t) => {
  t.same(loadConfig({}).warmPool, { min: 1, max: 1, hitTarget: 0.95 }, 'local default: fixed 1');
  t.same(loadConfig({ WARM_POOL_TARGET: '3' }).warmPool, { min: 3, max: 3, hitTarget: 0.95 });
  t.equal(loadConfig({ WARM_POOL_TARGET: '3' }).warmPoolTarget, 3);
  t.same(loadConfig({ WARM_POOL_MIN: '1', WARM_POOL_MAX: '8', WARM_POOL_HIT_TARGET: '0.99' }).warmPool, { min: 1, max: 8, hitTarget: 0.99 });
  t.same(loadConfig({ WARM_POOL_MAX: '8' }).warmPool, { min: 0, max: 8, hitTarget: 0.95 }, 'MAX alone: from 0');
  t.equal(loadConfig({ WARM_POOL_MIN: '2', WARM_POOL_MAX: '8' }).warmPoolTarget, 2, 'the pool starts at min');
  t.same(loadConfig({ WARM_POOL_TARGET: '4', WARM_POOL_MIN: '4', WARM_POOL_MAX: '4' }).warmPool.max, 4, 'both forms saying the same: accepted');
  const refused: Array<[Record<string, string>, string, RegExp]> = [
    [{ WARM_POOL_MIN: '2' }, 'WARM_POOL_MAX', /must be set with WARM_POOL_MIN/],
    [{ WARM_POOL_MIN: '5', WARM_POOL_MAX: '2' }, 'WARM_POOL_MIN', /must not exceed WARM_POOL_MAX \(5 > 2\)/],
    [{ WARM_POOL_TARGET: '3', WARM_POOL_MAX: '8' }, 'WARM_POOL_TARGET', /fixed-size form.*contradicts WARM_POOL_MIN=0\/WARM_POOL_MAX=8/],
    [{ WARM_POOL_TARGET: '3', WARM_POOL_MIN: '1', WARM_POOL_MAX: '3' }, 'WARM_POOL_TARGET', /contradicts/],
    [{ WARM_POOL_MAX: '-1' }, 'WARM_POOL_MAX', /whole number from 0 to 1000/],
    [{ WARM_POOL_MAX: '1001' }, 'WARM_POOL_MAX', /whole number from 0 to 1000/],
    [{ WARM_POOL_HIT_TARGET: '1' }, 'WARM_POOL_HIT_TARGET', /probability from 0.5 to 0.999/],
    [{ WARM_POOL_HIT_TARGET: '0.3' }, 'WARM_POOL_HIT_TARGET', /probability/],
    [{ WARM_POOL_HIT_TARGET: '95%' }, 'WARM_POOL_HIT_TARGET', /probability/],
  ];
  for (const [env, variable, message] of refused) {
    let caught: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof ConfigError, `${JSON.stringify(env)}: a ConfigError`);
    const e = caught as ConfigError;
    t.equal(e.variable, variable, `${JSON.stringify(env)}: names ${variable}`);
    t.match(e.message, message);
    t.notMatch(e.message, /\n/, 'one line');
  }
});
