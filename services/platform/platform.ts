/**
 * Every service wired together around clients passed in: what `npm start` runs in one process and
 * what the end-to-end tests run around their own servers. Production runs the same pieces one per
 * Deployment (services/<name>/main.ts).
 */
import { Queue } from 'bullmq';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import { createMetrics, type Metrics } from '../../lib/metrics.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import { createRedis, closeRedis } from '../../lib/redis.js';
import type { PlatformClients } from '../../lib/platform/clients.js';
import type { PlatformSecrets } from '../../lib/local-secrets.js';
import { Mailbox } from '../../lib/delivery/mailbox.js';
import { profileFor } from '../../agent/profiles/index.js';
import { createLocalRuntime } from '../../lib/runtime/create-runtime.js';
import type { Runtime } from '../../lib/runtime/runtime.js';
import { RuntimeLifecycle } from '../../lib/tenants/tenant-lifecycle.js';
import { createIngress, type Ingress } from '../ingress/ingress.js';
import { createForwarder, type Forwarder } from '../forwarder/forwarder.js';
import { Waker } from '../waker/waker.js';
import { createJanitor, type Janitor } from '../janitor/janitor.js';
import { PoolKeeper } from '../pool-keeper/pool-keeper.js';
import { instrumentQueueMetrics } from '../../lib/ops/queue-metrics.js';

export interface PlatformOptions {
  config: Config;
  log: Logger;
  clients: PlatformClients;
  secrets: PlatformSecrets;
  /** Defaults to the local runtime under config.dataDir. */
  runtime?: Runtime;
  metrics?: Metrics;
}

export interface Platform {
  ingress: Ingress;
  forwarder: Forwarder;
  waker: Waker;
  janitor: Janitor;
  runtime: Runtime;
  poolKeeper: PoolKeeper;
  lifecycle: RuntimeLifecycle;
  metrics: Metrics;
  close(): Promise<void>;
}

export async function startPlatform(o: PlatformOptions): Promise<Platform> {
  const { config, log, clients, secrets } = o;
  // Local agents run on this host: a missing binary or a too-old Node fails the start, in one line.
  if (!o.runtime) await profileFor(config.agent).preflight(config.agent);
  const metrics = o.metrics ?? createMetrics({ service: 'platform' });
  await clients.state.ensureBucket();
  const queueMetrics = instrumentQueueMetrics(metrics, clients.redis);
  const runtime = o.runtime ?? createLocalRuntime(config, log, secrets);
  const forwarder = createForwarder({
    config, log: log.child({ component: 'forwarder' }), redis: clients.redis, bull: clients.bull,
    registry: clients.registry, telegram: clients.telegram, webhookSecret: secrets.webhookSecret, metrics,
  });
  const waker = new Waker({
    config, log: log.child({ component: 'waker' }), redis: clients.redis, bull: clients.bull,
    registry: clients.registry, runtime, state: clients.state, metrics,
  });
  const wakeQueue = new Queue(QUEUES.wake, { connection: clients.bull, prefix: QUEUE_PREFIX });
  const lifecycle = new RuntimeLifecycle({
    registry: clients.registry, runtime, state: clients.state, redis: clients.redis, wakeQueue,
    log: log.child({ component: 'lifecycle' }), wakeTimeoutS: config.wakeLockTtlS,
  });
  const janitor = await createJanitor({
    config, log: log.child({ component: 'janitor' }), clients, webhookSecret: secrets.webhookSecret, runtime, lifecycle,
  });
  const poolKeeper = new PoolKeeper({ pool: runtime, redis: clients.redis, log: log.child({ component: 'pool-keeper' }), target: config.warmPoolTarget, metrics, intervalMs: 1000 });
  poolKeeper.start();
  // The ingress gets its own connection, failing fast while Redis is down (→ 503); not
  // auto-pipelined: the mailbox batches accepts itself and sends each batch at once.
  const ingressRedis = createRedis({ url: clients.redisUrl, cluster: config.redisCluster, name: 'ingress', failFast: true });
  ingressRedis.on('error', () => undefined);
  // Take webhooks only once Redis can take their writes (a fail-fast client refuses before that).
  if (ingressRedis.status !== 'ready') await new Promise((resolve) => ingressRedis.once('ready', resolve));
  const ingressQueue = new Queue(QUEUES.forward, { connection: clients.bull, prefix: QUEUE_PREFIX });
  const mailbox = new Mailbox({ redis: ingressRedis, forwardQueue: ingressQueue });
  const ingress = await createIngress({ config, log: log.child({ component: 'ingress' }), redis: ingressRedis, mailbox, webhookSecret: secrets.webhookSecret, metrics });

  return {
    ingress, forwarder, waker, janitor, runtime, poolKeeper, lifecycle, metrics,
    async close() {
      // Stop taking work first, then hand back in-flight drains, then stop agents (checkpointing).
      await ingress.close();
      await janitor.close();
      await poolKeeper.close();
      await forwarder.close();
      await waker.close();
      await runtime.close();
      await Promise.allSettled([wakeQueue.close(), ingressQueue.close(), queueMetrics.close()]);
      await closeRedis(ingressRedis);
    },
  };
}

