/**
 * The embedded default's stand-ins for managed services: a redis-server under DATA_DIR when nothing
 * answers at the default REDIS_URL, and dynalite (DynamoDB protocol) persisted under DATA_DIR.
 */
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { RuntimeError } from '../errors.js';
import { EmbeddedRedis } from '../embedded-redis.js';
import { isListening } from '../util/free-port.js';
import { startEmbeddedDynamo } from '../registry/embedded-dynamodb.js';
import { startEmbeddedS3 } from '../state/embedded-s3.js';
import type { Closeable } from './run-service.js';

export interface EmbeddedStores extends Closeable {
  redisUrl: string;
  dynamodbEndpoint: string | undefined;
  s3Endpoint: string | undefined;
  started: string[];
}

export async function startEmbeddedStores(config: Config, log: Logger): Promise<EmbeddedStores> {
  const closers: Array<() => Promise<void>> = [];
  const started: string[] = [];
  let redisUrl = config.redisUrl;
  if (config.redisUrlDefaulted) {
    const url = new URL(config.redisUrl);
    if (!(await isListening(url.hostname, Number(url.port || 6379)))) {
      if (!EmbeddedRedis.isInstalled()) {
        throw new RuntimeError('nothing answers at redis://127.0.0.1:6379 and redis-server is not installed: install it (Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`) or set REDIS_URL');
      }
      const redis = await EmbeddedRedis.start({ dir: path.join(config.dataDir, 'redis'), port: Number(url.port || 6379), persist: 'everysec' });
      closers.push(() => redis.stop('SIGTERM'));
      redisUrl = redis.url;
      started.push(`redis-server ${redis.url} (data in ${path.join(config.dataDir, 'redis')})`);
      log.info({ url: redis.url }, 'started embedded redis-server');
    }
  }
  let dynamodbEndpoint = config.dynamodbEndpoint;
  if (!dynamodbEndpoint) {
    const dynamo = await startEmbeddedDynamo({ dataDir: config.dataDir });
    closers.push(() => dynamo.close());
    dynamodbEndpoint = dynamo.endpoint;
    started.push(`dynalite ${dynamo.endpoint} (data in ${path.join(config.dataDir, 'dynamodb')})`);
    log.info({ endpoint: dynamo.endpoint }, 'started embedded DynamoDB (dynalite)');
  }
  let s3Endpoint = config.s3Endpoint;
  if (!s3Endpoint) {
    const s3 = await startEmbeddedS3({ dataDir: config.dataDir });
    closers.push(() => s3.close());
    s3Endpoint = s3.endpoint;
    started.push(`s3rver ${s3.endpoint} (data in ${path.join(config.dataDir, 's3')})`);
    log.info({ endpoint: s3.endpoint }, 'started embedded S3 (s3rver)');
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
