import { runService } from '../../lib/platform/run-service.js';
import { createClients } from '../../lib/platform/clients.js';
import { createMetrics } from '../../lib/metrics.js';
import { ConfigError } from '../../lib/errors.js';
import { serveMetrics } from '../../lib/platform/metrics-server.js';
import { createForwarder } from './forwarder.js';
import { instrumentQueueMetrics } from '../../lib/ops/queue-metrics.js';

await runService('forwarder', async ({ config, log }) => {
  if (!config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'is required to run the forwarder on its own');
  const clients = createClients(config, { name: 'forwarder' });
  const metrics = createMetrics({ service: 'forwarder' });
  const forwarder = createForwarder({ config, log, redis: clients.redis, bull: clients.bull, registry: clients.registry, telegram: clients.telegram, webhookSecret: config.webhookSecret, metrics });
  const queueMetrics = instrumentQueueMetrics(metrics, clients.redis);
  const http = await serveMetrics({ port: config.adminPort, metrics, ready: () => clients.redis.status === 'ready' });
  log.info({ metrics_port: http.port, concurrency: config.forwarderConcurrency }, 'forwarder started');
  return {
    async close() {
      await forwarder.close();
      await http.close();
      await queueMetrics.close();
      await clients.close();
    },
  };
});
