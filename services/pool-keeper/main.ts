import { runService } from '../../lib/platform/run-service.js';
import { createClients } from '../../lib/platform/clients.js';
import { createMetrics } from '../../lib/metrics.js';
import { ConfigError } from '../../lib/errors.js';
import { serveMetrics } from '../../lib/platform/metrics-server.js';
import { createRuntime } from '../../lib/runtime/create-runtime.js';
import { PoolKeeper } from './pool-keeper.js';
import { instrumentQueueMetrics } from '../../lib/ops/queue-metrics.js';

await runService('pool-keeper', async ({ config, log }) => {
  if (!config.warmPoolSecret) throw new ConfigError('WARM_POOL_SECRET', 'is required to run the pool-keeper on its own');
  const clients = createClients(config, { name: 'pool-keeper' });
  const metrics = createMetrics({ service: 'pool-keeper' });
  const runtime = createRuntime(config, log, { warmPoolSecret: config.warmPoolSecret, webhookSecret: config.webhookSecret });
  const keeper = new PoolKeeper({ pool: runtime, redis: clients.redis, log, target: config.warmPoolTarget, metrics, intervalMs: 5000 });
  keeper.start();
  const queueMetrics = instrumentQueueMetrics(metrics, clients.redis);
  const http = await serveMetrics({ port: config.adminPort, metrics, ready: () => clients.redis.status === 'ready' });
  log.info({ target: config.warmPoolTarget, runtime: runtime.kind }, 'pool-keeper started');
  return {
    async close() {
      await keeper.close();
      await http.close();
      await queueMetrics.close();
      await runtime.close();
      await clients.close();
    },
  };
});
