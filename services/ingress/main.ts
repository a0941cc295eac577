/**
 * The ingress as its own Deployment: `node services/ingress/main.ts`. It needs Redis only: no
 * DynamoDB, no Telegram, so it builds its two Redis clients itself instead of the full client set.
 */
import { Queue } from 'bullmq';
import { runService } from '../../lib/platform/run-service.js';
import { ConfigError } from '../../lib/errors.js';
import { createRedis, closeRedis, describeRedisUrl } from '../../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import { Mailbox } from '../../lib/delivery/mailbox.js';
import { createMetrics } from '../../lib/metrics.js';
import { createIngress } from './ingress.js';
import { serveMetrics } from '../../lib/platform/metrics-server.js';
import { instrumentQueueMetrics } from '../../lib/ops/queue-metrics.js';

await runService('ingress', async ({ config, log }) => {
  if (!config.webhookSecret) throw new ConfigError('WEBHOOK_SECRET', 'is required to run the ingress on its own');
  const url = config.redisUrl;
  // The hot path: failing at once while Redis is down (→ 503, Telegram retries) rather than
  // queueing writes that a crash would lose after we said 200. Not auto-pipelined: the mailbox
  // batches accepts itself and each batch must go out at once (see Mailbox acceptBatch).
  const redis = createRedis({ url, cluster: config.redisCluster, name: 'ingress', failFast: true });
  // BullMQ's own connection: queue.add must not share the fail-fast client's semantics, and the
  // ingress only adds jobs (never blocks), so it does not need a blocking connection either.
  const bull = createRedis({ url, cluster: config.redisCluster, name: 'ingress-bull', blocking: false });
  // Without listeners ioredis prints every reconnect error to stderr; the ingress warns once per
  // outage itself (on the first failed write), so the per-attempt errors go to debug.
  redis.on('error', (err) => log.debug({ err }, 'redis connection error'));
  bull.on('error', (err) => log.debug({ err }, 'redis connection error (queue)'));
  const queue = new Queue(QUEUES.forward, { connection: bull, prefix: QUEUE_PREFIX });
  queue.on('error', (err) => log.debug({ err }, 'forward queue error'));
  try {
    const mailbox = new Mailbox({ redis, forwardQueue: queue });
    const metrics = createMetrics({ service: 'ingress' });
    // The cluster-wide gauges (queue jobs, dead letters, warm pool) read through the queue client.
    const queueMetrics = instrumentQueueMetrics(metrics, bull);
    // Listen once Redis takes writes (up to 10 s): earlier requests would only get 503s. A Redis
    // still down after that is what /readyz and the 503s are for.
    if (redis.status !== 'ready') {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        redis.once('ready', () => (clearTimeout(timer), resolve()));
      });
    }
    // /metrics on ADMIN_PORT only: the webhook port is the internet's (the chart scrapes `admin`).
    const ingress = await createIngress({ config, log, redis, mailbox, webhookSecret: config.webhookSecret, metrics, metricsOnWebhookPort: false });
    const admin = await serveMetrics({ port: config.adminPort, metrics, ready: () => redis.status === 'ready' });
    log.info({ redis: describeRedisUrl(url), port: ingress.port, admin_port: config.adminPort }, 'ingress started');
    return {
      async close() {
        await ingress.close();
        await admin.close();
        await queueMetrics.close();
        await queue.close();
        await closeRedis(bull);
        await closeRedis(redis);
      },
    };
  } catch (err) {
    await queue.close().catch(() => undefined);
    await closeRedis(bull);
    await closeRedis(redis);
    throw err;
  }
});
