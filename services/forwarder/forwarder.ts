/**
 * The forwarder: a BullMQ worker over each delivery shard's drain queue (`{forward:<s>.<j>}`,
 * lib/delivery/shards.ts) and over the legacy `{forward}` queue (drains left by the single-slot
 * layout of earlier versions), whose jobs are chat drains (see drainer.ts), plus the sweeper that
 * gives responsibility back to chats whose drain job was lost.
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { RedisClient } from '../../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import { Mailbox } from '../../lib/delivery/mailbox.js';
import { runnerSettings } from '../../lib/delivery/runner-registry.js';
import { ShardQueues } from '../../lib/delivery/shard-queues.js';
import { DeliveryLayout } from '../../lib/delivery/shards.js';
import { ActivityFlusher } from './activity-flusher.js';
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
import { ShardRunners } from './shard-runner.js';
import { RUN_JOB_NAME } from '../../lib/delivery/drain-contract.js';
import { closeWorker } from '../../lib/platform/close-worker.js';

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
  /** One worker per shard queue, then the legacy queue's. */
  workers: Worker[];
  mailbox: Mailbox;
  /** The legacy layout's mailbox (drains left from before sharding). */
  legacyMailbox: Mailbox;
  deadLetters: DeadLetterStore;
  tenants: TenantCache;
  close(): Promise<void>;
}

/** How long closing runners get to leave their BLPOP before their connections are dropped. */
const RUNNER_STOP_MS = 2_000;

export function createForwarder(o: ForwarderOptions): Forwarder {
  for (const k of ['config', 'log', 'redis', 'bull', 'registry', 'telegram', 'webhookSecret'] as const) {
    if (!o[k]) throw new TypeError(`createForwarder: ${k} is required`);
  }
  const layout = DeliveryLayout.of(o.config.deliveryShards);
  const queues = new ShardQueues(o.bull, layout);
  const wakeQueue = new Queue(QUEUES.wake, { connection: o.bull, prefix: QUEUE_PREFIX });
  const runnerOptions = runnerSettings(o.config);
  const mailbox = new Mailbox({ redis: o.redis, queues, layout, ...runnerOptions });
  const legacyMailbox = new Mailbox({ redis: o.redis, queues, layout: DeliveryLayout.LEGACY, ...runnerOptions });
  const endpoints = new Endpoints({ redis: o.redis });
  const deadLetters = new DeadLetterStore({ redis: o.redis, layout });
  const legacyDeadLetters = new DeadLetterStore({ redis: o.redis, layout: DeliveryLayout.LEGACY });
  const tenants = new TenantCache({ registry: o.registry });
  const replies = new ReplySender({ telegram: o.telegram, log: o.log, metrics: o.metrics });
  // "typing…" while a chat waits for its tenant's wake or its agent's answer; in memory only. A
  // bot told to wait (429) waits for both: the answers' gate is the typing's.
  const typing = new TypingNotifier({ telegram: o.telegram, tokenOf: (id) => tenants.botToken(id), log: o.log, gate: replies, metrics: o.metrics });
  const agents = new AgentClient({ protocol: o.config.agentProtocol, timeoutMs: o.config.agentTimeoutS * 1000, typing });
  const activity = new ActivityFlusher(o.redis, o.log);
  // Each shard's worker gets twice its share of FORWARDER_CONCURRENCY (shards are not evenly
  // loaded), at least 2; half of a worker's slots at most wait for wakes in place, and half of
  // FORWARDER_CONCURRENCY over all of them, so the rest stay free for awake tenants.
  const perShard = Math.max(2, Math.ceil((2 * o.config.forwarderConcurrency) / layout.count));
  const wakeWatch = new EndpointWatch({ redis: o.redis, log: o.log, maxWaiters: Math.floor(o.config.forwarderConcurrency / 2) });
  wakeWatch.start().catch((err: unknown) => o.log.warn({ err }, 'wake watch not subscribed: drains park during wakes'));
  const drainerFor = (mb: Mailbox, dl: DeadLetterStore): Drainer => new Drainer({
    config: o.config, log: o.log, mailbox: mb, endpoints, deadLetters: dl, tenants, agents, replies,
    wakeQueue, webhookSecret: o.webhookSecret, metrics: o.metrics, wakeWatch, typing, waitersPerQueue: Math.max(1, Math.floor(perShard / 2)), activity,
  });
  const drainer = drainerFor(mailbox, deadLetters);
  const legacyDrainer = drainerFor(legacyMailbox, legacyDeadLetters);
  // A runner holds a slot of its shard's worker and drains up to `perShard` chats in slots of its
  // own; all runners of the process together at most twice FORWARDER_CONCURRENCY.
  const runners = new ShardRunners({ log: o.log, connect: () => o.bull.duplicate(), slots: perShard, maxDrains: 2 * o.config.forwarderConcurrency });
  const workerFor = (queue: string, d: Drainer, mb: Mailbox, concurrency: number): Worker => {
    const process = (job: Job, token: string | undefined): Promise<string> => (job.name === RUN_JOB_NAME ? runners.run(job, mb, d) : d.process(job, token));
    const worker = new Worker(queue, process, {
      connection: o.bull,
      prefix: QUEUE_PREFIX,
      concurrency,
      // A killed worker's drains come back after the lock expires; never fail a job for stalling.
      lockDuration: 10_000,
      stalledInterval: 5_000,
      maxStalledCount: 1_000_000,
    });
    worker.on('error', (err) => o.log.error({ err, queue }, 'forwarder worker error'));
    worker.on('failed', (job, err) => o.log.error({ job: job?.id, err, queue }, 'drain job failed (will be retried)'));
    return worker;
  };
  const workers = [
    // One more slot than drains: the shard's runner takes one.
    ...layout.shards.map((shard) => workerFor(shard.queue, drainer, mailbox, perShard + 1)),
    // Drains of the single-slot layout of earlier versions (none once it is empty: an idle worker).
    workerFor(QUEUES.forward, legacyDrainer, legacyMailbox, perShard),
  ];

  const sweepStaleMs = o.sweepStaleMs ?? 30_000;
  const sweep = setInterval(() => {
    Promise.all([mailbox.sweep(sweepStaleMs), legacyMailbox.sweep(sweepStaleMs)]).then(
      (rs) => rs.forEach((r) => r.repaired > 0 && o.log.warn(r, 'mailbox sweeper re-scheduled lost drains')),
      (err: unknown) => o.log.warn({ err }, 'mailbox sweep failed'),
    );
  }, o.sweepIntervalMs ?? 5_000);
  sweep.unref();

  return {
    workers,
    mailbox,
    legacyMailbox,
    deadLetters,
    tenants,
    async close() {
      clearInterval(sweep);
      typing.close();
      drainer.stop();
      legacyDrainer.stop();
      runners.stop(); // runners take no more chats; their drains hand off
      await wakeWatch.close(); // waiting drains park now, so the workers can close
      // A runner's BLPOP ends within a second; one queued for a node that died never does: its
      // connection is dropped after RUNNER_STOP_MS so its run job ends and the worker can close.
      const dropRunners = setTimeout(() => runners.close(), RUNNER_STOP_MS);
      const closed = await Promise.all(workers.map((w) => closeWorker(w)));
      clearTimeout(dropRunners);
      runners.close();
      if (closed.includes(false)) o.log.warn({ workers: closed.filter((c) => !c).length }, 'drains still in flight at close: left to stall recovery');
      await activity.close();
      await agents.close();
      await Promise.allSettled([queues.close(), wakeQueue.close()]);
    },
  };
}
