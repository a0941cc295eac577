/**
 * Shard runners: a run job (drain-contract.ts RUN_JOB_NAME) serves its shard's ready list for a
 * while, taking each chat as it opens and draining it in one of its slots, so a chat opening costs
 * a list entry instead of a BullMQ job of its own (add, fetch, complete: most of the Redis work of
 * an update where every update opens its chat). The accept script registers a runner when its
 * shard has none alive or all are busy (mailbox-scripts.ts ENSURE_RUNNER); a runner ends after
 * RUNNER_IDLE_MS without a chat or RUNNER_MAX_MS in all, handing the list to a successor if chats
 * wait. A drain that has to wait (a wake, a backoff, a busy tenant) moves to its chat's own drain
 * job (Drainer.drainReady), so runners' slots only ever hold drains that make progress.
 *
 * What a crash costs: a runner killed with chats in its slots leaves them leased until the lease
 * expires and then unheld; the sweeper gives each a drain job (Mailbox.sweep). The run job itself
 * comes back through BullMQ's stall recovery.
 */
import type { Job } from 'bullmq';
import type { Logger } from '../../lib/logger.js';
import type { RedisClient } from '../../lib/redis.js';
import type { Mailbox } from '../../lib/delivery/mailbox.js';
import type { RunnerRegistry } from '../../lib/delivery/runner-registry.js';
import type { DeliveryShard } from '../../lib/delivery/shards.js';
import { parseReadyEntry, parseRunJob, type DrainJob } from '../../lib/delivery/drain-contract.js';
import type { Drainer } from './drainer.js';

/** A runner ends when no chat came for this long (the next opening starts another). */
export const RUNNER_IDLE_MS = 10_000;
/**
 * A runner with at most half its slots busy checks this often whether its shard has other live
 * runners, and ends if so (after its drains): the runners a burst registered (the ready list
 * outgrew them) go once it is served, instead of sharing out the steady traffic among themselves
 * for their whole life; when the one left is too busy, the ready list grows and the accept
 * registers another.
 */
const SURPLUS_CHECK_MS = 2_000;
/** Idle runner connections kept for the next runners; more are closed. */
const POOLED_CONNECTIONS = 8;
/** A runner ends after this long in all, so runners move between forwarders as they come and go. */
export const RUNNER_MAX_MS = 120_000;
/** How long one BLPOP waits: the runner re-checks closing and idleness between them. */
const TAKE_WAIT_S = 1;
/** A drain that failed unexpectedly is retried by its chat's drain job after this. */
const RETRY_MS = 1_000;

export interface ShardRunnersOptions {
  log: Logger;
  /** Makes a connection of its own for a runner's BLPOP (reused by the next runner; closed at close()). */
  connect: () => RedisClient;
  /** Drains one runner holds at once. */
  slots: number;
  /** Drains all runners of this process hold at once (FORWARDER_CONCURRENCY's share; default: unbounded). */
  maxDrains?: number;
  idleMs?: number;
  maxRunMs?: number;
}

export class ShardRunners {
  private closing = false;
  private readonly idle: RedisClient[] = [];
  private readonly all = new Set<RedisClient>();
  private readonly idleMs: number;
  private readonly maxRunMs: number;
  private readonly maxDrains: number;
  private drains = 0;
  private readonly slotWaiters: Array<() => void> = [];

  constructor(private readonly o: ShardRunnersOptions) {
    if (!o.log || typeof o.connect !== 'function') throw new TypeError('ShardRunners: log and connect are required');
    if (!Number.isInteger(o.slots) || o.slots < 1) throw new TypeError('ShardRunners: slots must be a positive integer');
    this.idleMs = o.idleMs ?? RUNNER_IDLE_MS;
    this.maxRunMs = o.maxRunMs ?? RUNNER_MAX_MS;
    this.maxDrains = o.maxDrains ?? Infinity;
    if (!(this.maxDrains >= 1)) throw new TypeError('ShardRunners: maxDrains must be at least 1');
  }

  /** Drains the runners of this process hold now. */
  get inFlight(): number {
    return this.drains;
  }

  /** Waits for one of the process's drain slots (first come, first served). */
  private takeSlot(): Promise<void> {
    if (this.drains < this.maxDrains) {
      this.drains++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.slotWaiters.push(() => { this.drains++; resolve(); }));
  }

  private freeSlot(): void {
    this.drains--;
    this.slotWaiters.shift()?.();
  }

  /** Processes a run job of `mailbox`'s layout with `drainer`'s drains. */
  async run(job: Job, mailbox: Mailbox, drainer: Drainer): Promise<string> {
    const runnerId = parseRunJob(job.id, job.name);
    const shard = mailbox.layout.shardOfQueue(job.queueName);
    if (!runnerId || !shard) {
      this.o.log.error({ job: job.id, queue: job.queueName }, 'malformed run job: dropped');
      return 'malformed';
    }
    const log = this.o.log.child({ runner: runnerId, shard: shard.index });
    if (this.closing) {
      // Fetched while this forwarder shuts down: handed to a successor if chats wait.
      await mailbox.runners.exit(shard, runnerId);
      return 'closing';
    }
    const lease = new RunnerLease(mailbox.runners, shard, runnerId);
    const conn = this.acquire();
    const inFlight = new Set<Promise<void>>();
    let served = 0;
    try {
      await lease.start();
      served = await this.serve(shard, lease, conn, inFlight, mailbox, drainer, log);
    } finally {
      this.release(conn);
      // Off the runners before waiting for its drains (a long one must not hold the shard's
      // openings: a successor is registered at once if chats wait).
      lease.stop();
    }
    const successor = await mailbox.runners.exit(shard, runnerId);
    await Promise.allSettled(inFlight);
    log.debug({ served, successor }, 'runner ends');
    return `served ${served}`;
  }

  /** Takes and drains ready chats until idle, too old, surplus or closing. */
  private async serve(shard: DeliveryShard, lease: RunnerLease, conn: RedisClient, inFlight: Set<Promise<void>>, mailbox: Mailbox, drainer: Drainer, log: Logger): Promise<number> {
    const started = Date.now();
    let lastTaken = started;
    let surplusCheckedAt = started;
    let served = 0;
    while (!this.closing && Date.now() - started < this.maxRunMs) {
      if (inFlight.size >= this.o.slots) {
        // Every slot busy: not a runner the shard can count on until one frees. (The race is taken
        // first: a drain ending during the lease write would leave it an empty set, never settling.)
        const slotFree = Promise.race(inFlight);
        await lease.full(true);
        await slotFree;
        continue;
      }
      await lease.full(false);
      // Half its slots or fewer busy: this runner is not what keeps up with the shard's traffic.
      if (inFlight.size <= this.o.slots / 2 && Date.now() - surplusCheckedAt >= SURPLUS_CHECK_MS) {
        surplusCheckedAt = Date.now();
        if (await mailbox.runners.retire(shard, lease.runnerId).catch(() => false)) break;
      }
      let entry: string | undefined;
      try {
        entry = await mailbox.runners.take(conn, shard, TAKE_WAIT_S);
      } catch (err) {
        if (this.closing) break;
        log.warn({ err }, 'runner could not take from the ready list: retrying');
        await new Promise((r) => setTimeout(r, 500).unref());
        continue;
      }
      if (entry === undefined) {
        if (inFlight.size === 0 && Date.now() - lastTaken >= this.idleMs) break;
        continue;
      }
      lastTaken = Date.now();
      if (this.closing) {
        await mailbox.runners.giveBack(shard, entry).catch((err: unknown) => log.warn({ err }, 'could not give a chat back to the ready list: the sweeper will'));
        break;
      }
      const drain = parseReadyEntry(entry);
      if (!drain) {
        log.error({ entry: entry.slice(0, 80) }, 'malformed ready entry: dropped');
        continue;
      }
      // The chat waits in hand for one of the process's slots (a crash meanwhile: the sweeper's).
      await this.takeSlot();
      if (this.closing) {
        this.freeSlot();
        await mailbox.runners.giveBack(shard, entry).catch((err: unknown) => log.warn({ err }, 'could not give a chat back to the ready list: the sweeper will'));
        break;
      }
      served++;
      const p: Promise<void> = drainer.drainReady(drain, shard.queue).then(
        () => undefined,
        (err: unknown) => this.retryLater(mailbox, drain, err, log),
      ).finally(() => {
        inFlight.delete(p);
        this.freeSlot();
      });
      inFlight.add(p);
    }
    return served;
  }

  /** A drain that failed unexpectedly (a lost lease, Redis hiccups) is retried by its chat's drain job. */
  private async retryLater(mailbox: Mailbox, drain: DrainJob, err: unknown, log: Logger): Promise<void> {
    log.warn({ err, tenant: drain.tenantId, chat: drain.chatId }, 'drain failed: its drain job retries it');
    await mailbox.schedule(drain.tenantId, drain.chatId, drain.gen, RETRY_MS)
      .catch((e: unknown) => log.error({ err: e }, 'could not schedule the retry: the sweeper will'));
  }

  private acquire(): RedisClient {
    const conn = this.idle.pop();
    if (conn) return conn;
    const fresh = this.o.connect();
    fresh.on('error', () => undefined); // surfaced by takeReady
    this.all.add(fresh);
    return fresh;
  }

  private release(conn: RedisClient): void {
    if (!this.closing && this.idle.length < POOLED_CONNECTIONS) {
      this.idle.push(conn);
      return;
    }
    this.all.delete(conn);
    conn.disconnect();
  }

  /** After this, runners take no more chats, finish their drains (which hand off) and end. */
  stop(): void {
    this.closing = true;
  }

  /** Drops the runners' connections (a BLPOP in flight ends with an error the runner ignores). */
  close(): void {
    this.closing = true;
    for (const c of this.all) c.disconnect();
    this.all.clear();
    this.idle.length = 0;
  }
}

/**
 * A runner's registration in its shard's runners set while it serves: renewed every third of the
 * TTL, marked not live while every slot is busy (so the accept registers another runner for the
 * chats that wait), removed by the registry's exit or retire.
 */
class RunnerLease {
  private timer: NodeJS.Timeout | undefined;
  private isFull = false;

  constructor(private readonly registry: RunnerRegistry, private readonly shard: DeliveryShard, readonly runnerId: string) {}

  /** Registers (again: a run job that waited past its lease in the queue) and starts renewing. */
  async start(): Promise<void> {
    await this.registry.renew(this.shard, this.runnerId, { register: true });
    this.timer = setInterval(() => {
      if (!this.isFull) void this.registry.renew(this.shard, this.runnerId).catch(() => undefined);
    }, Math.floor(this.registry.ttlMs / 3));
    // A renewal never keeps a process alive: one whose runner is stuck on a dead connection must exit.
    this.timer.unref();
  }

  /** Every slot busy (true) or a slot free again (false); writes only on a change. */
  async full(isFull: boolean): Promise<void> {
    if (isFull === this.isFull) return;
    this.isFull = isFull;
    await (isFull ? this.registry.markBusy(this.shard, this.runnerId) : this.registry.renew(this.shard, this.runnerId, { register: true }))
      .catch(() => undefined);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
