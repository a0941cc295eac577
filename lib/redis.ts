/**
 * Redis connection factory. One node or a Redis Cluster (REDIS_CLUSTER=true), AUTH and TLS from
 * the URL (`rediss://user:pass@host:port`). BullMQ workers need `maxRetriesPerRequest: null`.
 */
import { Redis, Cluster, type RedisOptions } from 'ioredis';
import { NoWorkerError } from './errors.js';
import { defineAllScripts } from './redis-scripts.js';

export type RedisClient = Redis | Cluster;

export interface RedisFactoryOptions {
  url: string;
  cluster?: boolean;
  /** Connection name shown in CLIENT LIST. */
  name?: string;
  /** For BullMQ Worker/QueueEvents: block forever instead of failing commands while reconnecting. */
  blocking?: boolean;
  /** Batch concurrent commands into one round trip (the ingress hot path). */
  autoPipelining?: boolean;
  /** Give up commands quickly while Redis is down instead of queueing them. */
  failFast?: boolean;
  lazyConnect?: boolean;
}

function nodeOptions(url: URL): RedisOptions {
  const opts: RedisOptions = {};
  if (url.username) opts.username = decodeURIComponent(url.username);
  if (url.password) opts.password = decodeURIComponent(url.password);
  if (url.protocol === 'rediss:') opts.tls = { servername: url.hostname };
  const db = url.pathname.replace('/', '');
  if (db) opts.db = Number(db);
  return opts;
}

export function createRedis(options: RedisFactoryOptions): RedisClient {
  const url = new URL(options.url);
  const common: RedisOptions = {
    ...nodeOptions(url),
    connectionName: options.name,
    lazyConnect: options.lazyConnect ?? false,
    enableAutoPipelining: options.autoPipelining ?? false,
    maxRetriesPerRequest: options.blocking ? null : options.failFast ? 0 : 3,
    enableOfflineQueue: !options.failFast,
    // Reconnect forever with a capped backoff: a restarted Redis must be picked up again.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
  };
  const client: RedisClient = options.cluster
    ? new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
      redisOptions: common,
      enableAutoPipelining: common.enableAutoPipelining,
      enableOfflineQueue: common.enableOfflineQueue,
      dnsLookup: (address, callback) => callback(null, address),
    })
    : new Redis({ ...common, host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379) });
  defineAllScripts(client);
  return client;
}

/** Redacted form of a Redis URL for logs (password removed). */
export function describeRedisUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid redis url>';
  }
}

/** Quits a client, falling back to disconnect when Redis is unreachable. Never throws. */
export async function closeRedis(client: RedisClient | undefined): Promise<void> {
  if (!client) return;
  try {
    if (client.status === 'end') return;
    await Promise.race([client.quit(), new Promise((r) => setTimeout(r, 1000))]);
  } catch {
    /* already gone */
  }
  client.disconnect();
}

/** `INFO cluster` says this node is part of a Redis Cluster (`cluster_enabled:1`). */
export function isClusterInfo(info: string): boolean {
  return /^cluster_enabled:1\s*$/m.test(info);
}

/**
 * Throws one clear line within 3 s when Redis does not answer at `url` (the CLI's first step, so a
 * wrong URL is reported instead of retried forever). Never leaves a connection behind. Resolves
 * with the mode to connect in: `options.cluster` when given, else what the node says of itself
 * (`INFO cluster`), so any node's address of a cluster works without a setting.
 */
export async function assertRedisReachable(url: string, options: { cluster?: boolean | undefined; name: string }): Promise<boolean> {
  // A single-node connection answers PING and INFO on a cluster node too: one probe for both.
  const clusterProbe = options.cluster === true;
  const probe = createRedis({ url, cluster: clusterProbe, name: `${options.name}-probe`, failFast: true, lazyConnect: true });
  probe.on('error', () => undefined);
  try {
    return await Promise.race([
      probe.connect().then(async () => {
        await probe.ping();
        if (options.cluster !== undefined) return options.cluster;
        // A server that refuses INFO (renamed by a managed Redis) is taken as a single node.
        return isClusterInfo(await probe.info('cluster').catch(() => ''));
      }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 3000).unref()),
    ]);
  } catch {
    throw new NoWorkerError(`cannot reach Redis at ${describeRedisUrl(url)}: is the platform running (npm start) and ZTM_REDIS_URL right?`);
  } finally {
    probe.disconnect();
  }
}
