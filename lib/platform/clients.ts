/**
 * Builds the clients a service needs from its config. Services receive these objects rather than
 * building their own, so tests can wire a service to real servers on other ports.
 */
import { usesTelegramSandbox, type Config } from '../config.js';
import { ConfigError } from '../errors.js';
import { createRedis, closeRedis, type RedisClient } from '../redis.js';
import { TelegramClient } from '../telegram-client.js';
import { TenantRegistry } from '../registry/tenant-registry.js';
import { createDynamoClient } from '../registry/dynamo-client.js';
import { createS3Client } from '../state/s3-client.js';
import { StateStore } from '../state/state-store.js';

export interface PlatformClients {
  /** The Redis URL these clients use (services that need extra connections build them from it). */
  redisUrl: string;
  /** General-purpose commands (fails fast while Redis is down). */
  redis: RedisClient;
  /** For BullMQ queues and workers (retries forever, as BullMQ requires). */
  bull: RedisClient;
  registry: TenantRegistry;
  telegram: TelegramClient;
  state: StateStore;
  close(): Promise<void>;
}

export interface ClientOverrides {
  redisUrl?: string;
  dynamodbEndpoint?: string | undefined;
  s3Endpoint?: string | undefined;
  name: string;
}

export function createClients(config: Config, o: ClientOverrides): PlatformClients {
  // npm start replaces `sandbox` by the running sandbox's URL; nothing else may build a client on it.
  if (usesTelegramSandbox(config)) throw new ConfigError('TELEGRAM_API_BASE', 'sandbox: start the Bot API sandbox first (only npm start runs it)');
  const url = o.redisUrl ?? config.redisUrl;
  // Auto-pipelined: the forwarder's concurrent drains issue many small commands per event-loop
  // turn, and one socket write for all of them costs far less than a write (a syscall) each.
  const redis = createRedis({ url, cluster: config.redisCluster, name: `${o.name}`, autoPipelining: true });
  const bull = createRedis({ url, cluster: config.redisCluster, name: `${o.name}-bull`, blocking: true });
  const dynamo = createDynamoClient({ endpoint: o.dynamodbEndpoint ?? config.dynamodbEndpoint, region: config.awsRegion });
  const registry = new TenantRegistry({ client: dynamo, table: config.dynamodbTable });
  const telegram = new TelegramClient({ apiBase: config.telegramApiBase });
  const s3Endpoint = o.s3Endpoint ?? config.s3Endpoint;
  const s3 = createS3Client({ region: config.awsRegion, ...(s3Endpoint ? { endpoint: s3Endpoint } : {}) });
  const state = new StateStore({ s3, bucket: config.s3Bucket, maxStateBytes: config.stateMaxBytes });
  // Unreachable Redis is reported by the callers that need it; keep the default handler quiet.
  redis.on('error', () => undefined);
  bull.on('error', () => undefined);
  return {
    redisUrl: url,
    redis,
    bull,
    registry,
    telegram,
    state,
    async close() {
      await telegram.close();
      dynamo.destroy();
      s3.destroy();
      await closeRedis(redis);
      await closeRedis(bull);
    },
  };
}
