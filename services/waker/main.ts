import { runService } from '../../lib/platform/run-service.js';
import { createClients } from '../../lib/platform/clients.js';
import { ConfigError } from '../../lib/errors.js';
import { serveMetrics } from '../../lib/platform/metrics-server.js';
import { closeInOrder } from '../../lib/platform/close-steps.js';
import { startOrClose } from '../../lib/platform/service-parts.js';
import { buildWaker } from './build.js';

await runService('waker', async ({ config, log }) => {
  if (!config.warmPoolSecret) throw new ConfigError('WARM_POOL_SECRET', 'is required to run the waker on its own');
  // Agents get their tenant's derived secrets (webhook secret, bearer hash) from the waker.
  if (!config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'is required to run the waker on its own');
  const clients = createClients(config, { name: 'waker' });
  const waker = await startOrClose(await buildWaker({ config, log, clients, runtimeSecrets: { warmPoolSecret: config.warmPoolSecret, webhookSecret: config.webhookSecret } }));
  const http = await serveMetrics({ port: config.adminPort, metrics: waker.metrics, ready: () => clients.redis.status === 'ready' });
  log.info({ metrics_port: http.port, runtime: waker.runtime.kind }, 'waker started');
  return {
    close: () => closeInOrder([['wake service', () => waker.close()], ['metrics server', () => http.close()], ['clients', () => clients.close()]], log),
  };
});
