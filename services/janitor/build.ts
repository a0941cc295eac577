/**
 * The janitor, built once for its own Deployment (main.ts) and the one-process platform: `ztm`'s
 * admin commands and dead letters, and with a runtime idle shutdown, the reconciler and
 * `tenant wake|sleep` (through the lifecycle built here).
 */
import { Queue } from 'bullmq';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import type { PlatformClients } from '../../lib/platform/clients.js';
import { CloseChain, serviceMetrics, startedPart, type BuiltService } from '../../lib/platform/service-parts.js';
import { serviceRuntime, type RuntimeChoice } from '../../lib/platform/service-runtime.js';
import type { Runtime } from '../../lib/runtime/runtime.js';
import { RuntimeLifecycle } from '../../lib/tenants/tenant-lifecycle.js';
import type { ExtraAdminHandlers } from './admin-worker.js';
import { createJanitor, type Janitor } from './janitor.js';

export interface JanitorDeps extends RuntimeChoice {
  config: Config;
  log: Logger;
  clients: Pick<PlatformClients, 'redis' | 'bull' | 'registry' | 'telegram' | 'state'>;
  webhookSecret: string;
  metrics?: Metrics;
  /** Lifecycle log (the platform names it apart from the janitor's). */
  lifecycleLog?: Logger;
  handlers?: ExtraAdminHandlers;
  stepTimeoutMs?: number;
}

export interface BuiltJanitor extends BuiltService {
  readonly metrics: Metrics;
  /** Without a runtime (neither given nor secrets to build one): admin commands only. */
  readonly runtime: Runtime | undefined;
  readonly lifecycle: RuntimeLifecycle | undefined;
  /** The admin worker, dead letters and lifecycle worker; after start(). */
  readonly janitor: Janitor;
}

export async function buildJanitor(d: JanitorDeps): Promise<BuiltJanitor> {
  const chain = new CloseChain(d.log, d.stepTimeoutMs);
  // Admin commands read and write tenants: the table first (idempotent).
  await d.clients.registry.ensureTable();
  const metrics = serviceMetrics('janitor', d.metrics, d.clients.redis, chain);
  const runtime = serviceRuntime(d.config, d.log, d, chain);
  let lifecycle: RuntimeLifecycle | undefined;
  if (runtime) {
    const wakeQueue = new Queue(QUEUES.wake, { connection: d.clients.bull, prefix: QUEUE_PREFIX });
    wakeQueue.on('error', (err) => d.log.warn({ err }, 'wake queue error'));
    chain.add('wake queue', () => wakeQueue.close());
    lifecycle = new RuntimeLifecycle({
      registry: d.clients.registry, runtime, state: d.clients.state, redis: d.clients.redis, wakeQueue,
      // A wake's start may take up to COLD_START_TIMEOUT_S (its lock is renewed meanwhile).
      log: d.lifecycleLog ?? d.log, wakeTimeoutS: Math.max(d.config.wakeLockTtlS, d.config.coldStartTimeoutS + 30),
    });
  }
  let janitor: Janitor | undefined;
  return {
    metrics,
    runtime,
    lifecycle,
    get janitor() {
      return startedPart('janitor', 'the admin worker', janitor);
    },
    async start() {
      janitor = await createJanitor({
        config: d.config, log: d.log, clients: d.clients, webhookSecret: d.webhookSecret,
        ...(runtime && lifecycle ? { runtime, lifecycle } : {}), ...(d.handlers ? { handlers: d.handlers } : {}),
      });
      chain.add('admin and lifecycle workers', () => janitor?.close());
    },
    close: () => chain.close(),
  };
}
