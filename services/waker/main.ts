import { runService } from '../../lib/platform/run-service.js';
import { createClients } from '../../lib/platform/clients.js';
import { createMetrics } from '../../lib/metrics.js';
import { ConfigError } from '../../lib/errors.js';
import { serveMetrics } from '../../lib/platform/metrics-server.js';
import { createRuntime } from '../../lib/runtime/create-runtime.js';
import { Waker } from './waker.js';
import { instrumentQueueMetrics } from '../../lib/ops/queue-metrics.js';

await runService('waker', async ({ config, log }) => {
  if (!config.warmPoolSecret) throw new ConfigError('WARM_POOL_SECRET', 'is required to run the waker on its own');
  // Agents get their tenant's derived secrets (webhook secret, bearer hash) from the waker.
  if (!config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'is required to run the waker on its own');
  const clients = createClients(config, { name: 'waker' });
  const metrics = createMetrics({ service: 'waker' });
  const runtime = createRuntime(config, log, { warmPoolSecret: config.warmPoolSecret, webhookSecret: config.webhookSecret });
  const waker = new Waker({ config, log, redis: clients.redis, bull: clients.bull, registry: clients.registry, runtime, state: clients.state, metrics });
  const queueMetrics = instrumentQueueMetrics(metrics, clients.redis);
  const http = await serveMetrics({ port: config.adminPort, metrics, ready: () => clients.redis.status === 'ready' });
  log.info({ metrics_port: http.port, runtime: runtime.kind }, 'waker started');
  return {
    async close() {
      await waker.close();
      await http.close();
      await queueMetrics.close();
      await runtime.close();
      await clients.close();
    },
  };
});
