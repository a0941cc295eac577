import { runService } from '../../lib/platform/run-service.js';
import { createClients } from '../../lib/platform/clients.js';
import { ConfigError } from '../../lib/errors.js';
import { serveMetrics } from '../../lib/platform/metrics-server.js';
import { closeInOrder } from '../../lib/platform/close-steps.js';
import { startOrClose } from '../../lib/platform/service-parts.js';
import { buildForwarder } from './build.js';

await runService('forwarder', async ({ config, log }) => {
  if (!config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'is required to run the forwarder on its own');
  const clients = createClients(config, { name: 'forwarder' });
  const forwarder = await startOrClose(await buildForwarder({ config, log, clients, webhookSecret: config.webhookSecret }));
  const http = await serveMetrics({ port: config.adminPort, metrics: forwarder.metrics, ready: () => clients.redis.status === 'ready' });
  log.info({ metrics_port: http.port, concurrency: config.forwarderConcurrency }, 'forwarder started');
  return {
    close: () => closeInOrder([['forwarder', () => forwarder.close()], ['metrics server', () => http.close()], ['clients', () => clients.close()]], log),
  };
});
