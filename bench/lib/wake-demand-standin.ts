/**
 * The demand workload against a stand-in for the pods (bench/wake.ts --modes demand-standin): the
 * same arrivals as `demand`, the real pool-keeper (sizer, hysteresis, lock, report) on a real
 * redis-server per pool, the waker's real record of each wake (recordWakeDemand), but members that
 * take `startMs` (±30 %) to become ready and cost no CPU here, as pods starting on other nodes do.
 * On a small machine the local runtime's members (a node + tsx shim each) start on the same cores
 * as the wakes, so there a larger pool also slows every wake down; this isolates the pool's policy.
 * All pools run at once over the same arrivals (each with its own Redis), so they share the clock.
 *
 * A wake claims a ready member (warm: its latency is `warmMs`) or starts cold (its latency is a
 * start, recorded as the cold-start duration when it ends).
 */
import type { WarmPool } from '../../lib/runtime/runtime.js';
import type { Logger } from '../../lib/logger.js';
import { createRedis, closeRedis } from '../../lib/redis.js';
import { recordWakeDemand } from '../../lib/warm-pool/wake-stats.js';
import { PoolKeeper } from '../../services/pool-keeper/pool-keeper.js';
import { sleep, startBenchRedis } from './common.js';
import { arrivals, type DemandPhase, type PoolVariant, type VariantResult } from './wake-demand.js';

class StandInPool implements WarmPool {
  private members: Array<{ readyAt: number }> = [];

  constructor(private readonly startMs: () => number) {}

  countWarm(): Promise<number> {
    return Promise.resolve(this.members.length);
  }

  countReadyWarm(): Promise<number> {
    const now = Date.now();
    return Promise.resolve(this.members.filter((m) => m.readyAt <= now).length);
  }

  addWarm(n: number): Promise<void> {
    for (let i = 0; i < n; i++) this.members.push({ readyAt: Date.now() + this.startMs() });
    return Promise.resolve();
  }

  removeWarm(n: number): Promise<void> {
    // Not-ready first, as the runtimes do.
    this.members.sort((a, b) => b.readyAt - a.readyAt);
    this.members.splice(0, n);
    return Promise.resolve();
  }

  claim(): boolean {
    const now = Date.now();
    const i = this.members.findIndex((m) => m.readyAt <= now);
    if (i < 0) return false;
    this.members.splice(i, 1);
    return true;
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? (sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number) : Number.NaN;
}

export async function runDemandStandIn(options: {
  variants: PoolVariant[]; phases: DemandPhase[]; seed: number; startMs: number; warmMs: number; log: Logger;
}): Promise<VariantResult[]> {
  const schedule = arrivals(options.phases, options.seed);
  const total = options.phases.reduce((a, p) => a + p.seconds, 0);
  console.log(`# demand workload (stand-in pods: start ${options.startMs} ms ±30 %, a warm wake ${options.warmMs} ms): ${schedule.length} wakes in ${total} s, seed ${options.seed}; every pool at once`);
  // One jitter sequence per pool, from the same seed: each pool sees the same start times in order.
  const jitter = (seed: number): (() => number) => {
    let s = seed >>> 0;
    return () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return Math.round(options.startMs * (0.7 + 0.6 * (s / 4294967296)));
    };
  };
  return Promise.all(options.variants.map(async (v, vi) => {
    const label = v.kind === 'fixed' ? `fixed ${v.size}` : `adaptive ${v.min}-${v.max} (P ${v.hitTarget})`;
    const server = await startBenchRedis(false);
    const redis = createRedis({ url: server.url, name: `bench-standin-${vi}` });
    const pool = new StandInPool(jitter(options.seed));
    const coldStart = jitter(options.seed + 1);
    const keeper = new PoolKeeper({
      pool, redis, log: options.log.child({ component: 'bench-pool-keeper', pool: label }), intervalMs: 1000, defaultStartS: options.startMs / 1000,
      ...(v.kind === 'fixed' ? { target: v.size } : { bounds: { min: v.min, max: v.max }, hitTarget: v.hitTarget }),
      sizing: { fastTauS: 5, slowTauS: 30, shrinkHoldS: 15 },
    });
    try {
      keeper.start();
      const start = v.kind === 'fixed' ? v.size : v.min;
      while ((await pool.countReadyWarm()) < start) await sleep(50);
      let memberMs = 0;
      let peak = 0;
      let sampling = true;
      let last = Date.now();
      const sampler = (async () => {
        while (sampling) {
          const n = await pool.countWarm();
          const t = Date.now();
          memberMs += n * (t - last);
          last = t;
          peak = Math.max(peak, n);
          await sleep(100);
        }
      })();
      const t0 = Date.now();
      const latencies: number[] = [];
      let warm = 0;
      await Promise.all(schedule.map(async (a) => {
        await sleep(Math.max(0, t0 + a.at - Date.now()));
        if (pool.claim()) {
          warm++;
          latencies.push(options.warmMs);
          await recordWakeDemand(redis, 'warm', options.warmMs);
        } else {
          const ms = coldStart();
          await sleep(ms);
          latencies.push(ms);
          await recordWakeDemand(redis, 'cold', ms);
        }
      }));
      await sleep(Math.max(0, t0 + total * 1000 - Date.now()));
      sampling = false;
      await sampler;
      const seconds = (Date.now() - t0) / 1000;
      const resizes = keeper.resizes;
      const r: VariantResult = {
        label, wakes: schedule.length, warm, cold: schedule.length - warm, p50: percentile(latencies, 50), p99: percentile(latencies, 99),
        memberSeconds: memberMs / 1000, seconds, resizes, peak,
      };
      return r;
    } finally {
      await keeper.close();
      await closeRedis(redis);
      await server.close();
    }
  }));
}
