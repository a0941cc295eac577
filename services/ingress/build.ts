/**
 * The ingress, built once for its own Deployment (main.ts) and the one-process platform. It needs
 * Redis only (no DynamoDB, no Telegram), so it makes its two Redis connections itself from the URL.
 */
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import { createRedis, closeRedis, type RedisClient } from '../../lib/redis.js';
import { Mailbox } from '../../lib/delivery/mailbox.js';
import { runnerSettings } from '../../lib/delivery/runner-registry.js';
import { ShardQueues } from '../../lib/delivery/shard-queues.js';
import { DeliveryLayout } from '../../lib/delivery/shards.js';
import { LegacyGate } from './legacy-gate.js';
import { CloseChain, serviceMetrics, startedPart, type BuiltService } from '../../lib/platform/service-parts.js';
import { createIngress, type Ingress } from './ingress.js';

export interface IngressDeps {
  config: Config;
  log: Logger;
  redisUrl: string;
  webhookSecret: string;
  metrics?: Metrics;
  /** GET /metrics on the webhook port too (`npm start`); the Deployment serves it on ADMIN_PORT only. */
  metricsOnWebhookPort: boolean;
  /** How long build waits for Redis to take writes before listening anyway (default 10 s). */
  readyWaitMs?: number;
  stepTimeoutMs?: number;
}

export interface BuiltIngress extends BuiltService {
  readonly metrics: Metrics;
  /** The fail-fast connection the webhooks are written through (what /readyz reports on). */
  readonly redis: RedisClient;
  /** The listening server; after start(). */
  readonly ingress: Ingress;
}

export async function buildIngress(d: IngressDeps): Promise<BuiltIngress> {
  const { config, log } = d;
  const chain = new CloseChain(log, d.stepTimeoutMs);
  // The hot path: failing at once while Redis is down (→ 503, Telegram retries) rather than
  // queueing writes that a crash would lose after we said 200. Not auto-pipelined: the mailbox
  // batches accepts itself and each batch must go out at once (see Mailbox acceptBatch).
  const redis = createRedis({ url: d.redisUrl, cluster: config.redisCluster, name: 'ingress', failFast: true });
  chain.add('redis', () => closeRedis(redis));
  // BullMQ's own connection: queue.add must not share the fail-fast client's semantics, and the
  // ingress only adds jobs (never blocks), so it does not need a blocking connection either.
  const bull = createRedis({ url: d.redisUrl, cluster: config.redisCluster, name: 'ingress-bull', blocking: false });
  chain.add('redis (queue)', () => closeRedis(bull));
  // Without listeners ioredis prints every reconnect error to stderr; the ingress warns once per
  // outage itself (on the first failed write), so the per-attempt errors go to debug.
  redis.on('error', (err) => log.debug({ err }, 'redis connection error'));
  bull.on('error', (err) => log.debug({ err }, 'redis connection error (queue)'));
  // The drain queues of every shard, opened on the queue connection as the updates need them.
  const layout = DeliveryLayout.of(config.deliveryShards);
  const queues = new ShardQueues(bull, layout);
  chain.add('forward queues', () => queues.close());
  const mailbox = new Mailbox({
    redis, queues, layout, dedupWindowS: config.dedupWindowS, dedupMax: config.dedupMaxPerTenant,
    waitReplicas: config.deliveryWaitReplicas, waitTimeoutMs: config.deliveryWaitTimeoutMs,
    ...runnerSettings(config),
  });
  // The cluster-wide gauges (queue jobs, dead letters, warm pool) read through the queue client.
  const metrics = serviceMetrics('ingress', d.metrics, bull, chain);
  // Listen once Redis takes writes: earlier requests would only get 503s. A Redis still down after
  // that is what /readyz and the 503s are for.
  if (redis.status !== 'ready') {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, d.readyWaitMs ?? 10_000);
      redis.once('ready', () => (clearTimeout(timer), resolve()));
    });
  }
  let ingress: Ingress | undefined;
  return {
    metrics,
    redis,
    get ingress() {
      return startedPart('ingress', 'the webhook server', ingress);
    },
    async start() {
      // Nothing is accepted while the previous version's single-slot layout still has mail (legacy-gate.ts).
      const gate = new LegacyGate(redis, log);
      chain.add('legacy layout gate', () => (gate.close(), undefined));
      await gate.ready();
      ingress = await createIngress({ config, log, redis, mailbox: gate.wrap(mailbox), webhookSecret: d.webhookSecret, metrics, metricsOnWebhookPort: d.metricsOnWebhookPort });
      // Stop taking webhooks first, then the queue and connections under it.
      chain.add('webhook server', () => ingress?.close());
    },
    close: () => chain.close(),
  };
}
