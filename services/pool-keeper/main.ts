import { runService } from '../../lib/platform/run-service.js';
import { createClients } from '../../lib/platform/clients.js';
import { ConfigError } from '../../lib/errors.js';
import { serveMetrics } from '../../lib/platform/metrics-server.js';
import { closeInOrder } from '../../lib/platform/close-steps.js';
import { startOrClose } from '../../lib/platform/service-parts.js';
import { buildPoolKeeper } from './build.js';

await runService('pool-keeper', async ({ config, log }) => {
  if (!config.warmPoolSecret) throw new ConfigError('WARM_POOL_SECRET', 'is required to run the pool-keeper on its own');
  const clients = createClients(config, { name: 'pool-keeper' });
  const keeper = await startOrClose(await buildPoolKeeper({
    config, log, clients, intervalMs: 5000, runtimeSecrets: { warmPoolSecret: config.warmPoolSecret, webhookSecret: config.webhookSecret },
  }));
  const http = await serveMetrics({ port: config.adminPort, metrics: keeper.metrics, ready: () => clients.redis.status === 'ready' });
  log.info({ min: config.warmPool.min, max: config.warmPool.max, hit_target: config.warmPool.hitTarget, runtime: keeper.runtime.kind }, 'pool-keeper started');
  return {
    close: () => closeInOrder([['pool keeper', () => keeper.close()], ['metrics server', () => http.close()], ['clients', () => clients.close()]], log),
  };
});
