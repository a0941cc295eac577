/**
 * Processes one drain job: owns one chat's mailbox under a lease and delivers its updates one at a
 * time, in order, to the tenant's agent. An update leaves the mailbox only after it was delivered
 * (and its answer sent), or dead-lettered, so a worker killed at any instant loses nothing.
 */
import { randomUUID } from 'node:crypto';
import { DelayedError, type Job } from 'bullmq';
import { drainJobId, parseDrainJob, type DrainJob, type ReadyDrain } from '../../lib/delivery/drain-contract.js';
import { HeadDelivery, type DeliveryDeps, type Step } from './head-delivery.js';

export { STARTING_UP_TEXT } from './head-delivery.js';

/** A drain whose tenant has no free slot waits for one to be handed to it, at most this long. */
const FULL_FALLBACK_MS = 1_000;

export type DrainerDeps = DeliveryDeps;

/**
 * Where a drain runs: its chat's own drain job, or a slot of a shard runner (shard-runner.ts).
 * Both wait the same way: the chat's drain job (`jobId`) is delayed or, for a runner's drain,
 * created delayed, and the drain ends; parks and slot waits name that job.
 */
interface DrainSeat {
  jobId: string;
  queue: string;
  /** A runner's drain of a chat from the ready list: its drain job never waited for a tenant slot. */
  fromReadyList?: boolean;
  /** The token of the lease the accept took for this drain (a ready-list entry's), if it did. */
  openingLease?: string;
  /** Runs `park` (the job's registration for a wake's promotion), then lets the drain wait `ms`. */
  defer(ms: number, park?: () => Promise<void>): Promise<string>;
}

export class Drainer {
  private closing = false;
  private readonly delivery: HeadDelivery;

  constructor(private readonly d: DrainerDeps) {
    this.delivery = new HeadDelivery(d);
  }

  /** After this, drains hand their chat to a fresh job after the current update. */
  stop(): void {
    this.closing = true;
  }

  /** Processes a chat's drain job: the job is delayed (moveToDelayed) when the drain has to wait. */
  async process(job: Job, jobToken: string | undefined): Promise<string> {
    const drain = parseDrainJob(job.id, job.data);
    if (!drain) {
      this.d.log.error({ job: job.id }, 'malformed drain job: dropped');
      return 'malformed';
    }
    return this.drain(drain, {
      jobId: job.id as string,
      queue: job.queueName,
      defer: async (ms, park) => {
        await park?.();
        return this.delay(job, jobToken, ms);
      },
    });
  }

  /**
   * Drains a chat a shard runner took from its ready list. When the drain has to wait, the chat
   * gets its own drain job (delayed), which takes over; the runner's slot is free again.
   */
  drainReady(drain: ReadyDrain, queue: string): Promise<string> {
    const { tenantId, chatId, gen } = drain;
    return this.drain(drain, {
      jobId: drainJobId(tenantId, chatId, gen),
      queue,
      fromReadyList: true,
      ...(drain.leaseToken ? { openingLease: drain.leaseToken } : {}),
      defer: async (ms, park) => {
        await this.d.mailbox.schedule(tenantId, chatId, gen, ms);
        await park?.();
        return 'deferred';
      },
    });
  }

  private async drain(drain: DrainJob, seat: DrainSeat): Promise<string> {
    const { tenantId, chatId, gen } = drain;
    const lease = seat.openingLease ?? randomUUID();
    // The claim (of the lease the accept took, if it did) reads the head, the endpoint is read beside it.
    const limit = this.d.config.tenantConcurrency;
    const [claim, firstEndpoint] = await Promise.all([
      seat.openingLease === undefined ? this.d.mailbox.claimHead(tenantId, chatId, gen, lease, limit, !seat.fromReadyList)
        : this.d.mailbox.claimOpened(tenantId, chatId, gen, lease, limit),
      this.d.endpoints.get(tenantId),
    ]);
    if (claim.result === 'stale') return 'stale';
    if (claim.result !== 'ok') {
      // Chat leased by another drainer (a stalled duplicate), or the tenant at its concurrency limit:
      // then the drain that frees a slot promotes this job (Mailbox.claimHead); the delay is a fallback.
      return seat.defer(claim.result === 'busy' ? 1000 : FULL_FALLBACK_MS);
    }
    const log = this.d.log.child({ tenant: tenantId, chat: chatId });
    const renew = setInterval(() => void this.d.mailbox.renew(tenantId, chatId, lease).catch(() => undefined), Math.floor(this.d.mailbox.leaseMs / 3));
    let step: Step = { next: 'continue', head: claim.head, outbox: claim.outbox, endpoint: firstEndpoint, endpointAt: Date.now() };
    try {
      for (;;) {
        if (this.closing) {
          await this.d.mailbox.handOff(tenantId, chatId, gen);
          return 'handed-off';
        }
        let { head: envelope, outbox, endpoint } = step;
        let endpointAt = step.endpointAt ?? 0;
        if (envelope === undefined) {
          let read;
          [read, endpoint] = await Promise.all([this.d.mailbox.headWithOutbox(tenantId, chatId), this.d.endpoints.get(tenantId)]);
          endpointAt = Date.now();
          ({ head: envelope, outbox } = read);
        }
        if (envelope === null) {
          if (await this.d.mailbox.finish(tenantId, chatId, gen)) return 'drained';
          step = { next: 'continue' };
          continue;
        }
        step = await this.delivery.deliver({ tenantId, chatId, gen, lease, queue: seat.queue, raw: envelope, outbox, endpoint, endpointAt, log });
        if (step.next === 'drained') return 'drained';
        if (step.next === 'park') break;
      }
    } finally {
      clearInterval(renew);
      // A drain that ended in popNext gave its lease back in the same script.
      if (step.next !== 'drained') await this.d.mailbox.release(tenantId, chatId, lease);
    }
    const park = step.onWake ? () => this.d.endpoints.park(tenantId, seat.jobId, seat.queue) : undefined;
    return seat.defer(step.delayMs, park);
  }

  private async delay(job: Job, jobToken: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + ms, jobToken);
    throw new DelayedError();
  }
}
