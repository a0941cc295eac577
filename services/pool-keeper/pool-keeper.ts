/**
 * Keeps the warm pool at WARM_POOL_TARGET: adds members after claims, removes surplus when the
 * target drops. Several keepers may run: each tick holds a short Redis lock and counts members
 * still starting, so together they never overshoot.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { RedisClient } from '../../lib/redis.js';
import { callScript } from '../../lib/redis-scripts.js';
import { Endpoints } from '../../lib/delivery/endpoints.js';
import type { WarmPool } from '../../lib/runtime/runtime.js';
import { reportWarmPool } from '../../lib/ops/queue-stats.js';

export const POOL_KEEPER_LOCK = 'ztm:pool-keeper:lock';

export interface PoolKeeperOptions {
  pool: WarmPool;
  redis: RedisClient;
  log: Logger;
  target: number;
  intervalMs?: number;
  metrics?: Metrics;
}

export class PoolKeeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private target: number;

  constructor(private readonly o: PoolKeeperOptions) {
    if (!o.pool || !o.redis || !o.log) throw new TypeError('PoolKeeper: pool, redis and log are required');
    if (!Number.isInteger(o.target) || o.target < 0) throw new TypeError('PoolKeeper: target must be a whole number >= 0');
    this.target = o.target;
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

  setTarget(target: number): void {
    this.target = target;
  }

  /** One reconciliation of the pool's size; returns what it did (undefined when another keeper held the lock). */
  async tick(): Promise<{ before: number; added: number; removed: number } | undefined> {
    const token = randomUUID();
    if ((await this.o.redis.set(POOL_KEEPER_LOCK, token, 'PX', 30_000, 'NX')) !== 'OK') return undefined;
    let report: { ready: number; members: number } | undefined;
    try {
      const before = await this.o.pool.countWarm();
      const ready = await this.o.pool.countReadyWarm();
      this.o.metrics?.warmPoolSize.set(ready);
      report = { ready, members: before };
      const diff = this.target - before;
      if (diff > 0) {
        await this.o.pool.addWarm(diff);
        this.o.log.info({ before, added: diff, target: this.target }, 'warm pool: replenished');
      } else if (diff < 0) {
        await this.o.pool.removeWarm(-diff);
        this.o.log.info({ before, removed: -diff, target: this.target }, 'warm pool: shrunk');
      }
      return { before, added: Math.max(diff, 0), removed: Math.max(-diff, 0) };
    } finally {
      await callScript(this.o.redis, 'ztmCompareAndDelete', POOL_KEEPER_LOCK, token);
      // After the lock: what `ztm status` and every service's ztm_warm_pool_size show (lib/ops/queue-stats.ts).
      if (report) {
        await reportWarmPool(this.o.redis, { ...report, target: this.target })
          .catch((err: unknown) => this.o.log.warn({ err }, 'warm pool: report to Redis failed'));
      }
    }
  }

  async close(): Promise<void> {
    const t = this.timer;
    this.timer = undefined;
    if (t) clearTimeout(t);
    await this.running;
  }
}
