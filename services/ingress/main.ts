/** The ingress as its own Deployment: `node services/ingress/main.ts` (Redis only: see build.ts). */
import { runService } from '../../lib/platform/run-service.js';
import { ConfigError } from '../../lib/errors.js';
import { describeRedisUrl } from '../../lib/redis.js';
import { serveMetrics } from '../../lib/platform/metrics-server.js';
import { closeInOrder } from '../../lib/platform/close-steps.js';
import { startOrClose } from '../../lib/platform/service-parts.js';
import { buildIngress } from './build.js';

await runService('ingress', async ({ config, log }) => {
  if (!config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'is required to run the ingress on its own');
  // /metrics on ADMIN_PORT only: the webhook port is the internet's (the chart scrapes `admin`).
  const ingress = await startOrClose(await buildIngress({ config, log, redisUrl: config.redisUrl, webhookSecret: config.webhookSecret, metricsOnWebhookPort: false }));
  const http = await serveMetrics({ port: config.adminPort, metrics: ingress.metrics, ready: () => ingress.redis.status === 'ready' });
  log.info({ redis: describeRedisUrl(config.redisUrl), port: ingress.ingress.port, admin_port: config.adminPort }, 'ingress started');
  return {
    close: () => closeInOrder([['ingress', () => ingress.close()], ['metrics server', () => http.close()]], log),
  };
});
