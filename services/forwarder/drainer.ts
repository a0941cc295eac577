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
import { attemptsField, type Mailbox } from '../../lib/delivery/mailbox.js';
import { attemptsKey } from '../../lib/keys.js';
import type { Endpoints, Endpoint } from '../../lib/delivery/endpoints.js';
import type { EndpointWatch } from '../../lib/delivery/endpoint-watch.js';
import type { DeadLetterStore } from '../../lib/delivery/dead-letters.js';
import { decodeEnvelope, parseUpdate, textOf, type Envelope } from '../../lib/delivery/update.js';
import type { TenantCache } from '../../lib/tenants/tenant-cache.js';
import { deriveWebhookSecret } from '../../lib/webhook-secret.js';
import { TENANT_ID_PATTERN } from '../../lib/validate.js';
import type { AgentClient } from './agent-client.js';
import type { ReplySender, SendOutcome } from './reply-sender.js';

export const STARTING_UP_TEXT = '⏳ Starting up...';
/** How often a drain parked on a wake re-checks by itself (the waker normally promotes it first). */
const PARK_POLL_MS = 5_000;
/** A drain whose tenant has no free slot waits for one to be handed to it, at most this long. */
const FULL_FALLBACK_MS = 1_000;
/** How long a drain waits in place for a wake (EndpointWatch) before parking its job instead. */
const WAKE_WAIT_MS = 20_000;

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
  /** Lets drains wait in place for a wake; without it they always park. */
  wakeWatch?: EndpointWatch | undefined;
}

/**
 * What to do after an update: go on (with the next head and endpoint when the pop already read
 * them, `undefined` = read them again), stop because the chat is drained (lease released), or park.
 */
type Step =
  | { next: 'continue'; head?: string | null; endpoint?: Endpoint | undefined }
  | { next: 'drained' }
  | { next: 'park'; delayMs: number; onWake: boolean };

/** The update a drain is about to deliver, with what it needs to deliver and pop it. */
interface Head {
  tenantId: string;
  chatId: string;
  gen: string;
  lease: string;
  raw: string;
  endpoint: Endpoint | undefined;
  log: Logger;
}

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
    // The claim reads the head, the endpoint is read beside it: one round trip for both.
    const [claim, firstEndpoint] = await Promise.all([
      this.d.mailbox.claimHead(tenantId, chatId, gen, lease, this.d.config.tenantConcurrency),
      this.d.endpoints.get(tenantId),
    ]);
    if (claim.result === 'stale') return 'stale';
    if (claim.result !== 'ok') {
      // Chat leased by another drainer (a stalled duplicate), or the tenant at its concurrency limit:
      // then the drain that frees a slot promotes this job (Mailbox.claimHead); the delay is a fallback.
      await this.delay(job, jobToken, claim.result === 'busy' ? 1000 : FULL_FALLBACK_MS);
    }
    const log = this.d.log.child({ tenant: tenantId, chat: chatId });
    const renew = setInterval(() => void this.d.mailbox.renew(tenantId, chatId, lease).catch(() => undefined), Math.floor(this.d.mailbox.leaseMs / 3));
    let step: Step = { next: 'continue', head: claim.head, endpoint: firstEndpoint };
    try {
      for (;;) {
        if (this.closing) {
          await this.d.mailbox.handOff(tenantId, chatId, gen);
          return 'handed-off';
        }
        let envelope = step.head;
        let endpoint = step.endpoint;
        if (envelope === undefined) [envelope, endpoint] = await Promise.all([this.d.mailbox.head(tenantId, chatId), this.d.endpoints.get(tenantId)]);
        if (envelope === null) {
          if (await this.d.mailbox.finish(tenantId, chatId, gen)) return 'drained';
          step = { next: 'continue' };
          continue;
        }
        step = await this.deliverHead({ tenantId, chatId, gen, lease, raw: envelope, endpoint, log });
        if (step.next === 'drained') return 'drained';
        if (step.next === 'park') break;
      }
    } finally {
      clearInterval(renew);
      // A drain that ended in popNext gave its lease back in the same script.
      if (step.next !== 'drained') await this.d.mailbox.release(tenantId, chatId, lease);
    }
    if (step.onWake) await this.d.endpoints.park(tenantId, job.id as string);
    return this.delay(job, jobToken, step.delayMs);
  }

  private async delay(job: Job, jobToken: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + ms, jobToken);
    throw new DelayedError();
  }

  private async deliverHead(h: Head): Promise<Step> {
    const { tenantId, chatId, lease, raw, endpoint, log } = h;
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
      return this.pop(h, env);
    }
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
          const sent = await this.sendToChat(tenantId, chatId, outcome.response, log);
          if (sent?.kind === 'later') {
            log.warn({ update_id: env.updateId, reason: sent.reason }, 'sending the answer failed: will retry');
            return this.retryLater(tenantId, chatId, raw, lease, env, sent.reason, log, sent.delayMs);
          }
          if (sent?.kind === 'refused') log.warn({ update_id: env.updateId, reason: sent.reason }, 'telegram refused the answer: dropped');
        }
        log.info({ update_id: env.updateId, ms: Date.now() - started, endpoint: endpoint.address }, 'forwarded to pod');
        this.d.metrics?.forwarded.inc({ outcome: 'delivered' });
        return this.pop(h, env);
      }
      case 'rejected':
        log.warn({ update_id: env.updateId, status: outcome.status, reason: outcome.reason }, 'agent rejected the update: not retried');
        this.d.metrics?.forwarded.inc({ outcome: 'rejected' });
        return this.pop(h, env);
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
    // Both read in one round trip: the first message of a sleeping tenant waits for this.
    let [failure, waking] = await Promise.all([this.d.endpoints.lastWakeFailure(tenantId), this.d.endpoints.isWaking(tenantId)]);
    if (failure?.startsWith('unknown tenant')) {
      // Re-read the registry (rare path): the tenant may have been created since.
      this.d.tenants.invalidate(tenantId);
      if (!(await this.d.tenants.botToken(tenantId))) {
        await this.deadLetter(tenantId, chatId, raw, lease, 1, failure, log);
        return { next: 'continue' };
      }
      await this.d.endpoints.clearWakeFailure(tenantId);
      failure = undefined;
      waking = await this.d.endpoints.isWaking(tenantId);
    }
    if (!waking) {
      // Each wake this update has to ask for is an attempt: a tenant that never wakes dead-letters.
      const attempts = failure ? await this.countAttempt(tenantId, chatId, env) : 0;
      if (attempts >= this.d.config.forwardAttempts) {
        await this.deadLetter(tenantId, chatId, raw, lease, attempts, `wake failed: ${failure ?? 'unknown'}`, log);
        return { next: 'continue' };
      }
      await this.requestWake(tenantId);
      if (await this.d.endpoints.claimStartingNotice(tenantId, this.d.config.wakeLockTtlS)) await this.sendStartingNotice(tenantId, chatId, log);
    }
    return this.awaitWake(tenantId);
  }

  /** Waits in place for the wake when a slot for that is free (go on at once), else parks. */
  private async awaitWake(tenantId: string): Promise<Step> {
    const hasEndpoint = async (): Promise<boolean> => (await this.d.endpoints.get(tenantId)) !== undefined;
    if (await this.d.wakeWatch?.waitFor(tenantId, WAKE_WAIT_MS, hasEndpoint)) return { next: 'continue' };
    return { next: 'park', delayMs: PARK_POLL_MS, onWake: true };
  }

  private async requestWake(tenantId: string): Promise<void> {
    // One pending wake per tenant: the job id dedups concurrent requests.
    await this.d.wakeQueue.add('wake', { t: tenantId }, { jobId: `wake.${tenantId}`, removeOnComplete: true, removeOnFail: true });
  }

  private async sendStartingNotice(tenantId: string, chatId: string, log: Logger): Promise<void> {
    const sent = await this.sendToChat(tenantId, chatId, STARTING_UP_TEXT, log);
    if (sent && sent.kind !== 'sent') log.warn({ reason: sent.reason }, 'could not send the starting notice');
  }

  /**
   * Sends with the tenant's bot token (undefined: no such tenant). When Telegram refuses the cached
   * token (401/404: it may have been rotated within the TenantCache TTL), the token is read again
   * and, if it changed, the message is sent once more with it instead of being dropped.
   */
  private async sendToChat(tenantId: string, chatId: string, text: string, log: Logger): Promise<SendOutcome | undefined> {
    const token = await this.d.tenants.botToken(tenantId);
    if (!token) return undefined;
    const sent = await this.d.replies.send(token, chatId, text);
    if (sent.kind !== 'refused' || (sent.errorCode !== 401 && sent.errorCode !== 404)) return sent;
    this.d.tenants.invalidate(tenantId);
    const fresh = await this.d.tenants.botToken(tenantId);
    if (!fresh || fresh === token) return sent;
    log.info('telegram refused the cached bot token: sending with the current one');
    return this.d.replies.send(fresh, chatId, text);
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
    return this.d.redis.hincrby(attemptsKey, attemptsField(tenantId, chatId, env.updateId), 1);
  }

  /**
   * Takes the delivered head out and reads what comes next in the same round trip: the next head
   * (or the end of the drain), the endpoint again, and the tenant's activity written beside them.
   */
  private async pop(h: Head, env: Envelope): Promise<Step> {
    const { tenantId, chatId } = h;
    const facts = await this.d.tenants.facts(tenantId);
    const [popped, endpoint] = await Promise.all([
      this.d.mailbox.popNext(tenantId, chatId, h.raw, env.updateId, h.lease, h.gen),
      this.d.endpoints.get(tenantId),
      facts ? Activity.write(this.d.redis, tenantId, facts.idleTimeoutS) : undefined,
    ]);
    switch (popped.kind) {
      case 'lost-lease': throw new Error('chat lease lost while draining');
      case 'drained': return { next: 'drained' };
      case 'next': return { next: 'continue', head: popped.head, endpoint };
      case 'moved': return { next: 'continue' };
    }
  }

  private async deadLetter(tenantId: string, chatId: string, raw: string, lease: string, attempts: number, reason: string, log: Logger): Promise<void> {
    const moved = await this.d.deadLetters.moveHead(tenantId, chatId, raw, lease, attempts, reason);
    if (moved === -1) throw new Error('chat lease lost while draining');
    this.d.metrics?.forwarded.inc({ outcome: 'dead-letter' });
    log.error({ attempts, reason }, 'update moved to dead letters');
    try {
      const { updateId } = decodeEnvelope(raw);
      await this.d.redis.hdel(attemptsKey, attemptsField(tenantId, chatId, updateId));
    } catch {
      /* malformed envelope: no attempt counter */
    }
  }
}

function backoffMs(attempts: number): number {
  return Math.min(30_000, 250 * 2 ** Math.max(0, attempts - 1));
}
