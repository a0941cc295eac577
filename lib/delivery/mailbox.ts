/**
 * The per-chat mailbox: durable FIFO of accepted updates plus the bookkeeping that makes exactly
 * one drain job responsible for a non-empty mailbox at any time (see docs/architecture.md).
 * Used by the ingress (accept) and the forwarder (claim, pop, finish, hand off, sweep).
 */
import type { ConnectionOptions, Queue } from 'bullmq';
import type { RedisClient } from '../redis.js';
import {
  attemptsKey, chatLeaseKey, drainKey, drainSeqKey, mailboxKey, outboxKey, readyKey, runnersKey, scheduledKey, seenKey, slotWaitersKey, tenantActiveKey,
} from '../keys.js';
import { encodeEnvelope, envelopeIdentity } from './update.js';
import { promoteWhenDelayed } from './promote-job.js';
import { createHash, randomUUID } from 'node:crypto';
import { callScript, SCRIPTS, type ScriptName } from '../redis-scripts.js';
import { DRAIN_JOB_NAME, drainJobId, drainJobOpts, type DrainJobData } from './drain-contract.js';
import { RunnerRegistry } from './runner-registry.js';
import { deliveryLayout, type DeliveryLayout, type DeliveryShard } from './shards.js';
import { ShardQueues } from './shard-queues.js';

const ACCEPT_SHA = createHash('sha1').update(SCRIPTS.mbAcceptBatch.lua).digest('hex');

/** Dedup defaults (docs/architecture.md, "Dedup"): Telegram retries an update until it is acknowledged. */
export const DEFAULT_DEDUP_WINDOW_S = 3600;
export const DEFAULT_DEDUP_MAX = 1000;

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
  /** The drain queues of `layout`; or `forwardQueue`, whose connection they are opened on. */
  queues?: ShardQueues;
  forwardQueue?: Queue;
  /** Where the tenants' keys and queues are (default: the process's, DELIVERY_SHARDS). */
  layout?: DeliveryLayout;
  /** How long an accepted update_id is remembered for dedup (DEDUP_WINDOW_S). */
  dedupWindowS?: number;
  /** At most this many update_ids remembered per tenant, the oldest dropped first (DEDUP_MAX_PER_TENANT). */
  dedupMax?: number;
  /**
   * Acknowledge an accept only once this many replicas have its write (Redis WAIT; DELIVERY_WAIT_REPLICAS).
   * 0: do not wait (asynchronous replication). A WAIT that times out fails the accept (503, Telegram retries).
   */
  waitReplicas?: number;
  waitTimeoutMs?: number;
  /** Bound of an answer outbox's life if its update never left (a leak guard only; default 7 days). */
  outboxTtlS?: number;
  leaseMs?: number;
  /** A runner's lease in the shard's runners set; it renews it every third of this while it runs. */
  runnerTtlMs?: number;
  /** Ready chats per live runner past which the accept starts another runner (they are all busy). */
  runnerBacklog?: number;
  /** Most runners one shard gets from the accept (past that, waiting chats wait for a free slot). */
  maxRunners?: number;
  /**
   * TENANT_CONCURRENCY: an accept that opens a chat takes the chat's lease for the runner while the
   * tenant is below this many leases (mailbox-scripts.ts ACCEPT), so the runner drains without a
   * claim of its own. 0 (the default): it takes none. Ingress and forwarders must agree.
   */
  openingLeaseLimit?: number;
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
  readonly layout: DeliveryLayout;
  readonly queues: ShardQueues;
  private readonly redis: RedisClient;
  private readonly cluster: boolean;
  private readonly dedupWindowMs: number;
  private readonly dedupMax: number;
  private readonly waitReplicas: number;
  private readonly waitTimeoutMs: number;
  private readonly outboxTtlS: number;
  private readonly acceptBatch: number;
  private readonly openingLeaseLimit: number;
  /** The shards' ready lists and runner leases (what shard runners use). */
  readonly runners: RunnerRegistry;
  private pending: PendingAccept[] = [];
  private flushScheduled = false;
  private readonly flushPending = (): void => {
    this.flushScheduled = false;
    if (this.pending.length) this.writeBatch(this.pending.splice(0, this.pending.length));
  };

  constructor(options: MailboxOptions) {
    if (!options.redis || !(options.queues || options.forwardQueue)) throw new TypeError('Mailbox: redis and queues (or forwardQueue) are required');
    this.redis = options.redis;
    this.layout = options.layout ?? options.queues?.layout ?? deliveryLayout();
    this.queues = options.queues?.layout === this.layout ? options.queues
      : (options.queues ?? new ShardQueues(options.forwardQueue?.opts.connection as ConnectionOptions, this.layout)).withLayout(this.layout);
    this.cluster = (options.redis as { isCluster?: boolean }).isCluster === true;
    const windowS = options.dedupWindowS ?? DEFAULT_DEDUP_WINDOW_S;
    this.dedupWindowMs = windowS * 1000;
    this.dedupMax = options.dedupMax ?? DEFAULT_DEDUP_MAX;
    this.waitReplicas = options.waitReplicas ?? 0;
    this.waitTimeoutMs = options.waitTimeoutMs ?? 500;
    this.outboxTtlS = options.outboxTtlS ?? 7 * 86_400;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.acceptBatch = options.acceptBatch ?? 32;
    this.openingLeaseLimit = options.openingLeaseLimit ?? 0;
    this.runners = new RunnerRegistry({
      redis: this.redis, queues: this.queues, layout: this.layout, ttlMs: options.runnerTtlMs, backlog: options.runnerBacklog, maxRunners: options.maxRunners,
    });
    if (!Number.isInteger(this.acceptBatch) || this.acceptBatch < 1) throw new TypeError('Mailbox: acceptBatch must be a positive integer');
    if (!Number.isInteger(this.openingLeaseLimit) || this.openingLeaseLimit < 0) throw new TypeError('Mailbox: openingLeaseLimit must be a non-negative integer');
    if (!Number.isInteger(windowS) || windowS < 1) throw new TypeError('Mailbox: dedupWindowS must be a positive integer');
    if (!Number.isInteger(this.dedupMax) || this.dedupMax < 1) throw new TypeError('Mailbox: dedupMax must be a positive integer');
    if (!Number.isInteger(this.waitReplicas) || this.waitReplicas < 0) throw new TypeError('Mailbox: waitReplicas must be a non-negative integer');
  }

  private shard(tenantId: string): DeliveryShard {
    return this.layout.shardOf(tenantId);
  }

  /** The queue of the tenant's drain jobs. */
  queueOf(tenantId: string): Queue {
    return this.queues.of(tenantId);
  }

  private call(name: ScriptName, ...args: Array<string | number>): Promise<unknown> {
    return callScript(this.redis, name, ...args);
  }

  /**
   * Durably accepts an update. Resolves once it is in Redis and a drain (a runner serving the
   * chat's shard, or the chat's drain job) is responsible for the chat; `duplicate` when Telegram
   * retried an update_id that was accepted before.
   *
   * Updates accepted in the same event-loop turn are written together (the ingress answers many
   * webhooks per turn under load): one accept script for the batch (up to `acceptBatch`), then, when
   * a shard needed a runner, one round trip that adds its run job. Each update's outcome is
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

  /**
   * Writes a batch: one accept script for all of it on a single node, one per shard on a cluster
   * (a script's keys must share a slot), sent at once.
   */
  private writeBatch(batch: PendingAccept[]): void {
    if (!this.cluster || this.layout.count === 1) return this.writeGroup(batch);
    const groups = new Map<number, PendingAccept[]>();
    for (const p of batch) {
      const i = this.shard(p.tenantId).index;
      const g = groups.get(i);
      if (g) g.push(p);
      else groups.set(i, [p]);
    }
    for (const g of groups.values()) this.writeGroup(g);
  }

  private writeGroup(batch: PendingAccept[]): void {
    const keys: string[] = [];
    // The tokens of the leases the script takes for runners: `o<nonce>.<index in the batch>`.
    const argv: Array<string | number> = [this.dedupWindowMs, this.dedupMax, this.runners.ttlMs, this.runners.backlog, this.runners.maxRunners,
      this.leaseMs, this.openingLeaseLimit, `o${randomUUID()}`];
    for (const p of batch) {
      const { tag } = this.shard(p.tenantId);
      keys.push(seenKey(p.tenantId, this.layout), mailboxKey(p.tenantId, p.chatId, this.layout), drainKey(p.tenantId, p.chatId, this.layout), scheduledKey(tag), drainSeqKey(tag),
        readyKey(tag), runnersKey(tag), chatLeaseKey(p.tenantId, p.chatId, this.layout), tenantActiveKey(p.tenantId, this.layout));
      argv.push(encodeEnvelope(p.updateId, p.now, p.raw), scheduledMember(p.tenantId, p.chatId), p.now, p.updateId);
    }
    let written: Promise<unknown>;
    try {
      written = this.waitReplicas > 0 ? this.acceptAndWait(keys, argv) : this.callAccept(keys, argv);
    } catch (err) {
      written = Promise.reject(err);
    }
    written.then((reply) => {
      try {
        this.scheduleAccepted(batch, reply as Array<number | string>);
      } catch (err) {
        batch.forEach((p) => p.reject(err));
      }
    }, (err: unknown) => batch.forEach((p) => p.reject(err)));
  }

  /**
   * The accept script. On a cluster as EVALSHA (EVAL when the node lacks it): an auto-pipelined
   * cluster client routes a custom command by its first argument, which for a script with a
   * variable number of keys is the key count, not a key; EVALSHA's keys it finds.
   */
  private callAccept(keys: string[], argv: Array<string | number>): Promise<unknown> {
    if (!this.cluster) return this.call('mbAcceptBatch', keys.length, ...keys, ...argv);
    return this.redis.evalsha(ACCEPT_SHA, keys.length, ...keys, ...argv).catch((err: unknown) => {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return this.redis.eval(SCRIPTS.mbAcceptBatch.lua, keys.length, ...keys, ...argv);
    });
  }

  /** Adds the run jobs of the runners a written batch registered; resolves each update when its runner's job exists. */
  private scheduleAccepted(batch: PendingAccept[], out: Array<number | string>): void {
    const scheduling: Array<{ p: PendingAccept; duplicate: boolean }> = [];
    const adds: Array<Promise<unknown>> = [];
    batch.forEach((p, i) => {
      const duplicate = out[2 * i] === 0;
      const runner = out[2 * i + 1];
      if (!runner) return p.resolve({ duplicate });
      scheduling.push({ p, duplicate });
      adds.push(this.runners.start(this.queueOf(p.tenantId), String(runner)));
    });
    if (!adds.length) return;
    Promise.all(adds).then(
      () => scheduling.forEach(({ p, duplicate }) => p.resolve({ duplicate })),
      (err: unknown) => scheduling.forEach(({ p }) => p.reject(err)),
    );
  }

  /**
   * The accept script and a WAIT in one pipeline, so WAIT goes to the master that ran the script
   * (on a cluster, the pipeline's node is its keys' slot's). Fails unless `waitReplicas` replicas
   * acknowledged the write within `waitTimeoutMs`: the ingress answers 503 and Telegram retries
   * (the retry is a duplicate if the write survives, a fresh accept if it was lost with its master).
   */
  private async acceptAndWait(keys: string[], argv: Array<string | number>): Promise<unknown> {
    const pipe = this.redis.pipeline() as unknown as Record<string, (...a: Array<string | number>) => unknown> & { exec(): Promise<Array<[Error | null, unknown]> | null> };
    pipe.mbAcceptBatch?.(keys.length, ...keys, ...argv);
    (pipe as unknown as { call(...a: Array<string | number>): unknown }).call('WAIT', this.waitReplicas, this.waitTimeoutMs);
    const res = await pipe.exec();
    if (!res) throw new Error('accept pipeline returned nothing');
    const [[e1, out], [e2, acked]] = res as [[Error | null, unknown], [Error | null, unknown]];
    if (e1) throw e1;
    if (e2) throw e2;
    if (Number(acked) < this.waitReplicas) throw new Error(`accept not replicated: ${String(acked)} of ${this.waitReplicas} replicas within ${this.waitTimeoutMs} ms`);
    return out;
  }

  /**
   * Adds the drain job of a generation, to run in `delayMs`; a no-op when it exists already (same
   * job id). A chat leaves the ready-list path this way when its drain has to wait (a wake, a
   * backoff, a busy tenant), a hand-off, or the sweeper's repair.
   */
  async schedule(tenantId: string, chatId: string, gen: string, delayMs = 0): Promise<void> {
    const data: DrainJobData = { t: tenantId, c: chatId };
    await this.queueOf(tenantId).add(DRAIN_JOB_NAME, data, { ...drainJobOpts(drainJobId(tenantId, chatId, gen)), ...(delayMs > 0 ? { delay: delayMs } : {}) });
  }

  async claim(tenantId: string, chatId: string, gen: string, token: string, tenantLimit: number): Promise<ClaimResult> {
    return (await this.claimHead(tenantId, chatId, gen, token, tenantLimit)).result;
  }

  /**
   * claim() that also reads the oldest envelope when it succeeds (null: the mailbox is empty) and its
   * answer outbox, in the same script. A 'full' claim queues the drain's job for the tenant's next
   * free slot: the drain that frees it promotes the job (release(), popNext()), so the caller delays
   * it only as a fallback. `mayWait` false (a runner's drain of a chat the ready list gave it: its
   * drain job was never queued for a slot) saves the script taking it off the waiters.
   */
  async claimHead(tenantId: string, chatId: string, gen: string, token: string, tenantLimit: number, mayWait = true): Promise<{ result: ClaimResult } & HeadRead> {
    const [result, head, fields] = (await this.call('mbClaim', drainKey(tenantId, chatId, this.layout), chatLeaseKey(tenantId, chatId, this.layout), tenantActiveKey(tenantId, this.layout),
      mailboxKey(tenantId, chatId, this.layout), slotWaitersKey(tenantId, this.layout), outboxKey(tenantId, chatId, this.layout), gen, token, Date.now(), this.leaseMs, tenantLimit,
      drainJobId(tenantId, chatId, gen), mayWait ? 1 : 0)) as [ClaimResult, string | null | undefined, Array<string | null> | undefined];
    return { result, head: head ?? null, outbox: outboxOf(head ?? null, fields) };
  }

  async renew(tenantId: string, chatId: string, token: string): Promise<boolean> {
    return (await this.call('mbRenew', chatLeaseKey(tenantId, chatId, this.layout), tenantActiveKey(tenantId, this.layout), token, Date.now(), this.leaseMs)) === 1;
  }

  /** Gives the chat lease and the tenant slot back; the slot goes to the oldest waiting drain. */
  async release(tenantId: string, chatId: string, token: string): Promise<void> {
    const waiter = (await this.call('mbRelease', chatLeaseKey(tenantId, chatId, this.layout), tenantActiveKey(tenantId, this.layout), slotWaitersKey(tenantId, this.layout), token)) as string;
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
        if (await promoteWhenDelayed(this.queueOf(tenantId), next)) return;
        next = (await this.redis.zpopmin(slotWaitersKey(tenantId, this.layout)))[0];
      }
    })().catch(() => undefined);
  }

  /** The oldest pending envelope of the chat, without removing it (at-least-once). */
  async head(tenantId: string, chatId: string): Promise<string | null> {
    return this.redis.lindex(mailboxKey(tenantId, chatId, this.layout), 0);
  }

  /**
   * head() with the head's answer outbox under a lease the accept took for a runner (`token`), if
   * Redis still has it held by that token with more than `minLeftMs` left; undefined when not (the
   * caller claims). Plain reads, sent together, no script: nothing but an accept's append changes a
   * leased chat's list. Redis's clock decides, not the ingress's and the forwarder's.
   */
  async heldHead(tenantId: string, chatId: string, token: string, minLeftMs: number): Promise<HeadRead | undefined> {
    const lease = chatLeaseKey(tenantId, chatId, this.layout);
    const [holder, left, head, fields] = await Promise.all([this.redis.get(lease), this.redis.pttl(lease), this.redis.lindex(mailboxKey(tenantId, chatId, this.layout), 0),
      this.redis.hmget(outboxKey(tenantId, chatId, this.layout), 'id', 'answer', 'sent', 'failed_turns')]);
    if (holder !== token || left <= minLeftMs) return undefined;
    return { head, outbox: outboxOf(head, fields) };
  }

  /**
   * claimHead() for a runner's drain of a chat whose accept took the lease for it (`token`, the ready
   * entry's): the lease is used as it is while Redis says two thirds of it are left (the drainer's
   * renewal comes at a third), read with the head in one round trip and no script; else (a
   * backlog, a stalled runner) it is claimed like any, with the token (CLAIM renews a lease its
   * token holds): a second round trip.
   */
  async claimOpened(tenantId: string, chatId: string, gen: string, token: string, tenantLimit: number): Promise<{ result: ClaimResult } & HeadRead> {
    const held = await this.heldHead(tenantId, chatId, token, (this.leaseMs * 2) / 3);
    return held ? { result: 'ok', ...held } : this.claimHead(tenantId, chatId, gen, token, tenantLimit, false);
  }

  /** head() with the head's answer outbox, in one script. */
  async headWithOutbox(tenantId: string, chatId: string): Promise<HeadRead> {
    const [head, fields] = (await this.call('mbHead', mailboxKey(tenantId, chatId, this.layout), outboxKey(tenantId, chatId, this.layout))) as [string | null, Array<string | null> | undefined];
    return { head: head ?? null, outbox: outboxOf(head ?? null, fields) };
  }

  /**
   * Keeps the agent's answer with the head update (`envelope`) until it was sent: a redelivery
   * (crash, Telegram failure) sends it instead of asking the agent again. Needs the chat lease.
   */
  async keepAnswer(tenantId: string, chatId: string, envelope: string, token: string, answer: string): Promise<FencedWrite> {
    return fenced((await this.call('mbKeepAnswer', chatLeaseKey(tenantId, chatId, this.layout), mailboxKey(tenantId, chatId, this.layout), outboxKey(tenantId, chatId, this.layout),
      token, envelopeIdentity(envelope), answer, this.outboxTtlS)) as number);
  }

  /** Records that `sent` chunks of the kept answer reached the chat (a retry goes on after them). */
  async recordSent(tenantId: string, chatId: string, envelope: string, token: string, sent: number): Promise<FencedWrite> {
    return fenced((await this.call('mbRecordSent', chatLeaseKey(tenantId, chatId, this.layout), outboxKey(tenantId, chatId, this.layout),
      token, envelopeIdentity(envelope), sent)) as number);
  }

  /**
   * Counts a failed delivery of the head and returns the attempts so far. `turnEnded`: the agent
   * answered with an error after recording the idempotency key (zeroclaw 5xx/408), counted in the
   * outbox too, so the next delivery presents a new key; `failedTurns` is then the new count.
   */
  async countAttempt(tenantId: string, chatId: string, envelope: string, updateId: number, token: string, turnEnded: boolean): Promise<{ attempts: number; failedTurns: number }> {
    const [attempts, failedTurns] = (await this.call('mbCountAttempt', attemptsKey(tenantId, this.layout), chatLeaseKey(tenantId, chatId, this.layout), mailboxKey(tenantId, chatId, this.layout),
      outboxKey(tenantId, chatId, this.layout), attemptsField(tenantId, chatId, updateId), token, envelopeIdentity(envelope), turnEnded ? 1 : 0,
      this.outboxTtlS)) as [number, number];
    return { attempts, failedTurns };
  }

  async depth(tenantId: string, chatId: string): Promise<number> {
    return this.redis.llen(mailboxKey(tenantId, chatId, this.layout));
  }

  /**
   * Removes the delivered head (with its attempt counter and answer outbox) and, in the same step,
   * returns the next one, which never has an outbox yet; when none is left the generation gives up
   * responsibility and the lease is released (the drain is over). One round trip for what pop +
   * head + finish + release do separately.
   */
  async popNext(tenantId: string, chatId: string, envelope: string, updateId: number, token: string, gen: string): Promise<PopNextResult> {
    const reply = (await this.call('mbPopNext', mailboxKey(tenantId, chatId, this.layout), chatLeaseKey(tenantId, chatId, this.layout), scheduledKey(this.shard(tenantId).tag),
      drainKey(tenantId, chatId, this.layout), tenantActiveKey(tenantId, this.layout), attemptsKey(tenantId, this.layout), slotWaitersKey(tenantId, this.layout), outboxKey(tenantId, chatId, this.layout),
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
    return (await this.call('mbFinish', mailboxKey(tenantId, chatId, this.layout), drainKey(tenantId, chatId, this.layout), scheduledKey(this.shard(tenantId).tag),
      gen, scheduledMember(tenantId, chatId))) === 1;
  }

  /** Passes responsibility to a new generation and job (graceful shutdown, fairness). */
  async handOff(tenantId: string, chatId: string, gen: string): Promise<string | undefined> {
    const next = (await this.call('mbHandoff', drainKey(tenantId, chatId, this.layout), scheduledKey(this.shard(tenantId).tag), drainSeqKey(this.shard(tenantId).tag),
      gen, scheduledMember(tenantId, chatId), Date.now())) as string;
    if (!next) return undefined;
    await this.schedule(tenantId, chatId, next);
    return next;
  }

  /**
   * Repairs responsibility lost to a crash: every chat whose drain made no progress for `staleMs`
   * and that no drain holds (no chat lease) gets a drain job if it has none (its runner died with
   * it, its ready entry waits behind a backlog, its job was lost), or retried if it failed. Idempotent; any replica.
   * Every shard of the layout, `limit` chats each.
   */
  async sweep(staleMs: number, limit = 200): Promise<{ checked: number; repaired: number }> {
    let checked = 0;
    let repaired = 0;
    for (const shard of this.layout.shards) {
      const r = await this.sweepShard(shard, staleMs, limit);
      checked += r.checked;
      repaired += r.repaired;
    }
    return { checked, repaired };
  }

  private async sweepShard(shard: DeliveryShard, staleMs: number, limit: number): Promise<{ checked: number; repaired: number }> {
    const index = scheduledKey(shard.tag);
    const members = await this.redis.zrangebyscore(index, '-inf', Date.now() - staleMs, 'LIMIT', 0, limit);
    let repaired = 0;
    for (const member of members) {
      const [tenantId, chatId] = member.split('\n') as [string, string];
      const gen = await this.redis.get(drainKey(tenantId, chatId, this.layout));
      if (!gen) {
        // Checked again in the same step as the removal: an accept may have re-opened the chat.
        await this.call('mbSweepForget', drainKey(tenantId, chatId, this.layout), index, member);
        continue;
      }
      // A drain holds the chat (a runner's, waiting on a slow agent): it is not lost.
      if (await this.redis.exists(chatLeaseKey(tenantId, chatId, this.layout))) {
        await this.redis.zadd(index, Date.now(), member);
        continue;
      }
      const job = await this.queueOf(tenantId).getJob(drainJobId(tenantId, chatId, gen));
      if (!job) {
        await this.schedule(tenantId, chatId, gen);
        repaired++;
      } else if (await job.isFailed()) {
        await job.retry('failed');
        repaired++;
      }
      await this.redis.zadd(index, Date.now(), member);
    }
    return { checked: members.length, repaired };
  }
}
