/**
 * What the forwarder needs and nothing else, on real servers: redis-server, dynalite (the tenant
 * registry: bot tokens), the Telegram emulator. Updates enter through Mailbox.accept, as the
 * ingress does; the tenant's endpoint is written as a wake would; the agent is the test's own
 * (outbox-agent.ts). The forwarder runs in this process (createForwarder, as main.ts builds it) or
 * as a real child process (services/forwarder/main.ts) that a test can kill -9.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { loadConfig, type Config } from '../../lib/config.js';
import { createClients, type PlatformClients } from '../../lib/platform/clients.js';
import { createMetrics, type Metrics } from '../../lib/metrics.js';
import { Mailbox } from '../../lib/delivery/mailbox.js';
import { runnerSettings } from '../../lib/delivery/runner-registry.js';
import { Endpoints } from '../../lib/delivery/endpoints.js';
import { DeadLetterStore, type PublicDeadLetter } from '../../lib/delivery/dead-letters.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import { TelegramClient } from '../../lib/telegram-client.js';
import { createForwarder, type Forwarder } from '../../services/forwarder/forwarder.js';
import { startRedis, type TestRedis } from './redis.js';
import { startDynamo, type TestDynamo } from './dynamo.js';
import { TelegramEmulator } from './telegram-emulator.js';
import { LogCapture } from './log-capture.js';
import { ServiceSet, type ServiceProcess } from './services.js';

export interface OutboxHarness {
  redis: TestRedis;
  emulator: TelegramEmulator;
  clients: PlatformClients;
  mailbox: Mailbox;
  deadLetters: DeadLetterStore;
  webhookSecret: string;
  /** The environment a forwarder process gets (TELEGRAM_API_BASE: the emulator unless overridden). */
  env: Record<string, string>;
  addTenant(tenantId: string, token: string): Promise<void>;
  /** Points the tenant's endpoint at an agent, as a finished wake does. */
  setEndpoint(tenantId: string, address: string): Promise<void>;
  /** Accepts a text message of `chatId` as the ingress would. */
  send(tenantId: string, chatId: number, updateId: number, text: string): Promise<void>;
  /** A forwarder in this process, closed by close(); its log lines in `logs`. */
  startForwarder(env?: Record<string, string>): Promise<{ forwarder: Forwarder; logs: LogCapture; metrics: Metrics; config: Config }>;
  /** A forwarder as its own OS process (not started yet), killed by close(). */
  forwarderProcess(env?: Record<string, string>): ServiceProcess;
  deadLetterList(): Promise<PublicDeadLetter[]>;
  close(): Promise<void>;
}

export async function startOutboxHarness(baseEnv: Record<string, string> = {}): Promise<OutboxHarness> {
  const redis = await startRedis();
  const dynamo: TestDynamo = await startDynamo();
  const emulator = await TelegramEmulator.start();
  const webhookSecret = randomBytes(24).toString('base64url');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-outbox-'));
  const env: Record<string, string> = {
    REDIS_URL: redis.url, DYNAMODB_ENDPOINT: dynamo.endpoint, DYNAMODB_TABLE: `t-${randomBytes(4).toString('hex')}`,
    TELEGRAM_API_BASE: emulator.url, WEBHOOK_SECRET: webhookSecret, DATA_DIR: dataDir, ADMIN_PORT: '0', LOG_LEVEL: 'info',
    ...baseEnv,
  };
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    // Nothing may outlive a harness that could not start.
    await emulator.close();
    await dynamo.close();
    await redis.close();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const clients = createClients(config, { name: 'outbox-test' });
  await clients.registry.ensureTable();
  const queue = new Queue(QUEUES.forward, { connection: clients.bull, prefix: QUEUE_PREFIX });
  // As the product's ingress builds it: runner settings and the opening leases from the configuration.
  const mailbox = new Mailbox({ redis: clients.redis, forwardQueue: queue, ...runnerSettings(config) });
  const endpoints = new Endpoints({ redis: clients.redis });
  const deadLetters = new DeadLetterStore({ redis: clients.redis });
  const services = new ServiceSet();
  const inProcess: Array<{ forwarder: Forwarder; telegram: TelegramClient }> = [];

  return {
    redis, emulator, clients, mailbox, deadLetters, webhookSecret, env,
    async addTenant(tenantId, token) {
      emulator.addBot(token);
      await clients.registry.create({ tenant_id: tenantId, bot_token: token });
    },
    async setEndpoint(tenantId, address) {
      await endpoints.set(tenantId, address);
    },
    async send(tenantId, chatId, updateId, text) {
      const update = { update_id: updateId, message: { message_id: updateId, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private' }, from: { id: chatId, is_bot: false, first_name: 'u' }, text } };
      await mailbox.accept(tenantId, String(chatId), updateId, JSON.stringify(update));
    },
    async startForwarder(extra = {}) {
      const fconfig = loadConfig({ ...env, ...extra });
      const logs = new LogCapture();
      const metrics = createMetrics({ service: 'forwarder', defaultMetrics: false });
      // Its own Bot API client: the test may point it elsewhere (a TelegramGate).
      const telegram = new TelegramClient({ apiBase: fconfig.telegramApiBase });
      const forwarder = createForwarder({
        config: fconfig, log: logs.logger('forwarder'), redis: clients.redis, bull: clients.bull, registry: clients.registry,
        telegram, webhookSecret, metrics, sweepIntervalMs: 500, sweepStaleMs: 2_000,
      });
      inProcess.push({ forwarder, telegram });
      return { forwarder, logs, metrics, config: fconfig };
    },
    forwarderProcess(extra = {}) {
      return services.add({
        name: 'forwarder', entry: 'services/forwarder/main.ts', env: { ...env, ...extra }, readyMsg: 'forwarder started',
        keep: ['forwarded to pod', 'kept from an earlier delivery', 'agent answered duplicate'],
      });
    },
    async deadLetterList() {
      return deadLetters.list();
    },
    async close() {
      for (const f of inProcess.splice(0)) {
        await f.forwarder.close();
        await f.telegram.close();
      }
      await services.close();
      await queue.close();
      await clients.close();
      await emulator.close();
      await dynamo.close();
      await redis.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Telegram's bot token shape, distinct per test. */
export const botToken = (n: number): string => `${700_000_000 + n}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDs${String(n).padStart(3, '0')}`;
