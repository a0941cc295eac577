/**
 * `ztm`'s side of the admin queue: enqueue a command, make sure a worker picks it up, wait for the
 * reply. A command nobody picks up is removed again, so it cannot run by surprise later.
 */
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, type Job } from 'bullmq';
import { NoWorkerError, TimeoutError, errorFromWire } from '../errors.js';
import { QUEUES, QUEUE_PREFIX } from '../queues.js';
import { assertRedisReachable, createRedis, describeRedisUrl, closeRedis, type RedisClient } from '../redis.js';
import type { AdminArgs, AdminCommand, AdminReply } from './admin-protocol.js';

/** Resolves with `p`, or rejects with `onTimeout()` (resolves undefined when it returns nothing). */
function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error | undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      const err = onTimeout();
      if (err) reject(err);
      else reject(new Error('timeout'));
    }, ms);
    p.then((v) => (clearTimeout(timer), resolve(v)), (e: unknown) => (clearTimeout(timer), reject(e)));
  });
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

function isReply(v: unknown): v is AdminReply {
  return typeof v === 'object' && v !== null && typeof (v as { ok?: unknown }).ok === 'boolean';
}

export interface AdminClientOptions {
  redisUrl: string;
  /** A Redis Cluster client; undefined: whatever the node at redisUrl says it is (INFO cluster). */
  cluster?: boolean | undefined;
  /** How long a command may wait to be picked up by an admin worker. */
  pickupTimeoutMs?: number;
  /** How long a picked-up command may run. */
  runTimeoutMs?: number;
}

export class AdminClient {
  private readonly options: Required<Omit<AdminClientOptions, 'cluster'>> & Pick<AdminClientOptions, 'cluster'>;
  private connection: RedisClient | undefined;
  private eventsConnection: RedisClient | undefined;
  private queueInstance: Queue | undefined;
  private eventsInstance: QueueEvents | undefined;

  constructor(options: AdminClientOptions) {
    if (!options.redisUrl) throw new TypeError('AdminClient: redisUrl is required');
    this.options = { pickupTimeoutMs: 5000, runTimeoutMs: 60_000, ...options };
  }

  private get queue(): Queue {
    if (!this.queueInstance) throw new Error('AdminClient: call connect() first');
    return this.queueInstance;
  }

  private get events(): QueueEvents {
    if (!this.eventsInstance) throw new Error('AdminClient: call connect() first');
    return this.eventsInstance;
  }

  /** Probes Redis first (fails fast with a clear message), then opens the queue and its events. */
  async connect(): Promise<void> {
    const url = this.options.redisUrl;
    const cluster = await assertRedisReachable(url, { cluster: this.options.cluster, name: 'ztm' });
    this.connection = createRedis({ url, cluster, name: 'ztm', blocking: true });
    this.eventsConnection = createRedis({ url, cluster, name: 'ztm-events', blocking: true });
    // Connection errors surface through the commands; keep them off the default 'error' path.
    for (const c of [this.connection, this.eventsConnection]) c.on('error', () => undefined);
    this.queueInstance = new Queue(QUEUES.admin, { connection: this.connection, prefix: QUEUE_PREFIX });
    // QueueEvents reads from '$' as of its first XREAD, which it sends some time after it is
    // "ready": a reply landing in between would be missed (and the command wait for its timeout).
    // Reading from the stream's current last entry instead misses nothing.
    const last = await this.connection.xrevrange(this.queueInstance.keys.events as string, '+', '-', 'COUNT', 1);
    const lastEventId = last[0]?.[0] ?? '0-0';
    this.eventsInstance = new QueueEvents(QUEUES.admin, { connection: this.eventsConnection, prefix: QUEUE_PREFIX, lastEventId });
    this.queueInstance.on('error', () => undefined);
    this.eventsInstance.on('error', () => undefined);
    await this.eventsInstance.waitUntilReady();
  }

  async run<C extends AdminCommand>(command: C, args: AdminArgs[C], runTimeoutMs = this.options.runTimeoutMs, onProgress?: (message: string) => void): Promise<unknown> {
    // Our own job id, so we listen for its events before it exists and cannot miss a fast reply.
    const jobId = `ztm-${randomUUID()}`;
    const outcome = this.outcomeOf(jobId);
    const progressListener = (e: { jobId: string; data: unknown }): void => {
      const message = (e.data as { message?: unknown } | undefined)?.message;
      if (e.jobId === jobId && typeof message === 'string') onProgress?.(message);
    };
    if (onProgress) this.events.on('progress', progressListener);
    try {
      const job = await this.queue.add(command, args, { jobId, removeOnComplete: true, removeOnFail: true, attempts: 1 });
      await this.awaitPickup(job, outcome.active);
      const reply = await withTimeout(outcome.finished, runTimeoutMs, () =>
        new TimeoutError(`${command} did not finish within ${Math.round(runTimeoutMs / 1000)}s; it may still complete: check with \`ztm tenant get\``));
      if (!reply.ok) throw errorFromWire(reply.code, reply.message);
      return reply.result;
    } finally {
      outcome.dispose();
      this.events.off('progress', progressListener);
    }
  }

  private outcomeOf(jobId: string): { active: Promise<void>; finished: Promise<AdminReply>; dispose(): void } {
    let onActive!: () => void;
    let onDone!: (r: AdminReply) => void;
    const active = new Promise<void>((r) => (onActive = r));
    const finished = new Promise<AdminReply>((r) => (onDone = r));
    const activeListener = (e: { jobId: string }): void => void (e.jobId === jobId && onActive());
    const completedListener = (e: { jobId: string; returnvalue: unknown }): void => {
      if (e.jobId !== jobId) return;
      const value = typeof e.returnvalue === 'string' ? safeParse(e.returnvalue) : e.returnvalue;
      onActive();
      onDone(isReply(value) ? value : { ok: false, code: 'E_INTERNAL', message: 'the admin worker sent no reply' });
    };
    const failedListener = (e: { jobId: string; failedReason: string }): void => {
      if (e.jobId !== jobId) return;
      onActive();
      onDone({ ok: false, code: 'E_INTERNAL', message: `the admin worker failed: ${e.failedReason}` });
    };
    this.events.on('active', activeListener);
    this.events.on('completed', completedListener);
    this.events.on('failed', failedListener);
    return {
      active,
      finished,
      dispose: () => {
        this.events.off('active', activeListener);
        this.events.off('completed', completedListener);
        this.events.off('failed', failedListener);
      },
    };
  }

  private async awaitPickup(job: Job, active: Promise<void>): Promise<void> {
    const picked = await withTimeout(active.then(() => true), this.options.pickupTimeoutMs, () => undefined).catch(() => false);
    if (picked) return;
    // Take it back so it cannot run unexpectedly when a worker starts later.
    const state = await job.getState();
    if (state !== 'waiting' && state !== 'prioritized' && state !== 'delayed') return; // picked up at the last moment
    const removed = await job.remove().then(() => true, () => false);
    if (!removed) return;
    throw new NoWorkerError(
      `no admin worker picked up the command within ${Math.round(this.options.pickupTimeoutMs / 1000)}s: start the platform (npm start) or the janitor service against ${describeRedisUrl(this.options.redisUrl)}`,
    );
  }

  async close(): Promise<void> {
    await Promise.race([
      Promise.allSettled([this.queueInstance?.close(), this.eventsInstance?.close()]),
      new Promise((r) => setTimeout(r, 2000).unref()),
    ]);
    await closeRedis(this.connection);
    await closeRedis(this.eventsConnection);
  }
}
