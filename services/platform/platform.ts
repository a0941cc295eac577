/**
 * Every service wired together around clients passed in: what `npm start` runs in one process and
 * what the end-to-end tests run around their own servers. The same builders as the Deployments
 * (services/<name>/build.ts), sharing one runtime and one metrics registry; production runs them
 * one per Deployment (services/<name>/main.ts).
 */
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import { createMetrics, type Metrics } from '../../lib/metrics.js';
import type { PlatformClients } from '../../lib/platform/clients.js';
import type { PlatformSecrets } from '../../lib/local-secrets.js';
import { profileFor } from '../../agent/profiles/index.js';
import { createLocalRuntime } from '../../lib/runtime/create-runtime.js';
import type { Runtime } from '../../lib/runtime/runtime.js';
import type { RuntimeLifecycle } from '../../lib/tenants/tenant-lifecycle.js';
import { instrumentQueueMetrics } from '../../lib/ops/queue-metrics.js';
import { CloseChain, type BuiltService } from '../../lib/platform/service-parts.js';
import type { Ingress } from '../ingress/ingress.js';
import type { Forwarder } from '../forwarder/forwarder.js';
import type { Waker } from '../waker/waker.js';
import type { Janitor } from '../janitor/janitor.js';
import type { PoolKeeper } from '../pool-keeper/pool-keeper.js';
import { buildIngress } from '../ingress/build.js';
import { buildForwarder } from '../forwarder/build.js';
import { buildWaker } from '../waker/build.js';
import { buildJanitor } from '../janitor/build.js';
import { buildPoolKeeper } from '../pool-keeper/build.js';
import { buildAdminApi } from '../admin-api/build.js';

export interface PlatformOptions {
  config: Config;
  log: Logger;
  clients: PlatformClients;
  secrets: PlatformSecrets;
  /** Defaults to the local runtime under config.dataDir; closed with the platform either way. */
  runtime?: Runtime;
  metrics?: Metrics;
}

export interface Platform {
  ingress: Ingress;
  forwarder: Forwarder;
  waker: Waker;
  janitor: Janitor;
  runtime: Runtime;
  poolKeeper: PoolKeeper;
  lifecycle: RuntimeLifecycle;
  metrics: Metrics;
  /** The admin HTTP API's `http://host:port`, when ADMIN_API_PORT is set. */
  adminApiUrl?: string;
  close(): Promise<void>;
}

// Each service bounds its own steps (10 s each); this bounds a whole service's close.
const SERVICE_CLOSE_TIMEOUT_MS = 20_000;

export async function startPlatform(o: PlatformOptions): Promise<Platform> {
  const { config, log, clients, secrets } = o;
  // Local agents run on this host: a missing binary or a too-old Node fails the start, in one line.
  if (!o.runtime) await profileFor(config.agent).preflight(config.agent);
  await clients.state.ensureBucket();
  // Closed in reverse: stop taking webhooks first, then hand back in-flight drains, then stop
  // agents (checkpointing) and the shared parts.
  const chain = new CloseChain(log, SERVICE_CLOSE_TIMEOUT_MS);
  const metrics = o.metrics ?? createMetrics({ service: 'platform' });
  const queueMetrics = instrumentQueueMetrics(metrics, clients.redis);
  chain.add('queue metrics', () => queueMetrics.close());
  // Given or not, the platform runs the runtime and closes it (after the services that use it).
  const runtime = o.runtime ?? createLocalRuntime(config, log, secrets);
  chain.add('runtime', () => runtime.close());
  const shared = { config, clients, runtime, metrics };
  try {
    const waker = await buildWaker({ ...shared, log: log.child({ component: 'waker' }) });
    await startService(chain, 'waker', waker);
    const forwarder = await buildForwarder({ ...shared, log: log.child({ component: 'forwarder' }), webhookSecret: secrets.webhookSecret });
    await startService(chain, 'forwarder', forwarder);
    const janitor = await buildJanitor({
      ...shared, log: log.child({ component: 'janitor' }), lifecycleLog: log.child({ component: 'lifecycle' }), webhookSecret: secrets.webhookSecret,
    });
    await startService(chain, 'janitor', janitor);
    const poolKeeper = await buildPoolKeeper({ ...shared, log: log.child({ component: 'pool-keeper' }), intervalMs: 1000 });
    await startService(chain, 'pool-keeper', poolKeeper);
    // Last: take webhooks once everything behind them runs.
    const ingress = await buildIngress({
      config, log: log.child({ component: 'ingress' }), redisUrl: clients.redisUrl, webhookSecret: secrets.webhookSecret, metrics, metricsOnWebhookPort: true,
    });
    await startService(chain, 'ingress', ingress);
    // The admin HTTP API only with ADMIN_API_PORT (off by default; on ADMIN_API_HOST, loopback by default).
    const adminApi = config.adminApiPort === undefined ? undefined : await buildAdminApi({
      config, log: log.child({ component: 'admin-api' }), redis: clients.redis, redisUrl: clients.redisUrl, port: config.adminApiPort, host: config.adminApiHost, metrics,
    });
    if (adminApi) await startService(chain, 'admin-api', adminApi);
    if (!janitor.lifecycle) throw new Error('platform: the janitor was built without its lifecycle');
    return {
      ingress: ingress.ingress, forwarder: forwarder.forwarder, waker: waker.waker, janitor: janitor.janitor,
      runtime, poolKeeper: poolKeeper.poolKeeper, lifecycle: janitor.lifecycle, metrics, ...(adminApi ? { adminApiUrl: adminApi.url } : {}),
      close: () => chain.close(),
    };
  } catch (err) {
    await chain.close();
    throw err;
  }
}

/** Registers the service's close before starting it, so a start that fails half-way is closed too. */
async function startService(chain: CloseChain, name: string, service: BuiltService): Promise<void> {
  chain.add(name, () => service.close());
  await service.start();
}
