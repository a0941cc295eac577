/** The pool-keeper, built once for its own Deployment (main.ts) and the one-process platform. */
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { PlatformClients } from '../../lib/platform/clients.js';
import { CloseChain, serviceMetrics, type BuiltService } from '../../lib/platform/service-parts.js';
import { serviceRuntime, type RuntimeChoice } from '../../lib/platform/service-runtime.js';
import type { Runtime } from '../../lib/runtime/runtime.js';
import { PoolKeeper } from './pool-keeper.js';

export interface PoolKeeperDeps extends RuntimeChoice {
  config: Config;
  log: Logger;
  clients: Pick<PlatformClients, 'redis'>;
  metrics?: Metrics;
  /** How often the pool is topped up (the Deployment: 5 s; the one-process platform: 1 s). */
  intervalMs: number;
  stepTimeoutMs?: number;
}

export interface BuiltPoolKeeper extends BuiltService {
  readonly runtime: Runtime;
  readonly metrics: Metrics;
  readonly poolKeeper: PoolKeeper;
}

export function buildPoolKeeper(d: PoolKeeperDeps): Promise<BuiltPoolKeeper> {
  const chain = new CloseChain(d.log, d.stepTimeoutMs);
  const metrics = serviceMetrics('pool-keeper', d.metrics, d.clients.redis, chain);
  const runtime = serviceRuntime(d.config, d.log, d, chain);
  if (!runtime) throw new TypeError('buildPoolKeeper: a runtime or the secrets to build one is required');
  const { min, max, hitTarget } = d.config.warmPool;
  const poolKeeper = new PoolKeeper({
    pool: runtime, redis: d.clients.redis, log: d.log, bounds: { min, max }, hitTarget, metrics, intervalMs: d.intervalMs,
    // Until a cold start is measured: a local shim starts in a few seconds, a pod in tens.
    defaultStartS: runtime.kind === 'local' ? 5 : 30,
  });
  chain.add('pool keeper', () => poolKeeper.close());
  return Promise.resolve({
    runtime,
    metrics,
    poolKeeper,
    start() {
      poolKeeper.start();
      return Promise.resolve();
    },
    close: () => chain.close(),
  });
}
