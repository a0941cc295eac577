/**
 * Bull Board as its own Deployment (`SERVICE=dashboard`): every queue and the dead letters, job data
 * redacted, basic auth from DASHBOARD_USER / DASHBOARD_PASSWORD (required with RUNTIME=kubernetes:
 * the board can retry, promote and remove jobs). `/healthz`, `/readyz` and `/metrics` on the same
 * port, outside the auth.
 */
import { runService } from '../../lib/platform/run-service.js';
import { ConfigError } from '../../lib/errors.js';
import { createRedis, closeRedis, describeRedisUrl } from '../../lib/redis.js';
import { createMetrics } from '../../lib/metrics.js';
import { instrumentQueueMetrics } from '../../lib/ops/queue-metrics.js';
import { DEFAULT_DASHBOARD_PORT, serveDashboard } from '../../lib/ops/dashboard.js';

await runService('dashboard', async ({ config, log }) => {
  if (config.runtime === 'kubernetes' && !config.dashboardAuth) {
    throw new ConfigError('DASHBOARD_PASSWORD', 'is required (with DASHBOARD_USER) when RUNTIME=kubernetes: the board can change queues');
  }
  const redis = createRedis({ url: config.redisUrl, cluster: config.redisCluster, name: 'dashboard' });
  redis.on('error', (err) => log.debug({ err }, 'redis connection error'));
  const metrics = createMetrics({ service: 'dashboard' });
  const queueMetrics = instrumentQueueMetrics(metrics, redis);
  try {
    const served = await serveDashboard({
      redis, log, metrics,
      port: config.dashboardPort ?? DEFAULT_DASHBOARD_PORT,
      host: config.runtime === 'kubernetes' ? '0.0.0.0' : '127.0.0.1',
      ...(config.dashboardAuth ? { auth: config.dashboardAuth } : {}),
    });
    log.info({ port: served.port, redis: describeRedisUrl(config.redisUrl), auth: Boolean(config.dashboardAuth) }, 'dashboard started');
    return {
      async close() {
        await served.close();
        await queueMetrics.close();
        await closeRedis(redis);
      },
    };
  } catch (err) {
    await queueMetrics.close();
    await closeRedis(redis);
    throw err;
  }
});
