/**
 * The forwarder: a BullMQ worker over the `{forward}` queue whose jobs are chat drains (see
 * drainer.ts), plus the sweeper that gives responsibility back to chats whose drain job was lost.
 */
import { Queue, Worker } from 'bullmq';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { RedisClient } from '../../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import { Mailbox } from '../../lib/delivery/mailbox.js';
import { Endpoints } from '../../lib/delivery/endpoints.js';
import { EndpointWatch } from '../../lib/delivery/endpoint-watch.js';
import { DeadLetterStore } from '../../lib/delivery/dead-letters.js';
import { TenantCache } from '../../lib/tenants/tenant-cache.js';
import type { TenantRegistry } from '../../lib/registry/tenant-registry.js';
import type { TelegramClient } from '../../lib/telegram-client.js';
import { AgentClient } from './agent-client.js';
import { TypingNotifier } from './typing-notifier.js';
import { ReplySender } from './reply-sender.js';
import { Drainer } from './drainer.js';

export interface ForwarderOptions {
  config: Config;
  log: Logger;
  /** General commands (mailbox scripts, endpoint cache). */
  redis: RedisClient;
  /** BullMQ connection (maxRetriesPerRequest: null). */
  bull: RedisClient;
  registry: TenantRegistry;
  telegram: TelegramClient;
  webhookSecret: string;
  metrics?: Metrics;
  /** How long a chat's drain may make no progress before the sweeper re-checks its job. */
  sweepStaleMs?: number;
  sweepIntervalMs?: number;
}

export interface Forwarder {
  worker: Worker;
  mailbox: Mailbox;
  deadLetters: DeadLetterStore;
  tenants: TenantCache;
  close(): Promise<void>;
}

export function createForwarder(o: ForwarderOptions): Forwarder {
  for (const k of ['config', 'log', 'redis', 'bull', 'registry', 'telegram', 'webhookSecret'] as const) {
    if (!o[k]) throw new TypeError(`createForwarder: ${k} is required`);
  }
  const forwardQueue = new Queue(QUEUES.forward, { connection: o.bull, prefix: QUEUE_PREFIX });
  const wakeQueue = new Queue(QUEUES.wake, { connection: o.bull, prefix: QUEUE_PREFIX });
  const mailbox = new Mailbox({ redis: o.redis, forwardQueue });
  const endpoints = new Endpoints({ redis: o.redis });
  const deadLetters = new DeadLetterStore({ redis: o.redis });
  const tenants = new TenantCache({ registry: o.registry });
  // "typing…" while a chat waits for its tenant's wake or its agent's answer; in memory only.
  const typing = new TypingNotifier({ telegram: o.telegram, tokenOf: (id) => tenants.botToken(id), log: o.log });
  const agents = new AgentClient({ protocol: o.config.agentProtocol, timeoutMs: o.config.agentTimeoutS * 1000, typing });
  const replies = new ReplySender({ telegram: o.telegram, log: o.log, metrics: o.metrics });
  // Half the worker slots may wait for wakes in place; the rest stay free for awake tenants.
  const wakeWatch = new EndpointWatch({ redis: o.redis, log: o.log, maxWaiters: Math.floor(o.config.forwarderConcurrency / 2) });
  wakeWatch.start().catch((err: unknown) => o.log.warn({ err }, 'wake watch not subscribed: drains park during wakes'));
  const drainer = new Drainer({
    config: o.config, log: o.log, redis: o.redis, mailbox, endpoints, deadLetters, tenants, agents, replies,
    wakeQueue, webhookSecret: o.webhookSecret, metrics: o.metrics, wakeWatch, typing,
  });
  const worker = new Worker(QUEUES.forward, (job, token) => drainer.process(job, token), {
    connection: o.bull,
    prefix: QUEUE_PREFIX,
    concurrency: o.config.forwarderConcurrency,
    // A killed worker's drains come back after the lock expires; never fail a job for stalling.
    lockDuration: 10_000,
    stalledInterval: 5_000,
    maxStalledCount: 1_000_000,
  });
  worker.on('error', (err) => o.log.error({ err }, 'forwarder worker error'));
  worker.on('failed', (job, err) => o.log.error({ job: job?.id, err }, 'drain job failed (will be retried)'));

  const sweepStaleMs = o.sweepStaleMs ?? 30_000;
  const sweep = setInterval(() => {
    mailbox.sweep(sweepStaleMs).then(
      (r) => r.repaired > 0 && o.log.warn(r, 'mailbox sweeper re-scheduled lost drains'),
      (err: unknown) => o.log.warn({ err }, 'mailbox sweep failed'),
    );
  }, o.sweepIntervalMs ?? 5_000);
  sweep.unref();

  return {
    worker,
    mailbox,
    deadLetters,
    tenants,
    async close() {
      clearInterval(sweep);
      typing.close();
      drainer.stop();
      await wakeWatch.close(); // waiting drains park now, so the worker can close
      await worker.close();
      await agents.close();
      await Promise.allSettled([forwardQueue.close(), wakeQueue.close()]);
    },
  };
}
