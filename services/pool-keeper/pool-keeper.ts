/**
 * Keeps the warm pool at its size: WARM_POOL_TARGET (fixed), or between WARM_POOL_MIN and
 * WARM_POOL_MAX as the recent wakes need (services/pool-keeper/pool-sizer.ts); adds members after
 * claims, removes surplus when the size drops. Every change of the size is logged with its reason.
 * Several keepers may run: each tick holds a short Redis lock and counts members still starting,
 * so together they never overshoot.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { RedisClient } from '../../lib/redis.js';
import { callScript } from '../../lib/redis-scripts.js';
import { Endpoints } from '../../lib/delivery/endpoints.js';
import type { WarmPool } from '../../lib/runtime/runtime.js';
import { reportWarmPool } from '../../lib/ops/queue-stats.js';
import { warmPoolKey } from '../../lib/keys.js';
import type { PoolBounds } from '../../lib/warm-pool/demand-model.js';
import { PoolSizer, type Sizing } from './pool-sizer.js';

export const POOL_KEEPER_LOCK = 'ztm:pool-keeper:lock';

export interface PoolKeeperOptions {
  pool: WarmPool;
  redis: RedisClient;
  log: Logger;
  /** The fixed size (WARM_POOL_TARGET), or the bounds it is sized within. */
  target?: number;
  bounds?: PoolBounds;
  /** WARM_POOL_HIT_TARGET (default 0.95). */
  hitTarget?: number;
  /** Start time assumed until a cold start is measured (default 30 s). */
  defaultStartS?: number;
  /** Tuning of the sizing (tests, the benchmark); production uses the defaults. */
  sizing?: { fastTauS?: number; slowTauS?: number; shrinkHoldS?: number };
  intervalMs?: number;
  metrics?: Metrics;
}

export class PoolKeeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private readonly sizer: PoolSizer;
  private last: Sizing | undefined;
  private changes = 0;

  constructor(private readonly o: PoolKeeperOptions) {
    if (!o.pool || !o.redis || !o.log) throw new TypeError('PoolKeeper: pool, redis and log are required');
    const bounds = o.bounds ?? (o.target !== undefined ? { min: o.target, max: o.target } : undefined);
    if (!bounds) throw new TypeError('PoolKeeper: target or bounds is required');
    if (!Number.isInteger(bounds.min) || !Number.isInteger(bounds.max) || bounds.min < 0 || bounds.max < bounds.min) {
      throw new TypeError('PoolKeeper: the size must be whole numbers with 0 <= min <= max');
    }
    this.sizer = new PoolSizer({
      redis: o.redis, bounds, hitTarget: o.hitTarget ?? 0.95, tickS: (o.intervalMs ?? 2000) / 1000,
      defaultStartS: o.defaultStartS ?? 30, ...o.sizing,
    });
    new Endpoints({ redis: o.redis }); // defines the compare-and-delete script used to release the lock
  }

  start(): void {
    const every = this.o.intervalMs ?? 2000;
    const loop = (): void => {
      this.running = this.tick().catch((err: unknown) => this.o.log.warn({ err }, 'pool keeper tick failed'));
      void this.running.then(() => {
        if (this.timer !== undefined) this.timer = setTimeout(loop, every);
      });
    };
    this.timer = setTimeout(loop, 0);
  }

  /** A fixed size from now on (min = max = target). */
  setTarget(target: number): void {
    this.sizer.setBounds({ min: target, max: target });
  }

  /** Sized from demand within these bounds (and for this hit probability) from now on. */
  setBounds(bounds: PoolBounds, hitTarget?: number): void {
    this.sizer.setBounds(bounds, hitTarget);
  }

  /** Changes of the size this keeper made. */
  get resizes(): number {
    return this.changes;
  }

  /** The last tick's sizing (what it looked at and why). */
  get lastSizing(): Sizing | undefined {
    return this.last;
  }

  /** One reconciliation of the pool's size; returns what it did (undefined when another keeper held the lock). */
  async tick(): Promise<{ before: number; added: number; removed: number } | undefined> {
    const token = randomUUID();
    if ((await this.o.redis.set(POOL_KEEPER_LOCK, token, 'PX', 30_000, 'NX')) !== 'OK') return undefined;
    let report: { ready: number; members: number } | undefined;
    let target = this.sizer.currentBounds.min;
    try {
      target = (await this.resize()).size;
      const before = await this.o.pool.countWarm();
      const ready = await this.o.pool.countReadyWarm();
      this.o.metrics?.warmPoolSize.set(ready);
      report = { ready, members: before };
      const diff = target - before;
      if (diff > 0) {
        await this.o.pool.addWarm(diff);
        this.o.log.info({ before, added: diff, target }, 'warm pool: replenished');
      } else if (diff < 0) {
        await this.o.pool.removeWarm(-diff);
        this.o.log.info({ before, removed: -diff, target }, 'warm pool: shrunk');
      }
      return { before, added: Math.max(diff, 0), removed: Math.max(-diff, 0) };
    } finally {
      await callScript(this.o.redis, 'ztmCompareAndDelete', POOL_KEEPER_LOCK, token);
      // After the lock: what `ztm status` and every service's ztm_warm_pool_size show (lib/ops/queue-stats.ts).
      if (report) {
        await reportWarmPool(this.o.redis, { ...report, target, sizing: this.last })
          .catch((err: unknown) => this.o.log.warn({ err }, 'warm pool: report to Redis failed'));
      }
    }
  }

  /** Sizes the pool (under the lock); a change is logged with its reason and kept for the next keeper. */
  private async resize(): Promise<Sizing> {
    const s = await this.sizer.size();
    this.last = s;
    const m = this.o.metrics;
    m?.warmPoolTarget.set(s.size);
    m?.warmPoolWakeRate.set(s.ratePerS);
    m?.warmPoolStartSeconds.set(s.startS);
    m?.warmPoolHitProbability.set(s.probability);
    if (s.change) {
      this.changes++;
      m?.warmPoolResizes.inc({ direction: s.change });
      this.o.log.info({
        from: s.previous, to: s.size, direction: s.change, wanted: s.wanted, min: s.min, max: s.max,
        rate_per_s: round(s.ratePerS, 4), start_s: round(s.startS, 2), start_measured: s.startMeasured, load: round(s.load, 3),
        probability: round(s.probability, 4), hit_target: s.hitTarget, reason: s.reason,
      }, `warm pool: size ${s.previous} → ${s.size}`);
    }
    const h = s.hysteresis;
    await this.o.redis.hset(warmPoolKey, { target: String(s.size), low_since: h.lowSince === null ? '' : String(h.lowSince), low_max: String(h.lowMax) });
    return s;
  }

  async close(): Promise<void> {
    const t = this.timer;
    this.timer = undefined;
    if (t) clearTimeout(t);
    await this.running;
  }
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
