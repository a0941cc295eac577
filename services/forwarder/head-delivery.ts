/**
 * One update of a drain: delivers the head of a chat's mailbox to the tenant's agent, sends the
 * answer (kept first, so a redelivery resends it instead of asking again), and pops it; or asks for
 * a wake, waits for it, retries with backoff, or dead-letters it. The drain around it (drainer.ts)
 * owns the claim, the lease and the loop.
 */
import type { Queue } from 'bullmq';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import { retryTransient } from '../../lib/util/redis-retry.js';
import type { Mailbox, Outbox } from '../../lib/delivery/mailbox.js';
import type { AgentErrorCode, ForwardOutcome } from '../../lib/delivery/outcomes.js';
import type { Endpoints, Endpoint } from '../../lib/delivery/endpoints.js';
import type { EndpointWatch } from '../../lib/delivery/endpoint-watch.js';
import type { DeadLetterStore } from '../../lib/delivery/dead-letters.js';
import { decodeEnvelope, parseUpdate, textOf, type Envelope } from '../../lib/delivery/update.js';
import type { TenantCache } from '../../lib/tenants/tenant-cache.js';
import { requestWake, wakeFailedText } from '../../lib/wake/wake-contract.js';
import { deriveAgentToken, deriveWebhookSecret, memoizePerTenant, type TenantIdentity } from '../../lib/webhook-secret.js';
import type { AgentClient } from './agent-client.js';
import type { TypingNotifier } from './typing-notifier.js';
import type { ReplySender, SendOutcome, SendProgress } from './reply-sender.js';
import type { ActivityFlusher } from './activity-flusher.js';
import { WakeWaiter } from './wake-waiter.js';

export const STARTING_UP_TEXT = '⏳ Starting up...';
/** How often a drain parked on a wake re-checks by itself (the waker normally promotes it first). */
const PARK_POLL_MS = 5_000;
/**
 * A drain delivers its chat's next update to the endpoint it read this long ago without reading it
 * again (one GET less per delivery). A wake that moved the tenant meanwhile costs the rare update
 * that races it one failed delivery (unreachable / stale endpoint: re-read, retried), no loss.
 */
const ENDPOINT_REUSE_MS = 1_000;
/** Stale endpoints an update may meet (each drops the endpoint and re-wakes); the next dead-letters it. */
const STALE_ENDPOINTS_PER_UPDATE = 1;

export interface DeliveryDeps {
  config: Config;
  log: Logger;
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
  /** "typing…" in the chat while its drain waits for the wake (typing-notifier.ts). */
  typing?: TypingNotifier | undefined;
  /**
   * Drains of one queue (shard) that may wait in place for wakes at once: at most half a shard
   * worker's slots, so a burst of wakes in one shard does not hold its awake tenants' drains.
   */
  waitersPerQueue?: number | undefined;
  /** Coalesces the activity and message-count writes (ActivityFlusher). */
  activity: ActivityFlusher;
}

/**
 * What to do after an update: go on (with the next head and endpoint when the pop already read
 * them, `undefined` = read them again), stop because the chat is drained (lease released), or park.
 */
export type Step =
  | { next: 'continue'; head?: string | null; outbox?: Outbox | undefined; endpoint?: Endpoint | undefined; endpointAt?: number }
  | { next: 'drained' }
  | { next: 'park'; delayMs: number; onWake: boolean };

/** The update a drain is about to deliver, with what it needs to deliver and pop it. */
export interface Head {
  tenantId: string;
  chatId: string;
  gen: string;
  lease: string;
  /** The drain job's queue (its shard). */
  queue: string;
  raw: string;
  /** What earlier deliveries of this update left: a kept answer, failed agent turns. */
  outbox: Outbox | undefined;
  endpoint: Endpoint | undefined;
  /** When `endpoint` was read (a pop reuses a read younger than ENDPOINT_REUSE_MS). */
  endpointAt: number;
  log: Logger;
}

export class HeadDelivery {
  private readonly wakeWaiter: WakeWaiter;
  private readonly zeroclaw: boolean;
  /** The tenant's bearer for its ZeroClaw gateway (zeroclaw protocol). Never logged. */
  private readonly agentToken: (who: TenantIdentity) => string;
  /** The tenant's webhook secret (telegram protocol). */
  private readonly webhookSecretOf: (who: TenantIdentity) => string;

  constructor(private readonly d: DeliveryDeps) {
    this.zeroclaw = d.config.agentProtocol === 'zeroclaw';
    this.wakeWaiter = new WakeWaiter({ endpoints: d.endpoints, watch: d.wakeWatch, typing: d.typing, perQueue: d.waitersPerQueue });
    this.agentToken = memoizePerTenant((t) => deriveAgentToken(d.webhookSecret, t));
    this.webhookSecretOf = memoizePerTenant((t) => deriveWebhookSecret(d.webhookSecret, t));
  }

  /** Delivers the head update (or dead-letters it, or waits for a wake) and says what comes next. */
  async deliver(h: Head): Promise<Step> {
    const { tenantId, raw, endpoint, log } = h;
    let env: Envelope;
    try {
      env = decodeEnvelope(raw);
    } catch {
      await this.deadLetter(h, 0, 'malformed envelope');
      return { next: 'continue' };
    }
    const update = parseUpdate(env.raw);
    const text = update ? textOf(update) : undefined;
    if (!update || (this.zeroclaw && text === undefined)) {
      // Nothing the agent can use (a sticker, a join…): acknowledged and counted, not forwarded.
      this.count('skipped');
      return this.pop(h, env);
    }
    // An earlier delivery got the agent's answer but did not finish sending it: send that, do not
    // ask again (the agent may not be awake, and needs not be).
    if (h.outbox?.answer !== undefined) return this.sendAnswer(h, env, h.outbox.answer, h.outbox.sent, undefined);
    if (!endpoint) return this.needWake(h, env);

    this.d.metrics?.pipelineLatency.observe((Date.now() - env.acceptedAt) / 1000);
    // Per incarnation (TenantCache): an agent of an earlier tenant of this id refuses it (stale-endpoint).
    const who = await this.d.tenants.identity(tenantId);
    const started = Date.now();
    const outcome = await this.d.agents.deliver({
      address: endpoint.address, tenantId, chatId: h.chatId, updateId: env.updateId, failedTurns: h.outbox?.failedTurns ?? 0, text, raw: env.raw,
      // Each protocol gets only its own credential, derived once per tenant per process.
      ...(this.zeroclaw ? { bearer: this.agentToken(who) } : { secret: this.webhookSecretOf(who) }),
    });
    this.d.metrics?.forwardLatency.observe({ protocol: this.d.config.agentProtocol }, (Date.now() - started) / 1000);
    switch (outcome.kind) {
      case 'answered': {
        if (outcome.response && outcome.response.trim()) {
          // Kept before the first byte goes to Telegram: from here on a redelivery resends it.
          const kept = await this.d.mailbox.keepAnswer(tenantId, h.chatId, raw, h.lease, outcome.response);
          if (kept === 'lost-lease') throw new Error('chat lease lost while draining');
          if (kept === 'moved') return { next: 'continue' };
          return this.sendAnswer(h, env, outcome.response, 0, { started, endpoint });
        }
        log.info({ update_id: env.updateId, ms: Date.now() - started, endpoint: endpoint.address }, 'forwarded to pod');
        this.count('delivered');
        return this.pop(h, env);
      }
      case 'duplicate':
        // ZeroClaw recorded this key before (a delivery whose answer we never got, e.g. a crash in
        // the instant before the answer was kept): nothing to send, and asking again cannot help.
        log.warn({ update_id: env.updateId, status: outcome.status }, 'agent answered duplicate: its answer went to an earlier delivery');
        this.count('duplicate');
        return this.pop(h, env);
      case 'rejected':
        this.agentError('rejected');
        log.warn({ update_id: env.updateId, status: outcome.status, reason: outcome.reason }, 'agent rejected the update: not retried');
        this.count('rejected');
        return this.pop(h, env);
      case 'stale-endpoint':
        return this.staleEndpoint(h, env, endpoint, outcome.status);
      case 'refused': {
        // Retrying cannot help until an operator acts: said loudly, then a dead letter at once
        // (`ztm dead retry` re-sends it once fixed).
        this.agentError(outcome.error);
        log.error({ update_id: env.updateId, status: outcome.status, agent_error: outcome.error }, outcome.reason);
        const { attempts } = await this.countAttempt(h, env, false);
        await this.deadLetter(h, attempts, outcome.reason);
        return { next: 'continue' };
      }
      case 'retry':
        this.agentError(outcome.error);
        return this.retryLater(h, env, outcome.reason, outcome.retryAfterMs ?? 0, outcome.turnEnded, outcome.error);
      case 'unreachable':
        return this.unreachable(h, env, endpoint, outcome.reason);
    }
  }

  /**
   * Sends the answer kept in the outbox, from chunk `from` on, recording each chunk but the last
   * (popNext records that one). `agent`: set when the agent answered just now (else it is a kept
   * answer of an earlier delivery).
   */
  private async sendAnswer(h: Head, env: Envelope, answer: string, from: number, agent: { started: number; endpoint: Endpoint } | undefined): Promise<Step> {
    const { log } = h;
    const sent = await this.sendToChat(h.tenantId, h.chatId, answer, log, {
      from,
      onSent: async (n, total) => {
        if (n < total && (await this.afterSend(h, () => this.d.mailbox.recordSent(h.tenantId, h.chatId, h.raw, h.lease, n))) !== 'ok') throw new Error('chat lease lost while draining');
      },
    });
    if (sent?.kind === 'later') {
      log.warn({ update_id: env.updateId, reason: sent.reason, sent: sent.sent }, 'sending the answer failed: will retry');
      return this.retryLater(h, env, sent.reason, sent.delayMs, false);
    }
    if (sent?.kind === 'refused') log.warn({ update_id: env.updateId, reason: sent.reason }, 'telegram refused the answer: dropped');
    if (agent) {
      log.info({ update_id: env.updateId, ms: Date.now() - agent.started, endpoint: agent.endpoint.address }, 'forwarded to pod');
      this.count('delivered');
    } else {
      log.info({ update_id: env.updateId, from_chunk: from }, 'sent the answer kept from an earlier delivery');
      this.count('kept-answer');
    }
    return this.pop(h, env);
  }

  private async unreachable(h: Head, env: Envelope, endpoint: Endpoint, reason: string): Promise<Step> {
    h.log.warn({ update_id: env.updateId, endpoint: endpoint.address, reason }, 'forward to pod failed, invalidating cache');
    await this.d.endpoints.invalidate(h.tenantId, endpoint.address);
    this.d.agents.drop(endpoint.address);
    // The agent may still be working on it (our timeout): the idempotency key stays the same.
    const { attempts } = await this.countAttempt(h, env, false);
    if (attempts >= this.d.config.forwardAttempts) {
      await this.deadLetter(h, attempts, `agent unreachable: ${reason}`);
      return { next: 'continue' };
    }
    await this.requestWake(h.tenantId);
    return { next: 'park', delayMs: Math.min(PARK_POLL_MS, backoffMs(attempts)), onWake: true };
  }

  /**
   * The agent at the endpoint refused this tenant's own credential: it is not this tenant's agent
   * (a pod IP reused by another tenant, a stale endpoint) or not this incarnation's. Nothing was
   * delivered. The endpoint is dropped if no wake replaced it meanwhile, and a wake finds or starts
   * the tenant's own agent; an update that meets this again after that wake is dead-lettered (a
   * misconfigured agent must not loop). Not an attempt: the update never reached its agent.
   */
  private async staleEndpoint(h: Head, env: Envelope, endpoint: Endpoint, status: number): Promise<Step> {
    const { tenantId, chatId, log } = h;
    const [dropped, met] = await Promise.all([
      this.d.endpoints.invalidate(tenantId, endpoint.address),
      // Remembered for two wake lock TTLs: longer than the wake it asks for can take.
      this.d.endpoints.noteStaleEndpoint(tenantId, chatId, env.updateId, 2 * this.d.config.wakeLockTtlS),
    ]);
    this.d.agents.drop(endpoint.address);
    // The credential came from the cached tenant record: a tenant re-created under the same id
    // has another incarnation, so the next try must derive it from the registry's record.
    this.d.tenants.invalidate(tenantId);
    if (met > STALE_ENDPOINTS_PER_UPDATE) {
      this.d.metrics?.staleEndpoints.inc({ outcome: 'dead-letter' });
      log.error({ update_id: env.updateId, endpoint: endpoint.address, status }, "the tenant's agent refused its credential after a fresh wake: dead-lettered");
      const { attempts } = await this.countAttempt(h, env, false);
      await this.deadLetter(h, attempts, `the agent at ${endpoint.address} refused this tenant's credential after a fresh wake`);
      await this.d.endpoints.clearStaleEndpoints(tenantId, chatId, env.updateId);
      return { next: 'continue' };
    }
    this.d.metrics?.staleEndpoints.inc({ outcome: 'rewake' });
    log.warn({ update_id: env.updateId, endpoint: endpoint.address, status, dropped }, "the agent at the endpoint refused this tenant's credential (not its agent): endpoint dropped, waking the tenant");
    await this.requestWake(tenantId);
    return this.awaitWake(h);
  }

  private async needWake(h: Head, env: Envelope): Promise<Step> {
    const { tenantId, chatId, log } = h;
    // Both read in one round trip: the first message of a sleeping tenant waits for this.
    let [failure, waking] = await Promise.all([this.d.endpoints.lastWakeFailure(tenantId), this.d.endpoints.isWaking(tenantId)]);
    if (failure?.code === 'unknown-tenant') {
      // Re-read the registry (rare path): the tenant may have been created since.
      this.d.tenants.invalidate(tenantId);
      if (!(await this.d.tenants.botToken(tenantId))) {
        await this.deadLetter(h, 1, failure.reason);
        return { next: 'continue' };
      }
      await this.d.endpoints.clearWakeFailure(tenantId);
      failure = undefined;
      waking = await this.d.endpoints.isWaking(tenantId);
    }
    if (!waking) {
      // Each wake this update has to ask for is an attempt: a tenant that never wakes dead-letters.
      const attempts = failure ? (await this.countAttempt(h, env, false)).attempts : 0;
      if (attempts >= this.d.config.forwardAttempts) {
        await this.deadLetter(h, attempts, wakeFailedText(failure));
        return { next: 'continue' };
      }
      await this.requestWake(tenantId);
      if (await this.d.endpoints.claimStartingNotice(tenantId, this.d.config.wakeLockTtlS)) await this.sendStartingNotice(tenantId, chatId, log);
    }
    return this.awaitWake(h);
  }

  /** Waits in place for the wake when a slot for that is free (go on at once), else parks. */
  private async awaitWake(h: Head): Promise<Step> {
    if (await this.wakeWaiter.wait(h.tenantId, h.chatId, h.queue)) return { next: 'continue' };
    return { next: 'park', delayMs: PARK_POLL_MS, onWake: true };
  }

  private async requestWake(tenantId: string): Promise<void> {
    // One pending wake per tenant: concurrent requests fold into it (lib/wake/wake-contract.ts).
    await requestWake(this.d.wakeQueue, tenantId);
  }

  private async sendStartingNotice(tenantId: string, chatId: string, log: Logger): Promise<void> {
    const sent = await this.sendToChat(tenantId, chatId, STARTING_UP_TEXT, log);
    if (sent && sent.kind !== 'sent') log.warn({ reason: sent.reason }, 'could not send the starting notice');
  }

  /**
   * Sends with the tenant's bot token (undefined: no such tenant). When Telegram refuses the cached
   * token (401/404: it may have been rotated within the TenantCache TTL), the token is read again
   * and, if it changed, the rest of the message is sent with it instead of being dropped.
   */
  private async sendToChat(tenantId: string, chatId: string, text: string, log: Logger, progress: SendProgress = {}): Promise<SendOutcome | undefined> {
    const token = await this.d.tenants.botToken(tenantId);
    if (!token) return undefined;
    const sent = await this.d.replies.send(token, chatId, text, progress);
    if (sent.kind !== 'refused' || (sent.errorCode !== 401 && sent.errorCode !== 404)) return sent;
    this.d.tenants.invalidate(tenantId);
    const fresh = await this.d.tenants.botToken(tenantId);
    if (!fresh || fresh === token) return sent;
    log.info('telegram refused the cached bot token: sending with the current one');
    return this.d.replies.send(fresh, chatId, text, { ...progress, from: sent.sent });
  }

  /**
   * Counts an attempt and parks the chat for a backoff (at least `minDelayMs`), or dead-letters the
   * update after FORWARD_ATTEMPTS. `turnEnded`: see Mailbox.countAttempt.
   */
  private async retryLater(h: Head, env: Envelope, reason: string, minDelayMs: number, turnEnded: boolean, agentError?: AgentErrorCode): Promise<Step> {
    const { attempts } = await this.countAttempt(h, env, turnEnded);
    this.count('retry');
    if (attempts >= this.d.config.forwardAttempts) {
      await this.deadLetter(h, attempts, reason);
      return { next: 'continue' };
    }
    const delayMs = Math.max(minDelayMs, backoffMs(attempts));
    h.log.warn({ update_id: env.updateId, attempts, delay_ms: delayMs, reason, ...(agentError ? { agent_error: agentError } : {}) }, 'delivery failed: retrying with backoff');
    return { next: 'park', delayMs, onWake: false };
  }

  private countAttempt(h: Head, env: Envelope, turnEnded: boolean): Promise<{ attempts: number; failedTurns: number }> {
    return this.d.mailbox.countAttempt(h.tenantId, h.chatId, h.raw, env.updateId, h.lease, turnEnded);
  }

  private count(outcome: ForwardOutcome): void {
    this.d.metrics?.forwarded.inc({ outcome });
  }

  private agentError(reason: AgentErrorCode): void {
    this.d.metrics?.agentErrors.inc({ reason });
  }

  /**
   * Takes the delivered head out and reads what comes next in the same round trip: the next head
   * (or the end of the drain) and the endpoint again; the activity is noted for the flusher.
   */
  private async pop(h: Head, env: Envelope): Promise<Step> {
    const { tenantId, chatId } = h;
    const facts = await this.d.tenants.facts(tenantId);
    const reuse = h.endpoint !== undefined && Date.now() - h.endpointAt < ENDPOINT_REUSE_MS;
    const [popped, endpoint] = await Promise.all([
      this.afterSend(h, () => this.d.mailbox.popNext(tenantId, chatId, h.raw, env.updateId, h.lease, h.gen)),
      reuse ? h.endpoint : this.d.endpoints.get(tenantId),
    ]);
    // Coalesced: written once a second for every tenant delivered to meanwhile (activity-flusher.ts).
    this.d.activity.note(tenantId, facts?.idleTimeoutS);
    switch (popped.kind) {
      case 'lost-lease': throw new Error('chat lease lost while draining');
      case 'drained': return { next: 'drained' };
      // The next head has no outbox yet: popNext cleared the chat's with the popped update.
      case 'next': return { next: 'continue', head: popped.head, outbox: undefined, endpoint, endpointAt: reuse ? h.endpointAt : Date.now() };
      case 'moved': return { next: 'continue' };
    }
  }

  /**
   * A mailbox write that records what Telegram already took: retried through a failover (bounded
   * below the chat lease) instead of giving the chat back, after which the answer would be sent
   * again. The scripts check the head and the lease, so a retry of a write that landed is harmless.
   */
  private afterSend<T>(h: Head, write: () => Promise<T>): Promise<T> {
    return retryTransient(write, {
      deadlineMs: Math.floor((this.d.mailbox.leaseMs * 2) / 3),
      onRetry: (err, attempt) => h.log.warn({ err, attempt }, 'redis unavailable while recording a sent answer: retrying'),
    });
  }

  /** Moves the head to the dead letters (its attempt counter and outbox go with it, atomically). */
  private async deadLetter(h: Head, attempts: number, reason: string): Promise<void> {
    const moved = await this.d.deadLetters.moveHead(h.tenantId, h.chatId, h.raw, h.lease, attempts, reason);
    if (moved === -1) throw new Error('chat lease lost while draining');
    this.count('dead-letter');
    h.log.error({ attempts, reason }, 'update moved to dead letters');
  }
}

function backoffMs(attempts: number): number {
  return Math.min(30_000, 250 * 2 ** Math.max(0, attempts - 1));
}
