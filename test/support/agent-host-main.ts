/**
 * The waker and the janitor in ONE process around ONE local runtime, for tests that run every
 * service as its own process (test/faults.test.ts).
 *
 * Why not services/waker/main.ts and services/janitor/main.ts side by side: the local runtime keeps
 * a tenant's agent (its shim child process) in the process that started it, so a separate janitor
 * would have its own, empty runtime: its reconciler would find no agent for any awake tenant and
 * reset them all, and `ztm tenant sleep` could not stop an agent the waker started. On Kubernetes
 * both ask the API server and can live apart; locally the runtime is one process, the "node".
 *
 * Environment: the platform's (lib/config.ts), WEBHOOK_SECRET and WARM_POOL_SECRET required.
 */
import { runService } from '../../lib/platform/run-service.js';
import { createClients } from '../../lib/platform/clients.js';
import { ConfigError } from '../../lib/errors.js';
import { createMetrics } from '../../lib/metrics.js';
import { createLocalRuntime } from '../../lib/runtime/create-runtime.js';
import { closeInOrder } from '../../lib/platform/close-steps.js';
import { buildWaker } from '../../services/waker/build.js';
import { buildJanitor } from '../../services/janitor/build.js';
import { buildPoolKeeper } from '../../services/pool-keeper/build.js';

await runService('agent-host', async ({ config, log }) => {
  if (!config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'is required');
  if (!config.warmPoolSecret) throw new ConfigError('WARM_POOL_SECRET', 'is required');
  const clients = createClients(config, { name: 'agent-host' });
  await clients.state.ensureBucket();
  const runtime = createLocalRuntime(config, log, { warmPoolSecret: config.warmPoolSecret, webhookSecret: config.webhookSecret });
  // One runtime and one registry shared by the three, as in services/platform/platform.ts.
  const shared = { config, clients, runtime, metrics: createMetrics({ service: 'agent-host' }) };
  const waker = await buildWaker({ ...shared, log: log.child({ component: 'waker' }) });
  await waker.start();
  const janitor = await buildJanitor({
    ...shared, log: log.child({ component: 'janitor' }), lifecycleLog: log.child({ component: 'lifecycle' }), webhookSecret: config.webhookSecret,
  });
  await janitor.start();
  const keeper = await buildPoolKeeper({ ...shared, log: log.child({ component: 'pool-keeper' }), intervalMs: 1000 });
  await keeper.start();
  log.info({ pid: process.pid }, 'agent host started: waker, janitor, pool-keeper');
  return {
    close: () => closeInOrder([
      ['pool keeper', () => keeper.close()], ['janitor', () => janitor.close()], ['waker', () => waker.close()],
      ['runtime', () => runtime.close()], ['clients', () => clients.close()],
    ], log),
  };
});
