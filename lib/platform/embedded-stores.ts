/**
 * The embedded default's stand-ins for managed services: a redis-server under DATA_DIR when nothing
 * answers at the default REDIS_URL, and dynalite (DynamoDB protocol) and s3rver (S3) persisted
 * under DATA_DIR, both taking only requests signed with the key kept in DATA_DIR/secrets.json.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { RuntimeError } from '../errors.js';
import { EmbeddedRedis, pingRedis } from '../embedded-redis.js';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { describeRedisUrl } from '../redis.js';
import { isListening } from '../util/free-port.js';
import { startEmbeddedDynamo } from '../registry/embedded-dynamodb.js';
import { startEmbeddedS3 } from '../state/embedded-s3.js';
import type { Closeable } from './run-service.js';
import { loadOrCreateStoreCredentials } from '../local-secrets.js';
import { describeStoreEndpoint } from './store-credentials.js';

export interface EmbeddedStores extends Closeable {
  redisUrl: string;
  /** With the store's key in its user info when started here (describeStoreEndpoint to show it). */
  dynamodbEndpoint: string | undefined;
  /** With the store's key in its user info when started here (describeStoreEndpoint to show it). */
  s3Endpoint: string | undefined;
  started: string[];
}

export async function startEmbeddedStores(config: Config, log: Logger): Promise<EmbeddedStores> {
  const closers: Array<() => Promise<void>> = [];
  const started: string[] = [];
  let redisUrl = config.redisUrl;
  if (config.redisUrlDefaulted) {
    const url = new URL(config.redisUrl);
    const port = Number(url.port || 6379);
    const redisDir = path.join(config.dataDir, 'redis');
    // The Redis this platform starts requires a password of its own (agents run on this host).
    const password = loadOrCreateRedisPassword(redisDir);
    if (await isListening(url.hostname, port)) {
      // Ours from a previous run (still running after a crash) answers to the password.
      if (await answersWithPassword(url.hostname, port, password)) redisUrl = `redis://:${encodeURIComponent(password)}@${url.hostname}:${port}`;
    } else {
      if (!EmbeddedRedis.isInstalled()) {
        throw new RuntimeError('nothing answers at redis://127.0.0.1:6379 and redis-server is not installed: install it (Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`) or set REDIS_URL');
      }
      const redis = await EmbeddedRedis.start({ dir: redisDir, port, persist: 'everysec', password });
      closers.push(() => redis.stop('SIGTERM'));
      redisUrl = redis.url;
      started.push(`redis-server ${describeRedisUrl(redis.url)} (password in ${path.join(redisDir, 'password')}; data in ${redisDir})`);
      log.info({ url: describeRedisUrl(redis.url) }, 'started embedded redis-server (password required)');
    }
  }
  // Agents share this host's network: the stores take only requests signed with this key.
  const credentials = !config.dynamodbEndpoint || !config.s3Endpoint ? loadOrCreateStoreCredentials(config.dataDir) : undefined;
  const keyNote = `requests signed with the key in ${path.join(config.dataDir, 'secrets.json')} only`;
  let dynamodbEndpoint = config.dynamodbEndpoint;
  if (!dynamodbEndpoint) {
    const dynamo = await startEmbeddedDynamo({ dataDir: config.dataDir, ...(credentials ? { credentials } : {}), log });
    closers.push(() => dynamo.close());
    dynamodbEndpoint = dynamo.endpoint;
    const shown = describeStoreEndpoint(dynamo.endpoint);
    started.push(`dynalite ${shown} (${keyNote}; data in ${path.join(config.dataDir, 'dynamodb')})`);
    log.info({ endpoint: shown }, 'started embedded DynamoDB (dynalite)');
  }
  let s3Endpoint = config.s3Endpoint;
  if (!s3Endpoint) {
    const s3 = await startEmbeddedS3({ dataDir: config.dataDir, ...(credentials ? { credentials } : {}), log });
    closers.push(() => s3.close());
    s3Endpoint = s3.endpoint;
    const shown = describeStoreEndpoint(s3.endpoint);
    started.push(`s3rver ${shown} (${keyNote}; data in ${path.join(config.dataDir, 's3')})`);
    log.info({ endpoint: shown }, 'started embedded S3 (s3rver)');
  }
  return {
    redisUrl,
    dynamodbEndpoint,
    s3Endpoint,
    started,
    async close() {
      for (const close of closers.reverse()) await close().catch(() => undefined);
    },
  };
}

/** DATA_DIR/redis/password (0600): made once, so a restarted platform reaches the Redis it started. */
function loadOrCreateRedisPassword(dir: string): string {
  const file = path.join(dir, 'password');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (existsSync(file)) {
    chmodSync(file, 0o600);
    const stored = readFileSync(file, 'utf8').trim();
    if (/^[A-Za-z0-9_-]{32,}$/.test(stored)) return stored;
  }
  const password = randomBytes(24).toString('base64url');
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  return password;
}

/** True when the Redis there requires a password (NOAUTH without one) and ours opens it. */
async function answersWithPassword(host: string, port: number, password: string): Promise<boolean> {
  // A Redis that needs no password (the machine's own) is used as it is, without ours.
  if (await pingRedis({ host, port })) return false;
  return pingRedis({ host, port, password });
}
