/**
 * Builds the clients a service needs from its config. Services receive these objects rather than
 * building their own, so tests can wire a service to real servers on other ports.
 */
import type { Config } from '../config.js';
import { createRedis, closeRedis, type RedisClient } from '../redis.js';
import { TelegramClient } from '../telegram-client.js';
import { TenantRegistry } from '../registry/tenant-registry.js';
import { createDynamoClient } from '../registry/dynamo-client.js';

export interface PlatformClients {
  /** General-purpose commands (fails fast while Redis is down). */
  redis: RedisClient;
  /** For BullMQ queues and workers (retries forever, as BullMQ requires). */
  bull: RedisClient;
  registry: TenantRegistry;
  telegram: TelegramClient;
  close(): Promise<void>;
}

export interface ClientOverrides {
  redisUrl?: string;
  dynamodbEndpoint?: string | undefined;
  name: string;
}

export function createClients(config: Config, o: ClientOverrides): PlatformClients {
  const url = o.redisUrl ?? config.redisUrl;
  const redis = createRedis({ url, cluster: config.redisCluster, name: `${o.name}` });
  const bull = createRedis({ url, cluster: config.redisCluster, name: `${o.name}-bull`, blocking: true });
  const dynamo = createDynamoClient({ endpoint: o.dynamodbEndpoint ?? config.dynamodbEndpoint, region: config.awsRegion });
  const registry = new TenantRegistry({ client: dynamo, table: config.dynamodbTable });
  const telegram = new TelegramClient({ apiBase: config.telegramApiBase });
  return {
    redis,
    bull,
    registry,
    telegram,
    async close() {
      await telegram.close();
      dynamo.destroy();
      await closeRedis(redis);
      await closeRedis(bull);
    },
  };
}
