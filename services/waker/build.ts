/**
 * The waker, built once for both shapes: its own Deployment (main.ts) and the one-process platform
 * (services/platform/platform.ts, which passes its shared runtime and metrics).
 */
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { PlatformClients } from '../../lib/platform/clients.js';
import { CloseChain, serviceMetrics, startedPart, type BuiltService } from '../../lib/platform/service-parts.js';
import { serviceRuntime, type RuntimeChoice } from '../../lib/platform/service-runtime.js';
import type { Runtime } from '../../lib/runtime/runtime.js';
import { Waker } from './waker.js';

export interface WakerDeps extends RuntimeChoice {
  config: Config;
  log: Logger;
  clients: Pick<PlatformClients, 'redis' | 'bull' | 'registry' | 'state'>;
  metrics?: Metrics;
  stepTimeoutMs?: number;
}

export interface BuiltWaker extends BuiltService {
  readonly runtime: Runtime;
  readonly metrics: Metrics;
  /** The wake worker; after start(). */
  readonly waker: Waker;
}

export function buildWaker(d: WakerDeps): Promise<BuiltWaker> {
  const chain = new CloseChain(d.log, d.stepTimeoutMs);
  const metrics = serviceMetrics('waker', d.metrics, d.clients.redis, chain);
  const runtime = serviceRuntime(d.config, d.log, d, chain);
  if (!runtime) throw new TypeError('buildWaker: a runtime or the secrets to build one is required');
  let waker: Waker | undefined;
  return Promise.resolve({
    runtime,
    metrics,
    get waker() {
      return startedPart('waker', 'the wake worker', waker);
    },
    async start() {
      const { config, log, clients } = d;
      waker = new Waker({ config, log, redis: clients.redis, bull: clients.bull, registry: clients.registry, runtime, state: clients.state, metrics });
      // Closed before the runtime it drives.
      chain.add('wake worker', () => waker?.close());
    },
    close: () => chain.close(),
  });
}
