/**
 * The admin HTTP API as its own Deployment (`SERVICE=admin-api`): ADMIN_API_PORT (default 8090),
 * ClusterIP only in the chart. `/metrics` on ADMIN_PORT like every service.
 */
import { runService } from '../../lib/platform/run-service.js';
import { createRedis, closeRedis, describeRedisUrl } from '../../lib/redis.js';
import { createMetrics } from '../../lib/metrics.js';
import { serveMetrics } from '../../lib/platform/metrics-server.js';
import { closeInOrder } from '../../lib/platform/close-steps.js';
import { startOrClose } from '../../lib/platform/service-parts.js';
import { buildAdminApi, DEFAULT_ADMIN_API_PORT, type BuiltAdminApi } from './build.js';

await runService('admin-api', async ({ config, log }) => {
  const redis = createRedis({ url: config.redisUrl, cluster: config.redisCluster, name: 'admin-api' });
  redis.on('error', (err) => log.debug({ err }, 'redis connection error'));
  const metrics = createMetrics({ service: 'admin-api' });
  let api: BuiltAdminApi;
  try {
    api = await startOrClose(await buildAdminApi({
      config, log, redis, redisUrl: config.redisUrl, port: config.adminApiPort ?? DEFAULT_ADMIN_API_PORT, host: config.adminApiHost, metrics,
    }));
  } catch (err) {
    await closeRedis(redis);
    throw err;
  }
  const http = await serveMetrics({ port: config.adminPort, metrics, ready: () => redis.status === 'ready' });
  log.info({ url: api.url, redis: describeRedisUrl(config.redisUrl), rate_per_min: config.adminApiRatePerMin, burst: config.adminApiBurst }, 'admin API started');
  return {
    close: () => closeInOrder([['admin API', () => api.close()], ['metrics server', () => http.close()], ['redis', () => closeRedis(redis)]], log),
  };
});
