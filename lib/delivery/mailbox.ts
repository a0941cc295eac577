/**
 * The per-chat mailbox: durable FIFO of accepted updates plus the bookkeeping that makes exactly
 * one drain job responsible for a non-empty mailbox at any time (see docs/architecture.md).
 * Used by the ingress (accept) and the forwarder (claim, pop, finish, hand off, sweep).
 */
import type { Queue } from 'bullmq';
import type { RedisClient } from '../redis.js';
import { attemptsKey, chatLeaseKey, drainKey, mailboxKey, outboxKey, scheduledKey, seenKey } from '../keys.js';
import { encodeEnvelope, envelopeIdentity } from './update.js';
import { promoteWhenDelayed } from './promote-job.js';
import { callScript, type ScriptName } from '../redis-scripts.js';
import { DRAIN_JOB_NAME, drainJobId, drainJobOpts, type DrainJobData } from './drain-contract.js';

const SEQ_KEY = '{mbox}:seq';
const tenantActiveKey = (tenantId: string): string => `{mbox}:active:${tenantId}`;
/** Drain jobs waiting for a slot of the tenant's concurrency, oldest first. */
const slotWaitersKey = (tenantId: string): string => `{mbox}:slotwait:${tenantId}`;

export { drainJobId, type DrainJobData } from './drain-contract.js';

export type ClaimResult = 'ok' | 'stale' | 'busy' | 'full';

/**
 * The answer outbox of the head update (keys.ts outboxKey): what earlier deliveries of it left for
 * the next one. See docs/architecture.md ("The answer outbox").
 */
export interface Outbox {
  /** The agent's answer, kept until it was sent: a redelivery sends it instead of asking again. */
  answer: string | undefined;
  /** Chunks of the answer (splitMessage) Telegram already took. */
  sent: number;
  /** Turns of this update the agent ended in an error (picks the next idempotency key). */
  failedTurns: number;
}

/** The head envelope (null: the mailbox is empty) with its outbox, if it has one. */
export interface HeadRead {
  head: string | null;
  outbox: Outbox | undefined;
}

/** A write fenced by the lease and the head's identity: done, lease lost, or the head is another update. */
export type FencedWrite = 'ok' | 'lost-lease' | 'moved';
const fenced = (code: number): FencedWrite => (code === 1 ? 'ok' : code === -1 ? 'lost-lease' : 'moved');

/** The outbox fields as the scripts read them (HMGET id, answer, sent, failed_turns), if they belong to `head`. */
function outboxOf(head: string | null, fields: Array<string | null> | undefined): Outbox | undefined {
  if (!head || !fields || fields[0] !== envelopeIdentity(head)) return undefined;
  return { answer: fields[1] ?? undefined, sent: Number(fields[2] ?? 0) || 0, failedTurns: Number(fields[3] ?? 0) || 0 };
}

/** What popNext() did: the next head to deliver, or the chat drained and released. */
export type PopNextResult = { kind: 'next'; head: string } | { kind: 'drained' } | { kind: 'lost-lease' } | { kind: 'moved' };

/** Field of an update's delivery attempts in the attempts hash. */
export const attemptsField = (tenantId: string, chatId: string, updateId: number): string => `${tenantId}.${chatId}.${updateId}`;

export interface MailboxOptions {
  redis: RedisClient;
  forwardQueue: Queue;
  /** How long an update_id is remembered for dedup (Telegram retries for up to 24h). */
  seenTtlS?: number;
  /** Bound of an answer outbox's life if its update never left (a leak guard only; default 7 days). */
  outboxTtlS?: number;
  leaseMs?: number;
  /**
   * Most updates one accept script takes (see accept()); a full batch is sent at once. 32: small
   * enough that Redis works on one batch while the ingress parses the next (64 connections → two
   * overlapping batches per turn), large enough to share the round trip (docs/benchmarks.md).
   */
  acceptBatch?: number;
}

/** One update waiting for its batch to be written. */
interface PendingAccept {
  tenantId: string;
  chatId: string;
  updateId: number;
  raw: string;
  now: number;
  resolve: (r: { duplicate: boolean }) => void;
  reject: (err: unknown) => void;
}


export const scheduledMember = (tenantId: string, chatId: string): string => `${tenantId}\n${chatId}`;

export class Mailbox {
  readonly leaseMs: number;
  private readonly redis: RedisClient;
  private readonly queue: Queue;
  private readonly seenTtlS: number;
  private readonly outboxTtlS: number;
  private readonly acceptBatch: number;
  private pending: PendingAccept[] = [];
  private flushScheduled = false;
  private readonly flushPending = (): void => {
    this.flushScheduled = false;
    if (this.pending.length) this.writeBatch(this.pending.splice(0, this.pending.length));
  };

  constructor(options: MailboxOptions) {
    if (!options.redis || !options.forwardQueue) throw new TypeError('Mailbox: redis and forwardQueue are required');
    this.redis = options.redis;
    this.queue = options.forwardQueue;
    this.seenTtlS = options.seenTtlS ?? 86_400;
    this.outboxTtlS = options.outboxTtlS ?? 7 * 86_400;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.acceptBatch = options.acceptBatch ?? 32;
    if (!Number.isInteger(this.acceptBatch) || this.acceptBatch < 1) throw new TypeError('Mailbox: acceptBatch must be a positive integer');
    if (!Number.isInteger(this.seenTtlS) || this.seenTtlS < 1) throw new TypeError('Mailbox: seenTtlS must be a positive integer');
  }

  private call(name: ScriptName, ...args: Array<string | number>): Promise<unknown> {
    return callScript(this.redis, name, ...args);
  }

  /**
   * Durably accepts an update. Resolves once it is in Redis and a drain job is responsible for the
   * chat; `duplicate` when Telegram retried an update_id that was accepted before.
   *
   * Updates accepted in the same event-loop turn are written together (the ingress answers many
   * webhooks per turn under load): one accept script for the batch (up to `acceptBatch`), then one
   * round trip that adds the drain jobs of the chats the batch opened. Each update's outcome is
   * exactly what accepting it alone would give; a failure of a write rejects the updates it
   * carried (the ingress answers 503 and Telegram's retry is recognised as a duplicate).
   */
  accept(tenantId: string, chatId: string, updateId: number, raw: string, now = Date.now()): Promise<{ duplicate: boolean }> {
    return new Promise((resolve, reject) => {
      this.pending.push({ tenantId, chatId, updateId, raw, now, resolve, reject });
      if (this.pending.length >= this.acceptBatch) {
        this.writeBatch(this.pending.splice(0, this.pending.length));
      } else if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flushPending);
      }
    });
  }

  private writeBatch(batch: PendingAccept[]): void {
    const keys: string[] = [scheduledKey, SEQ_KEY];
    const argv: Array<string | number> = [this.seenTtlS];
    for (const p of batch) {
      keys.push(seenKey(p.tenantId, p.updateId), mailboxKey(p.tenantId, p.chatId), drainKey(p.tenantId, p.chatId));
      argv.push(encodeEnvelope(p.updateId, p.now, p.raw), scheduledMember(p.tenantId, p.chatId), p.now);
    }
    let written: Promise<unknown>;
    try {
      written = this.call('mbAcceptBatch', keys.length, ...keys, ...argv);
    } catch (err) {
      written = Promise.reject(err);
    }
    written.then((reply) => {
      const out = reply as Array<number | string>;
      const scheduling: Array<{ p: PendingAccept; duplicate: boolean }> = [];
      const jobs: Array<{ name: string; data: DrainJobData; opts: ReturnType<typeof drainJobOpts> }> = [];
      batch.forEach((p, i) => {
        const duplicate = out[2 * i] === 0;
        const gen = out[2 * i + 1];
        if (!gen) return p.resolve({ duplicate });
        scheduling.push({ p, duplicate });
        jobs.push({ name: DRAIN_JOB_NAME, data: { t: p.tenantId, c: p.chatId }, opts: drainJobOpts(drainJobId(p.tenantId, p.chatId, String(gen))) });
      });
      if (!jobs.length) return;
      // One round trip for all of them; an existing job id is a no-op (idempotent re-add).
      this.queue.addBulk(jobs).then(
        () => scheduling.forEach(({ p, duplicate }) => p.resolve({ duplicate })),
        (err: unknown) => scheduling.forEach(({ p }) => p.reject(err)),
      );
    }, (err: unknown) => batch.forEach((p) => p.reject(err)));
  }

  /** Adds the drain job of a generation; a no-op when it exists already (same job id). */
  async schedule(tenantId: string, chatId: string, gen: string): Promise<void> {
    const data: DrainJobData = { t: tenantId, c: chatId };
    await this.queue.add(DRAIN_JOB_NAME, data, drainJobOpts(drainJobId(tenantId, chatId, gen)));
  }

  async claim(tenantId: string, chatId: string, gen: string, token: string, tenantLimit: number): Promise<ClaimResult> {
    return (await this.claimHead(tenantId, chatId, gen, token, tenantLimit)).result;
  }

  /**
   * claim() that also reads the oldest envelope when it succeeds (null: the mailbox is empty) and its
   * answer outbox, in the same script. A 'full' claim queues the drain's job for the tenant's next
   * free slot: the drain that frees it promotes the job (release(), popNext()), so the caller delays
   * it only as a fallback.
   */
  async claimHead(tenantId: string, chatId: string, gen: string, token: string, tenantLimit: number): Promise<{ result: ClaimResult } & HeadRead> {
    const [result, head, fields] = (await this.call('mbClaim', drainKey(tenantId, chatId), chatLeaseKey(tenantId, chatId), tenantActiveKey(tenantId),
      mailboxKey(tenantId, chatId), slotWaitersKey(tenantId), outboxKey(tenantId, chatId), gen, token, Date.now(), this.leaseMs, tenantLimit,
      drainJobId(tenantId, chatId, gen))) as [ClaimResult, string | null | undefined, Array<string | null> | undefined];
    return { result, head: head ?? null, outbox: outboxOf(head ?? null, fields) };
  }

  async renew(tenantId: string, chatId: string, token: string): Promise<boolean> {
    return (await this.call('mbRenew', chatLeaseKey(tenantId, chatId), tenantActiveKey(tenantId), token, Date.now(), this.leaseMs)) === 1;
  }

  /** Gives the chat lease and the tenant slot back; the slot goes to the oldest waiting drain. */
  async release(tenantId: string, chatId: string, token: string): Promise<void> {
    const waiter = (await this.call('mbRelease', chatLeaseKey(tenantId, chatId), tenantActiveKey(tenantId), slotWaitersKey(tenantId), token)) as string;
    this.handSlotTo(tenantId, waiter);
  }

  /**
   * Wakes the drain the freed slot was handed to, in the background (the caller goes on). A waiter
   * that is gone or no longer delayed (its chat was drained meanwhile) passes the turn to the next.
   */
  private handSlotTo(tenantId: string, jobId: string | undefined): void {
    if (!jobId) return;
    void (async () => {
      let next: string | undefined = jobId;
      for (let i = 0; next && i < 5; i++) {
        if (await promoteWhenDelayed(this.queue, next)) return;
        next = (await this.redis.zpopmin(slotWaitersKey(tenantId)))[0];
      }
    })().catch(() => undefined);
  }

  /** The oldest pending envelope of the chat, without removing it (at-least-once). */
  async head(tenantId: string, chatId: string): Promise<string | null> {
    return this.redis.lindex(mailboxKey(tenantId, chatId), 0);
  }

  /** head() with the head's answer outbox, in one script. */
  async headWithOutbox(tenantId: string, chatId: string): Promise<HeadRead> {
    const [head, fields] = (await this.call('mbHead', mailboxKey(tenantId, chatId), outboxKey(tenantId, chatId))) as [string | null, Array<string | null> | undefined];
    return { head: head ?? null, outbox: outboxOf(head ?? null, fields) };
  }

  /**
   * Keeps the agent's answer with the head update (`envelope`) until it was sent: a redelivery
   * (crash, Telegram failure) sends it instead of asking the agent again. Needs the chat lease.
   */
  async keepAnswer(tenantId: string, chatId: string, envelope: string, token: string, answer: string): Promise<FencedWrite> {
    return fenced((await this.call('mbKeepAnswer', chatLeaseKey(tenantId, chatId), mailboxKey(tenantId, chatId), outboxKey(tenantId, chatId),
      token, envelopeIdentity(envelope), answer, this.outboxTtlS)) as number);
  }

  /** Records that `sent` chunks of the kept answer reached the chat (a retry goes on after them). */
  async recordSent(tenantId: string, chatId: string, envelope: string, token: string, sent: number): Promise<FencedWrite> {
    return fenced((await this.call('mbRecordSent', chatLeaseKey(tenantId, chatId), outboxKey(tenantId, chatId),
      token, envelopeIdentity(envelope), sent)) as number);
  }

  /**
   * Counts a failed delivery of the head and returns the attempts so far. `turnEnded`: the agent
   * answered with an error after recording the idempotency key (zeroclaw 5xx/408), counted in the
   * outbox too, so the next delivery presents a new key; `failedTurns` is then the new count.
   */
  async countAttempt(tenantId: string, chatId: string, envelope: string, updateId: number, token: string, turnEnded: boolean): Promise<{ attempts: number; failedTurns: number }> {
    const [attempts, failedTurns] = (await this.call('mbCountAttempt', attemptsKey, chatLeaseKey(tenantId, chatId), mailboxKey(tenantId, chatId),
      outboxKey(tenantId, chatId), attemptsField(tenantId, chatId, updateId), token, envelopeIdentity(envelope), turnEnded ? 1 : 0,
      this.outboxTtlS)) as [number, number];
    return { attempts, failedTurns };
  }

  async depth(tenantId: string, chatId: string): Promise<number> {
    return this.redis.llen(mailboxKey(tenantId, chatId));
  }

  /**
   * Removes the delivered head (with its attempt counter and answer outbox) and, in the same step,
   * returns the next one, which never has an outbox yet; when none is left the generation gives up
   * responsibility and the lease is released (the drain is over). One round trip for what pop +
   * head + finish + release do separately.
   */
  async popNext(tenantId: string, chatId: string, envelope: string, updateId: number, token: string, gen: string): Promise<PopNextResult> {
    const reply = (await this.call('mbPopNext', mailboxKey(tenantId, chatId), chatLeaseKey(tenantId, chatId), scheduledKey,
      drainKey(tenantId, chatId), tenantActiveKey(tenantId), attemptsKey, slotWaitersKey(tenantId), outboxKey(tenantId, chatId),
      envelopeIdentity(envelope), token, scheduledMember(tenantId, chatId), Date.now(), gen, attemptsField(tenantId, chatId, updateId))) as [number, string?];
    switch (reply[0]) {
      case 1: return { kind: 'next', head: reply[1] as string };
      case 2:
        this.handSlotTo(tenantId, reply[1]);
        return { kind: 'drained' };
      case -1: return { kind: 'lost-lease' };
      default: return { kind: 'moved' };
    }
  }

  /** True when the mailbox is empty and this generation is released. */
  async finish(tenantId: string, chatId: string, gen: string): Promise<boolean> {
    return (await this.call('mbFinish', mailboxKey(tenantId, chatId), drainKey(tenantId, chatId), scheduledKey,
      gen, scheduledMember(tenantId, chatId))) === 1;
  }

  /** Passes responsibility to a new generation and job (graceful shutdown, fairness). */
  async handOff(tenantId: string, chatId: string, gen: string): Promise<string | undefined> {
    const next = (await this.call('mbHandoff', drainKey(tenantId, chatId), scheduledKey, SEQ_KEY,
      gen, scheduledMember(tenantId, chatId), Date.now())) as string;
    if (!next) return undefined;
    await this.schedule(tenantId, chatId, next);
    return next;
  }

  /**
   * Repairs responsibility lost to a crash: every chat whose drain made no progress for `staleMs`
   * gets its drain job back if the job is gone, or retried if it failed. Idempotent; any replica.
   */
  async sweep(staleMs: number, limit = 200): Promise<{ checked: number; repaired: number }> {
    const members = await this.redis.zrangebyscore(scheduledKey, '-inf', Date.now() - staleMs, 'LIMIT', 0, limit);
    let repaired = 0;
    for (const member of members) {
      const [tenantId, chatId] = member.split('\n') as [string, string];
      const gen = await this.redis.get(drainKey(tenantId, chatId));
      if (!gen) {
        await this.redis.zrem(scheduledKey, member);
        continue;
      }
      const job = await this.queue.getJob(drainJobId(tenantId, chatId, gen));
      if (!job) {
        await this.schedule(tenantId, chatId, gen);
        repaired++;
      } else if (await job.isFailed()) {
        await job.retry('failed');
        repaired++;
      }
      await this.redis.zadd(scheduledKey, Date.now(), member);
    }
    return { checked: members.length, repaired };
  }
}
