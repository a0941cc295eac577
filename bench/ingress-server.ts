/**
 * One server under test for bench/ingress.ts, in its own process (started by it over IPC):
 *
 *   real     the product: services/ingress/ingress.ts + Mailbox.accept on the given redis-server,
 *            wired exactly as services/ingress/main.ts wires it (auto-pipelined fail-fast client
 *            for the mailbox, a second connection for BullMQ's forward queue).
 *   ceiling  a bare uWebSockets.js server that answers 200 at once (no body read, no I/O).
 *   naive    node:http: verify the secret, read the body, parse it, `await queue.add()` per request
 *            (BullMQ on a default ioredis connection, job id = tenant.update_id for dedup).
 *
 * Args: <mode> <redisUrl> <masterSecret>. Reports `{ port }` when listening.
 */
import http from 'node:http';
import uWS from '@trufflesuite/uws-js-unofficial';
import { Queue } from 'bullmq';
import { createIngress, type Ingress } from '../services/ingress/ingress.js';
import { QUEUE_PREFIX } from '../lib/queues.js';
import { Mailbox } from '../lib/delivery/mailbox.js';
import { runnerSettings } from '../lib/delivery/runner-registry.js';
import { loadConfig } from '../lib/config.js';
import { ShardQueues } from '../lib/delivery/shard-queues.js';
import { DEFAULT_DELIVERY_SHARDS, DeliveryLayout } from '../lib/delivery/shards.js';
import { createMetrics } from '../lib/metrics.js';
import { createLogger } from '../lib/logger.js';
import { createRedis, closeRedis } from '../lib/redis.js';
import { verifyWebhookSecret } from '../lib/webhook-secret.js';
import { serveParent } from './lib/common.js';

const [mode, redisUrl, masterSecret] = process.argv.slice(2) as [string, string, string];
export const NAIVE_QUEUE = '{naive}';

const counters: Record<string, number> = {};
const count = (k: string): void => {
  counters[k] = (counters[k] ?? 0) + 1;
};
const usage = (): Record<string, unknown> => ({ cpu: process.cpuUsage(), mem: process.memoryUsage() });

async function real(): Promise<{ port: number; close(): Promise<void>; stats(): Promise<Record<string, number>> }> {
  const log = createLogger({ service: 'ingress', level: process.env.LOG_LEVEL ?? 'warn' });
  const cluster = process.env.BENCH_REDIS_CLUSTER === '1';
  const redis = createRedis({ url: redisUrl, name: 'ingress', autoPipelining: process.env.BENCH_AUTOPIPELINE === '1', failFast: true, cluster });
  const bull = createRedis({ url: redisUrl, name: 'ingress-bull', blocking: false, cluster });
  redis.on('error', () => undefined);
  bull.on('error', () => undefined);
  // The product's layout (DELIVERY_SHARDS, default 16): a drain queue per shard.
  const layout = DeliveryLayout.of(Number(process.env.DELIVERY_SHARDS ?? DEFAULT_DELIVERY_SHARDS));
  const queues = new ShardQueues(bull, layout);
  // BENCH_ACCEPT_BATCH=1: one accept script per update (the design before batching), for comparison.
  const acceptBatch = process.env.BENCH_ACCEPT_BATCH ? Number(process.env.BENCH_ACCEPT_BATCH) : undefined;
  // The runner settings and the opening leases as the product's ingress takes them from its configuration.
  const mailbox = new Mailbox({ redis, queues, layout, ...runnerSettings(loadConfig(process.env)), ...(acceptBatch ? { acceptBatch } : {}) });
  const metrics = createMetrics({ service: 'ingress' });
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  const ingress: Ingress = await createIngress({
    config: { ingressPort: 0, ingressHost: '127.0.0.1', ingressBodyLimit: 1_048_576 },
    log, redis, mailbox, webhookSecret: masterSecret, metrics,
  });
  return {
    port: ingress.port,
    async stats() {
      const out: Record<string, number> = {};
      for (const m of await metrics.registry.getMetricsAsJSON()) {
        if (m.name !== 'ztm_ingress_requests_total' && m.name !== 'ztm_ingress_updates_total') continue;
        for (const v of (m as unknown as { values: Array<{ value: number; labels: Record<string, string> }> }).values) {
          out[`${m.name.replace('ztm_ingress_', '')}{${Object.values(v.labels).join(',')}}`] = v.value;
        }
      }
      return out;
    },
    async close() {
      await ingress.close();
      await queues.close();
      await closeRedis(bull);
      await closeRedis(redis);
    },
  };
}

async function ceiling(): Promise<{ port: number; close(): Promise<void>; stats(): Promise<Record<string, number>> }> {
  const app = uWS.App().any('/*', (res) => {
    res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end('{"ok":true}');
  });
  let listen: uWS.us_listen_socket | false = false;
  app.listen('127.0.0.1', 0, (s) => {
    listen = s;
  });
  const socket = listen as uWS.us_listen_socket | false;
  if (!socket) throw new Error('ceiling: listen failed');
  return {
    port: uWS.us_socket_local_port(socket),
    async stats() {
      return {};
    },
    async close() {
      if (socket) uWS.us_listen_socket_close(socket);
    },
  };
}

async function naive(): Promise<{ port: number; close(): Promise<void>; stats(): Promise<Record<string, number>> }> {
  const url = new URL(redisUrl);
  const queue = new Queue(NAIVE_QUEUE, { connection: { host: url.hostname, port: Number(url.port) }, prefix: QUEUE_PREFIX });
  await queue.waitUntilReady();
  const send = (res: http.ServerResponse, status: number, body: string): void => {
    count(String(status));
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    const tenant = req.url?.startsWith('/tg/') ? req.url.slice(4) : undefined;
    if (req.method !== 'POST' || !tenant) return send(res, 404, '{"ok":false}');
    const secret = req.headers['x-telegram-bot-api-secret-token'];
    if (!verifyWebhookSecret(masterSecret, { tenant_id: tenant }, typeof secret === 'string' ? secret : undefined)) {
      req.resume();
      return send(res, 401, '{"ok":false}');
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let update: { update_id?: unknown };
        try {
          update = JSON.parse(body) as { update_id?: unknown };
        } catch {
          return send(res, 400, '{"ok":false}');
        }
        if (typeof update?.update_id !== 'number' || !Number.isSafeInteger(update.update_id)) return send(res, 400, '{"ok":false}');
        try {
          await queue.add('update', { t: tenant, u: body }, { jobId: `${tenant}.${update.update_id}`, removeOnComplete: true });
          send(res, 200, '{"ok":true}');
        } catch {
          send(res, 503, '{"ok":false}');
        }
      })();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('naive: listen failed');
  return {
    port: address.port,
    async stats() {
      return { ...counters };
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await queue.close();
    },
  };
}

const servers = { real, ceiling, naive } as const;
const factory = servers[mode as keyof typeof servers];
if (!factory) throw new Error(`unknown mode ${mode}`);
const server = await factory();
serveParent({ port: server.port }, {
  usage: () => usage(),
  stats: async () => ({ counters: await server.stats() }),
}, () => server.close());
