/**
 * The waker: a BullMQ worker over `{wake}`. One wake per tenant at a time (the runbook's wake lock
 * `tenant:waking:<id>`, SET NX EX); the agent is used only once ready; the endpoint is published in
 * `router:endpoint:<id>`, the registry moves provisioning → running, and the drains that waited
 * are promoted at once. While the runtime starts the agent the lock is renewed (a cold start may
 * wait minutes for a node; bounded by COLD_START_TIMEOUT_S) and its phases are recorded for
 * `ztm tenant wake` (lib/wake/wake-progress.ts). A failed wake logs `wake failed`, records a typed failure
 * (lib/wake/wake-contract.ts), releases the lock and its hold on wake requests, and only then
 * tells the waiting drains, so that their next request starts a new wake.
 */
import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import type { RedisClient } from '../../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import { wakeLockKey, startingNoticeKey } from '../../lib/keys.js';
import { Activity } from '../../lib/tenants/activity.js';
import { recordWake } from '../../lib/tenants/tenant-stats.js';
import { Endpoints } from '../../lib/delivery/endpoints.js';
import { callScript } from '../../lib/redis-scripts.js';
import { WakeFailedError, parseWakeJob, releaseWakeRequest, startFailureReasonOf, type WakeFailure, type WakeFailureCode } from '../../lib/wake/wake-contract.js';
import { WakeProgress } from '../../lib/wake/wake-progress.js';
import { RuntimeError } from '../../lib/errors.js';
import type { TenantRegistry } from '../../lib/registry/tenant-registry.js';
import type { Tenant } from '../../lib/registry/tenant.js';
import type { StateStore } from '../../lib/state/state-store.js';
import { STATE_URL_TTL_S, StateUrlLedger } from '../../lib/state/state-urls.js';
import { recordWakeDemand } from '../../lib/warm-pool/wake-stats.js';
import type { Runtime, StartProgress, StartResult, TenantInstance } from '../../lib/runtime/runtime.js';
import { WakeLockHolder } from './wake-lock-holder.js';
import { closeWorker } from '../../lib/platform/close-worker.js';

/**
 * How long past COLD_START_TIMEOUT_S the waker waits for a runtime that did not end its start by
 * the deadline it was given, before it fails the wake itself (start_timeout).
 */
const START_GRACE_MS = 15_000;
/** A phase's detail that changes (e.g. a scheduler message) is recorded at most this often. */
const DETAIL_WRITE_GAP_MS = 5_000;


export interface WakerOptions {
  config: Config;
  log: Logger;
  redis: RedisClient;
  bull: RedisClient;
  registry: TenantRegistry;
  runtime: Runtime;
  state: StateStore;
  metrics?: Metrics;
}

export interface WakeResult {
  tenant_id: string;
  pod_name: string;
  address: string;
  path: 'warm' | 'cold' | 'already-running' | 'in-progress';
  ms: number;
}

export class Waker {
  readonly worker: Worker;
  readonly endpoints: Endpoints;
  private readonly activity: Activity;
  private readonly progress: WakeProgress;
  private readonly forwardQueue: Queue;
  private readonly o: WakerOptions;

  constructor(o: WakerOptions) {
    for (const k of ['config', 'log', 'redis', 'bull', 'registry', 'runtime', 'state'] as const) {
      if (!o[k]) throw new TypeError(`Waker: ${k} is required`);
    }
    this.o = o;
    this.endpoints = new Endpoints({ redis: o.redis });
    this.activity = new Activity(o.redis);
    this.progress = new WakeProgress(o.redis);
    this.forwardQueue = new Queue(QUEUES.forward, { connection: o.bull, prefix: QUEUE_PREFIX });
    this.worker = new Worker(QUEUES.wake, (job) => this.process(job), {
      connection: o.bull,
      prefix: QUEUE_PREFIX,
      concurrency: 50,
      // A killed waker's wake comes back to another within ~15 s (the job lock is renewed while a
      // wake runs, however long it takes), which then takes its wake lock over (TAKE_OVER_LOCK).
      lockDuration: 10_000,
      stalledInterval: 5_000,
      maxStalledCount: 5,
    });
    this.worker.on('error', (err) => o.log.error({ err }, 'waker worker error'));
    // A pod that dies by itself is no longer an endpoint: stop routing to it at once.
    o.runtime.onExit((tenantId) => {
      void this.endpoints.drop(tenantId).catch(() => undefined);
    });
  }

  private async process(job: Job): Promise<WakeResult | string> {
    const data = parseWakeJob(job.data);
    if (!data) {
      this.o.log.error({ job: job.id }, 'malformed wake job: dropped');
      await releaseWakeRequest(job);
      return 'malformed';
    }
    return this.wake(data.t, job);
  }

  /**
   * Wakes a tenant; resolves once it is ready or another wake owns it, rejects with a
   * WakeFailedError. `job`: the wake job this runs for (a later run of the same job may take its
   * lock over; its hold on the tenant's wake requests ends before the end is announced).
   */
  async wake(tenantId: string, job?: Job): Promise<WakeResult> {
    const started = Date.now();
    const log = this.o.log.child({ tenant: tenantId });
    const jobId = job?.id;
    const owner = jobId ? `job:${jobId}:` : undefined;
    const lock = `${owner ?? ''}${randomUUID()}`;
    const ttl = this.o.config.wakeLockTtlS;
    // The record is read beside the lock's round trip, not after it: a read changes nothing, and a
    // wake that does not get the lock drops it. (The live-instance check below stays after the
    // lock: made before, it could miss an instance a wake ending meanwhile had just started.)
    const reading = step('internal', this.o.registry.get(tenantId));
    reading.catch(() => undefined);
    let locked = (await this.o.redis.set(wakeLockKey(tenantId), lock, 'EX', ttl, 'NX')) === 'OK';
    if (!locked && owner && (await callScript<number>(this.o.redis, 'ztmTakeOverWakeLock', wakeLockKey(tenantId), owner, lock, ttl)) === 1) {
      log.warn({ job: jobId }, 'wake lock left by an earlier run of this wake job (its waker died): taking over');
      locked = true;
    }
    if (!locked) return { tenant_id: tenantId, pod_name: '', address: '', path: 'in-progress', ms: 0 };
    // A start that makes progress keeps the lock (a node being provisioned takes minutes), up to
    // its bound: COLD_START_TIMEOUT_S, also the deadline the runtime is given.
    const deadline = started + this.o.config.coldStartTimeoutS * 1000;
    const holder = new WakeLockHolder({
      redis: this.o.redis, log, tenantId, token: lock, ttlS: ttl, untilMs: deadline + START_GRACE_MS,
      onRenewed: () => void this.progress.touch(tenantId, ttl).catch(() => undefined),
    });
    // Never waited for (a wake's latency is the first message's): the phases written later come
    // after it all the same, as they go over the same connection, which Redis serves in order.
    void this.progress.begin(tenantId, { started, deadline, ttlS: ttl }).catch((err: unknown) => log.warn({ err }, 'could not record the wake progress'));
    const onProgress = this.progressListener(tenantId, holder, ttl, log);
    try {
      // The record (being read already) and a live instance do not depend on each other: one wait.
      const [tenant, live] = await Promise.all([reading, step('start-failed', this.o.runtime.find(tenantId))]);
      if (!tenant) throw new WakeFailedError({ code: 'unknown-tenant', reason: 'unknown tenant' });
      if (live) return await this.publish(tenant, live, 'already-running', started, log);
      // The state key carries the record's incarnation (presigning is local computation).
      const state = await step('state-unavailable', this.o.state.presign(tenant, { expiresInS: STATE_URL_TTL_S }));
      // Recorded as the start begins, not once the pod is up: a cold start can take minutes, and
      // the reconciler would meanwhile try (and fail) to refresh the URLs of a shim that has not
      // been claimed yet. Not waited for before the start (which does not read it): one Redis round
      // trip less on every wake. Bookkeeping: a lost entry reads as "issued at an unknown time".
      const ledger = new StateUrlLedger(this.o.redis).issued(tenantId).catch((err: unknown) => log.warn({ err }, 'could not record when the state URLs were issued'));
      // The registry write and the start overlap: the start does not need it, and while the wake
      // lock is held the reconciler leaves a pod whose tenant is not marked yet alone. (The
      // provisioning write lands well before a warm claim's answer, in bursts too: see
      // bench/wake-trace.ts, so the endpoint does not wait for it.)
      const [marked, startedInstance] = await Promise.allSettled([
        this.markProvisioning(tenant),
        step('start-failed', bounded(this.o.runtime.start(tenant, state, { onProgress, deadlineMs: deadline }), deadline + START_GRACE_MS, tenantId, this.o.config.coldStartTimeoutS)),
      ]);
      await ledger;
      if (startedInstance.status === 'rejected') throw startedInstance.reason;
      if (marked.status === 'rejected') throw marked.reason;
      const { instance, path } = startedInstance.value;
      return await this.publish(marked.value, instance, path, started, log);
    } catch (err) {
      const failed = err instanceof WakeFailedError ? err : new WakeFailedError({ code: 'internal', reason: reasonOf(err) }, { cause: err });
      const failure: WakeFailure = { ...failed.failure, at: Date.now() };
      if (failure.code === 'unknown-tenant') {
        log.error({ wake_failure: failure.code }, failed.message);
        this.o.metrics?.wakes.inc({ outcome: 'unknown-tenant' });
        await this.endpoints.recordWakeFailure(tenantId, failure);
      } else {
        log.error({
          err: failed.cause ?? failed, wake_failure: failure.code, ...(failure.start_reason ? { start_reason: failure.start_reason } : {}),
          reason: failure.reason, ms: Date.now() - started,
        }, 'wake failed');
        this.o.metrics?.wakes.inc({ outcome: 'failed' });
        await this.endpoints.recordWakeFailure(tenantId, failure);
        // Kept for days for `ztm tenant get`; the drains' copy above lives minutes.
        await this.progress.recordFailure(tenantId, failure).catch((e: unknown) => log.warn({ err: e }, 'could not record the last wake failure'));
        await this.progress.end(tenantId, 'failed', failure.start_reason ?? failure.code).catch(() => undefined);
        await this.o.registry.update(tenantId, { status: 'idle', pod_name: null, pod_ip: null }).catch(() => undefined);
      }
      throw failed;
    } finally {
      holder.stop();
      await callScript(this.o.redis, 'ztmCompareAndDelete', wakeLockKey(tenantId), lock);
      await this.o.redis.del(startingNoticeKey(tenantId));
      // This job no longer stands for the tenant's pending wake: BullMQ would let go of it only
      // when the job is finished, after the announcement below, and a drain asking again in
      // between would be folded into this ended wake (never tried, then a dead letter).
      if (job) await releaseWakeRequest(job).catch((err: unknown) => log.warn({ err }, 'could not release the wake request'));
      // Drains waiting in place re-check: after a failure they count an attempt and ask again;
      // after a success (announced in publish already) one whose endpoint went stale meanwhile
      // asks again too. After the lock and the request are released, so that they can.
      await this.endpoints.announceWakeDone(tenantId);
      await this.endpoints.promoteParked(tenantId, this.forwardQueue);
    }
  }

  /**
   * The runtime's progress: every report renews the lock (throttled); a new phase is logged and
   * recorded for `ztm tenant wake`, a new detail of the same phase at most every few seconds.
   */
  private progressListener(tenantId: string, holder: WakeLockHolder, ttlS: number, log: Logger): (p: StartProgress) => void {
    let last: StartProgress | undefined;
    let written = 0;
    return (p) => {
      holder.heartbeat();
      if (last && last.phase === p.phase && (last.detail === p.detail || Date.now() - written < DETAIL_WRITE_GAP_MS)) return;
      if (!last || last.phase !== p.phase) log.info({ phase: p.phase, ...(p.detail ? { detail: p.detail } : {}) }, 'wake phase');
      last = p;
      written = Date.now();
      // 'ready' is written once by the wake's end (progress.end), moments later: not twice.
      if (p.phase === 'ready') return;
      void this.progress.phase(tenantId, p, ttlS).catch(() => undefined);
    };
  }

  private async markProvisioning(tenant: Tenant): Promise<Tenant> {
    // A stale `running` (its pod died) or an interrupted `provisioning` is woken again as well.
    return this.o.registry.mutate(tenant.tenant_id, (cur) => (cur.status === 'provisioning' ? undefined : { status: 'provisioning' }), { current: tenant });
  }

  private async publish(tenant: Tenant, instance: TenantInstance, path: WakeResult['path'], started: number, log: Logger): Promise<WakeResult> {
    // The endpoint and the announcement in one round trip (the first message waits for both).
    await this.endpoints.publish(tenant.tenant_id, instance.address);
    // The agent is ready and routable: resume the parked drains now, not after the bookkeeping
    // below (a registry write is a DynamoDB round trip the first message need not wait for). The
    // promotion in wake()'s finally still catches drains parked after this one.
    await this.endpoints.promoteParked(tenant.tenant_id, this.forwardQueue);
    await this.endpoints.clearWakeFailure(tenant.tenant_id);
    await this.progress.end(tenant.tenant_id, 'ready').catch(() => undefined);
    await this.activity.touch(tenant.tenant_id, tenant.idle_timeout_s);
    await this.o.registry.mutate(tenant.tenant_id, (cur) => {
      if (cur.status === 'running' && cur.pod_name === instance.podName && cur.pod_ip === instance.ip) return undefined;
      // This wake marked the tenant provisioning; a stop since (ztm tenant sleep, the idle check,
      // which may have begun as soon as the endpoint above was published) wins: its 'stopping' or
      // 'idle' is the truth now, and overwriting it would leave an asleep tenant marked running.
      if (path !== 'already-running' && (cur.status === 'stopping' || cur.status === 'idle')) return undefined;
      return { status: 'running', pod_name: instance.podName, pod_ip: instance.ip };
    }, { current: tenant });
    const ms = Date.now() - started;
    // The tenants view's recent wake times (a started agent only; bookkeeping, never the wake's failure).
    if (path === 'warm' || path === 'cold') void recordWake(this.o.redis, tenant.tenant_id, ms).catch((err: unknown) => log.debug({ err }, 'could not record the wake time'));
    this.o.metrics?.wakeLatency.observe({ path }, ms / 1000);
    this.o.metrics?.wakes.inc({ outcome: path });
    // The pool-keeper sizes the warm pool from these (lib/warm-pool/wake-stats.ts); bookkeeping, never the wake's failure.
    void recordWakeDemand(this.o.redis, path, ms).catch((err: unknown) => log.debug({ err }, 'could not record the wake for the pool-keeper'));
    log.info({ pod: instance.podName, address: instance.address, path, ms }, 'tenant awake: agent ready');
    return { tenant_id: tenant.tenant_id, pod_name: instance.podName, address: instance.address, path, ms };
  }

  async close(): Promise<void> {
    await closeWorker(this.worker);
    await this.forwardQueue.close();
  }
}

/**
 * Tags a wake step's failure with its code and, for a start, the runtime's reason (RuntimeError
 * .reason); a WakeFailedError passes as it is.
 */
function step<T>(code: WakeFailureCode, p: Promise<T>): Promise<T> {
  return p.catch((err: unknown) => {
    if (err instanceof WakeFailedError) throw err;
    const startReason = code === 'start-failed' ? startFailureReasonOf(err) : undefined;
    throw new WakeFailedError({ code, reason: reasonOf(err), ...(startReason ? { start_reason: startReason } : {}) } satisfies WakeFailure, { cause: err });
  });
}

/**
 * The runtime is given the deadline; should its start not end by then (a hung API call), the wake
 * fails anyway shortly after. What that start still brings up is the reconciler's (a pod without a
 * running tenant) or the next wake's (it finds it live).
 */
function bounded(start: Promise<StartResult>, untilMs: number, tenantId: string, boundS: number): Promise<StartResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RuntimeError(`the start of ${tenantId} did not end within COLD_START_TIMEOUT_S (${boundS}s)`, { reason: 'start_timeout' })), Math.max(0, untilMs - Date.now()));
    timer.unref();
  });
  start.catch(() => undefined);
  return Promise.race([start, late]).finally(() => clearTimeout(timer));
}

function reasonOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n', 1)[0] ?? '';
}
