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
import { Queue } from 'bullmq';
import { runService } from '../../lib/platform/run-service.js';
import { createClients } from '../../lib/platform/clients.js';
import { ConfigError } from '../../lib/errors.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import { createLocalRuntime } from '../../lib/runtime/create-runtime.js';
import { RuntimeLifecycle } from '../../lib/tenants/tenant-lifecycle.js';
import { Waker } from '../../services/waker/waker.js';
import { createJanitor } from '../../services/janitor/janitor.js';
import { PoolKeeper } from '../../services/pool-keeper/pool-keeper.js';

await runService('agent-host', async ({ config, log }) => {
  if (!config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'is required');
  if (!config.warmPoolSecret) throw new ConfigError('WARM_POOL_SECRET', 'is required');
  const clients = createClients(config, { name: 'agent-host' });
  await clients.registry.ensureTable();
  await clients.state.ensureBucket();
  const runtime = createLocalRuntime(config, log, { warmPoolSecret: config.warmPoolSecret, webhookSecret: config.webhookSecret });
  const waker = new Waker({ config, log: log.child({ component: 'waker' }), redis: clients.redis, bull: clients.bull, registry: clients.registry, runtime, state: clients.state });
  const wakeQueue = new Queue(QUEUES.wake, { connection: clients.bull, prefix: QUEUE_PREFIX });
  const lifecycle = new RuntimeLifecycle({
    registry: clients.registry, runtime, state: clients.state, redis: clients.redis, wakeQueue,
    log: log.child({ component: 'lifecycle' }), wakeTimeoutS: config.wakeLockTtlS,
  });
  const janitor = await createJanitor({ config, log: log.child({ component: 'janitor' }), clients, webhookSecret: config.webhookSecret, runtime, lifecycle });
  const keeper = new PoolKeeper({ pool: runtime, redis: clients.redis, log: log.child({ component: 'pool-keeper' }), target: config.warmPoolTarget, intervalMs: 1000 });
  keeper.start();
  log.info({ pid: process.pid }, 'agent host started: waker, janitor, pool-keeper');
  return {
    async close() {
      await janitor.close();
      await keeper.close();
      await waker.close();
      await runtime.close();
      await wakeQueue.close();
      await clients.close();
    },
  };
});
