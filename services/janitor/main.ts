import { Queue } from 'bullmq';
import { runService } from '../../lib/platform/run-service.js';
import { createClients } from '../../lib/platform/clients.js';
import { ConfigError } from '../../lib/errors.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import { createRuntime } from '../../lib/runtime/create-runtime.js';
import { RuntimeLifecycle } from '../../lib/tenants/tenant-lifecycle.js';
import { createMetrics } from '../../lib/metrics.js';
import { serveMetrics } from '../../lib/platform/metrics-server.js';
import { createJanitor } from './janitor.js';
import { instrumentQueueMetrics } from '../../lib/ops/queue-metrics.js';

await runService('janitor', async ({ config, log }) => {
  if (!config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'is required to run the janitor on its own');
  if (!config.warmPoolSecret) throw new ConfigError('WARM_POOL_SECRET', 'is required to run the janitor on its own');
  const clients = createClients(config, { name: 'janitor' });
  await clients.registry.ensureTable();
  const runtime = createRuntime(config, log, { warmPoolSecret: config.warmPoolSecret, webhookSecret: config.webhookSecret });
  const wakeQueue = new Queue(QUEUES.wake, { connection: clients.bull, prefix: QUEUE_PREFIX });
  const lifecycle = new RuntimeLifecycle({ registry: clients.registry, runtime, state: clients.state, redis: clients.redis, wakeQueue, log, wakeTimeoutS: config.wakeLockTtlS });
  const janitor = await createJanitor({ config, log, clients, webhookSecret: config.webhookSecret, runtime, lifecycle });
  const metrics = createMetrics({ service: 'janitor' });
  const queueMetrics = instrumentQueueMetrics(metrics, clients.redis);
  const http = await serveMetrics({ port: config.adminPort, metrics, ready: () => clients.redis.status === 'ready' });
  log.info({ runtime: runtime.kind, idle_check_s: config.idleCheckIntervalS, reconcile_s: config.reconcileIntervalS }, 'janitor started: admin worker, idle shutdown, reconciler');
  return {
    async close() {
      await janitor.close();
      await http.close();
      await queueMetrics.close();
      await wakeQueue.close();
      await clients.close();
    },
  };
});
