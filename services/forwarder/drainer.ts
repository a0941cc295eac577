/**
 * Processes one drain job: owns one chat's mailbox under a lease and delivers its updates one at a
 * time, in order, to the tenant's agent. An update leaves the mailbox only after it was delivered
 * (and its answer sent), or dead-lettered, so a worker killed at any instant loses nothing.
 */
import { randomUUID } from 'node:crypto';
import { DelayedError, type Job, type Queue } from 'bullmq';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { RedisClient } from '../../lib/redis.js';
import { Activity } from '../../lib/tenants/activity.js';
import type { Mailbox } from '../../lib/delivery/mailbox.js';
import type { Endpoints, Endpoint } from '../../lib/delivery/endpoints.js';
import type { DeadLetterStore } from '../../lib/delivery/dead-letters.js';
import { decodeEnvelope, parseUpdate, textOf, type Envelope } from '../../lib/delivery/update.js';
import type { TenantCache } from '../../lib/tenants/tenant-cache.js';
import { deriveWebhookSecret } from '../../lib/webhook-secret.js';
import { TENANT_ID_PATTERN } from '../../lib/validate.js';
import type { AgentClient } from './agent-client.js';
import type { ReplySender } from './reply-sender.js';

export const STARTING_UP_TEXT = '⏳ Starting up...';
const ATTEMPTS_KEY = '{mbox}:attempts';
/** How often a drain parked on a wake re-checks by itself (the waker normally promotes it first). */
const PARK_POLL_MS = 5_000;

export interface DrainerDeps {
  config: Config;
  log: Logger;
  redis: RedisClient;
  mailbox: Mailbox;
  endpoints: Endpoints;
  deadLetters: DeadLetterStore;
  tenants: TenantCache;
  agents: AgentClient;
  replies: ReplySender;
  wakeQueue: Queue;
  webhookSecret: string;
  metrics?: Metrics | undefined;
}

type Step = { next: 'continue' } | { next: 'park'; delayMs: number; onWake: boolean };

export class Drainer {
  private closing = false;

  constructor(private readonly d: DrainerDeps) {}

  /** After this, drains hand their chat to a fresh job after the current update. */
  stop(): void {
    this.closing = true;
  }

  async process(job: Job, jobToken: string | undefined): Promise<string> {
    const data = job.data as { t?: unknown; c?: unknown };
    const gen = String(job.id ?? '').split('.').pop() ?? '';
    if (typeof data.t !== 'string' || !TENANT_ID_PATTERN.test(data.t) || typeof data.c !== 'string' || !/^(-?[0-9]{1,20}|_)$/.test(data.c) || !/^[0-9]+$/.test(gen)) {
      this.d.log.error({ job: job.id }, 'malformed drain job: dropped');
      return 'malformed';
    }
    const tenantId = data.t;
    const chatId = data.c;
    const lease = randomUUID();
    const claim = await this.d.mailbox.claim(tenantId, chatId, gen, lease, this.d.config.tenantConcurrency);
    if (claim === 'stale') return 'stale';
    if (claim !== 'ok') {
      // Chat leased by another drainer (a stalled duplicate) or the tenant at its concurrency limit.
      await this.delay(job, jobToken, claim === 'busy' ? 1000 : 50 + Math.floor(Math.random() * 100));
    }
    const log = this.d.log.child({ tenant: tenantId, chat: chatId });
    const renew = setInterval(() => void this.d.mailbox.renew(tenantId, chatId, lease).catch(() => undefined), Math.floor(this.d.mailbox.leaseMs / 3));
    let step: Step | undefined;
    try {
      for (;;) {
        if (this.closing) {
          await this.d.mailbox.handOff(tenantId, chatId, gen);
          return 'handed-off';
        }
        const envelope = await this.d.mailbox.head(tenantId, chatId);
        if (envelope === null) {
          if (await this.d.mailbox.finish(tenantId, chatId, gen)) return 'drained';
          continue;
        }
        step = await this.deliverHead(tenantId, chatId, envelope, lease, job, log);
        if (step.next === 'park') break;
      }
    } finally {
      clearInterval(renew);
      await this.d.mailbox.release(tenantId, chatId, lease);
    }
    if (step.onWake) await this.d.endpoints.park(tenantId, job.id as string);
    return this.delay(job, jobToken, step.delayMs);
  }

  private async delay(job: Job, jobToken: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + ms, jobToken);
    throw new DelayedError();
  }

  private async deliverHead(tenantId: string, chatId: string, raw: string, lease: string, job: Job, log: Logger): Promise<Step> {
    let env: Envelope;
    try {
      env = decodeEnvelope(raw);
    } catch {
      await this.deadLetter(tenantId, chatId, raw, lease, 0, 'malformed envelope', log);
      return { next: 'continue' };
    }
    const update = parseUpdate(env.raw);
    const text = update ? textOf(update) : undefined;
    if (!update || (this.d.config.agentProtocol === 'zeroclaw' && text === undefined)) {
      // Nothing the agent can use (a sticker, a join…): acknowledged and counted, not forwarded.
      this.d.metrics?.forwarded.inc({ outcome: 'skipped' });
      await this.pop(tenantId, chatId, raw, lease, env);
      return { next: 'continue' };
    }
    const endpoint = await this.d.endpoints.get(tenantId);
    if (!endpoint) return this.needWake(tenantId, chatId, raw, lease, env, log);

    this.d.metrics?.pipelineLatency.observe((Date.now() - env.acceptedAt) / 1000);
    const started = Date.now();
    const outcome = await this.d.agents.deliver({
      address: endpoint.address, tenantId, updateId: env.updateId, text, raw: env.raw,
      // Only the telegram protocol sends it: no HMAC per delivery for zeroclaw agents.
      ...(this.d.config.agentProtocol === 'telegram' ? { secret: deriveWebhookSecret(this.d.webhookSecret, tenantId) } : {}),
    });
    this.d.metrics?.forwardLatency.observe({ protocol: this.d.config.agentProtocol }, (Date.now() - started) / 1000);
    switch (outcome.kind) {
      case 'answered': {
        if (outcome.response && outcome.response.trim()) {
          const token = await this.d.tenants.botToken(tenantId);
          if (token) {
            const sent = await this.d.replies.send(token, chatId, outcome.response);
            if (sent.kind === 'later') {
              log.warn({ update_id: env.updateId, reason: sent.reason }, 'sending the answer failed: will retry');
              return this.retryLater(tenantId, chatId, raw, lease, env, sent.reason, log, sent.delayMs);
            }
            if (sent.kind === 'refused') log.warn({ update_id: env.updateId, reason: sent.reason }, 'telegram refused the answer: dropped');
          }
        }
        log.info({ update_id: env.updateId, ms: Date.now() - started, endpoint: endpoint.address }, 'forwarded to pod');
        this.d.metrics?.forwarded.inc({ outcome: 'delivered' });
        await this.pop(tenantId, chatId, raw, lease, env);
        return { next: 'continue' };
      }
      case 'rejected':
        log.warn({ update_id: env.updateId, status: outcome.status, reason: outcome.reason }, 'agent rejected the update: not retried');
        this.d.metrics?.forwarded.inc({ outcome: 'rejected' });
        await this.pop(tenantId, chatId, raw, lease, env);
        return { next: 'continue' };
      case 'server-error':
        return this.retryLater(tenantId, chatId, raw, lease, env, outcome.reason, log);
      case 'unreachable':
        return this.unreachable(tenantId, chatId, raw, lease, env, endpoint, outcome.reason, log);
    }
  }

  private async unreachable(tenantId: string, chatId: string, raw: string, lease: string, env: Envelope, endpoint: Endpoint, reason: string, log: Logger): Promise<Step> {
    log.warn({ update_id: env.updateId, endpoint: endpoint.address, reason }, 'forward to pod failed, invalidating cache');
    await this.d.endpoints.invalidate(tenantId, endpoint.address);
    this.d.agents.drop(endpoint.address);
    const attempts = await this.countAttempt(tenantId, chatId, env);
    if (attempts >= this.d.config.forwardAttempts) {
      await this.deadLetter(tenantId, chatId, raw, lease, attempts, `agent unreachable: ${reason}`, log);
      return { next: 'continue' };
    }
    await this.requestWake(tenantId);
    return { next: 'park', delayMs: Math.min(PARK_POLL_MS, backoffMs(attempts)), onWake: true };
  }

  private async needWake(tenantId: string, chatId: string, raw: string, lease: string, env: Envelope, log: Logger): Promise<Step> {
    let failure = await this.d.endpoints.lastWakeFailure(tenantId);
    if (failure?.startsWith('unknown tenant')) {
      // Re-read the registry (rare path): the tenant may have been created since.
      this.d.tenants.invalidate(tenantId);
      if (!(await this.d.tenants.botToken(tenantId))) {
        await this.deadLetter(tenantId, chatId, raw, lease, 1, failure, log);
        return { next: 'continue' };
      }
      await this.d.endpoints.clearWakeFailure(tenantId);
      failure = undefined;
    }
    if (!(await this.d.endpoints.isWaking(tenantId))) {
      // Each wake this update has to ask for is an attempt: a tenant that never wakes dead-letters.
      const attempts = failure ? await this.countAttempt(tenantId, chatId, env) : 0;
      if (attempts >= this.d.config.forwardAttempts) {
        await this.deadLetter(tenantId, chatId, raw, lease, attempts, `wake failed: ${failure ?? 'unknown'}`, log);
        return { next: 'continue' };
      }
      await this.requestWake(tenantId);
      if (await this.d.endpoints.claimStartingNotice(tenantId, this.d.config.wakeLockTtlS)) await this.sendStartingNotice(tenantId, chatId, log);
    }
    return { next: 'park', delayMs: PARK_POLL_MS, onWake: true };
  }

  private async requestWake(tenantId: string): Promise<void> {
    // One pending wake per tenant: the job id dedups concurrent requests.
    await this.d.wakeQueue.add('wake', { t: tenantId }, { jobId: `wake.${tenantId}`, removeOnComplete: true, removeOnFail: true });
  }

  private async sendStartingNotice(tenantId: string, chatId: string, log: Logger): Promise<void> {
    const token = await this.d.tenants.botToken(tenantId);
    if (!token) return;
    const sent = await this.d.replies.send(token, chatId, STARTING_UP_TEXT);
    if (sent.kind !== 'sent') log.warn({ reason: sent.reason }, 'could not send the starting notice');
  }

  private async retryLater(tenantId: string, chatId: string, raw: string, lease: string, env: Envelope, reason: string, log: Logger, minDelayMs = 0): Promise<Step> {
    const attempts = await this.countAttempt(tenantId, chatId, env);
    this.d.metrics?.forwarded.inc({ outcome: 'retry' });
    if (attempts >= this.d.config.forwardAttempts) {
      await this.deadLetter(tenantId, chatId, raw, lease, attempts, reason, log);
      return { next: 'continue' };
    }
    const delayMs = Math.max(minDelayMs, backoffMs(attempts));
    log.warn({ update_id: env.updateId, attempts, delay_ms: delayMs, reason }, 'delivery failed: retrying with backoff');
    return { next: 'park', delayMs, onWake: false };
  }

  private async countAttempt(tenantId: string, chatId: string, env: Envelope): Promise<number> {
    return this.d.redis.hincrby(ATTEMPTS_KEY, `${tenantId}.${chatId}.${env.updateId}`, 1);
  }

  private async pop(tenantId: string, chatId: string, raw: string, lease: string, env: Envelope): Promise<void> {
    const popped = await this.d.mailbox.pop(tenantId, chatId, raw, lease);
    if (popped === -1) throw new Error('chat lease lost while draining');
    const facts = await this.d.tenants.facts(tenantId);
    const tx = this.d.redis.multi().hdel(ATTEMPTS_KEY, `${tenantId}.${chatId}.${env.updateId}`);
    if (facts) Activity.record(tx, tenantId, facts.idleTimeoutS);
    await tx.exec();
  }

  private async deadLetter(tenantId: string, chatId: string, raw: string, lease: string, attempts: number, reason: string, log: Logger): Promise<void> {
    const moved = await this.d.deadLetters.moveHead(tenantId, chatId, raw, lease, attempts, reason);
    if (moved === -1) throw new Error('chat lease lost while draining');
    this.d.metrics?.forwarded.inc({ outcome: 'dead-letter' });
    log.error({ attempts, reason }, 'update moved to dead letters');
    try {
      const { updateId } = decodeEnvelope(raw);
      await this.d.redis.hdel(ATTEMPTS_KEY, `${tenantId}.${chatId}.${updateId}`);
    } catch {
      /* malformed envelope: no attempt counter */
    }
  }
}

function backoffMs(attempts: number): number {
  return Math.min(30_000, 250 * 2 ** Math.max(0, attempts - 1));
}
