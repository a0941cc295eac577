/**
 * Bull Board as its own Deployment (`SERVICE=dashboard`): every queue and the dead letters, job data
 * redacted, and the tenants view (`/tenants`, read through the janitor), basic auth from DASHBOARD_USER / DASHBOARD_PASSWORD (required with RUNTIME=kubernetes:
 * the board can retry, promote and remove jobs). `/healthz`, `/readyz` and `/metrics` on the same
 * port, outside the auth.
 */
import { runService } from '../../lib/platform/run-service.js';
import { ConfigError } from '../../lib/errors.js';
import { createRedis, closeRedis, describeRedisUrl } from '../../lib/redis.js';
import { DEFAULT_DASHBOARD_PORT } from '../../lib/ops/dashboard.js';
import { closeInOrder } from '../../lib/platform/close-steps.js';
import { startOrClose } from '../../lib/platform/service-parts.js';
import { buildDashboard } from './build.js';

await runService('dashboard', async ({ config, log }) => {
  if (config.runtime === 'kubernetes' && !config.dashboardAuth) {
    throw new ConfigError('DASHBOARD_PASSWORD', 'is required (with DASHBOARD_USER) when RUNTIME=kubernetes: the board can change queues');
  }
  const redis = createRedis({ url: config.redisUrl, cluster: config.redisCluster, name: 'dashboard' });
  redis.on('error', (err) => log.debug({ err }, 'redis connection error'));
  let dashboard;
  try {
    dashboard = await startOrClose(await buildDashboard({
      log, redis, withMetrics: true,
      // The registry through the janitor (tenant.list on the admin queue): the board holds no registry credentials.
      tenants: { redisUrl: config.redisUrl, cluster: config.redisCluster },
      port: config.dashboardPort ?? DEFAULT_DASHBOARD_PORT,
      host: config.runtime === 'kubernetes' ? '0.0.0.0' : '127.0.0.1',
      ...(config.dashboardAuth ? { auth: config.dashboardAuth } : {}),
    }));
  } catch (err) {
    await closeRedis(redis);
    throw err;
  }
  const board = dashboard;
  log.info({ port: board.served.port, redis: describeRedisUrl(config.redisUrl), auth: Boolean(config.dashboardAuth) }, 'dashboard started');
  return {
    close: () => closeInOrder([['dashboard', () => board.close()], ['redis', () => closeRedis(redis)]], log),
  };
});
