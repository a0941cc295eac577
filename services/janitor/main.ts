import { runService } from '../../lib/platform/run-service.js';
import { createClients } from '../../lib/platform/clients.js';
import { ConfigError } from '../../lib/errors.js';
import { serveMetrics } from '../../lib/platform/metrics-server.js';
import { closeInOrder } from '../../lib/platform/close-steps.js';
import { startOrClose } from '../../lib/platform/service-parts.js';
import { buildJanitor } from './build.js';

await runService('janitor', async ({ config, log }) => {
  if (!config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'is required to run the janitor on its own');
  if (!config.warmPoolSecret) throw new ConfigError('WARM_POOL_SECRET', 'is required to run the janitor on its own');
  const clients = createClients(config, { name: 'janitor' });
  const janitor = await startOrClose(await buildJanitor({
    config, log, clients, webhookSecret: config.webhookSecret, runtimeSecrets: { warmPoolSecret: config.warmPoolSecret, webhookSecret: config.webhookSecret },
  }));
  const http = await serveMetrics({ port: config.adminPort, metrics: janitor.metrics, ready: () => clients.redis.status === 'ready' });
  log.info({ runtime: janitor.runtime?.kind, idle_check_s: config.idleCheckIntervalS, reconcile_s: config.reconcileIntervalS }, 'janitor started: admin worker, idle shutdown, reconciler');
  return {
    close: () => closeInOrder([['janitor', () => janitor.close()], ['metrics server', () => http.close()], ['clients', () => clients.close()]], log),
  };
});
