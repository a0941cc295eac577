/**
 * Idle shutdown and the reconciler, run as BullMQ job schedulers on the `{lifecycle}` queue: every
 * janitor replica upserts the same two schedulers and runs a worker, and each tick is one job that
 * exactly one replica takes. That is the cluster-wide "once per interval" without a leader: no Lease
 * to renew, no split brain when a replica stalls (its tick's job is simply taken by another after
 * the lock expires), and the same code in the embedded default and on Kubernetes.
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { Config } from '../../lib/config.js';
import type { Logger } from '../../lib/logger.js';
import type { RedisClient } from '../../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../../lib/queues.js';
import { wakeLockKey } from '../../lib/keys.js';
import { Activity } from '../../lib/tenants/activity.js';
import { IncarnationIndex } from '../../lib/tenants/incarnation-index.js';
import { Endpoints } from '../../lib/delivery/endpoints.js';
import { pendingWakeJobId } from '../../lib/wake/wake-contract.js';
import type { RuntimeLifecycle } from '../../lib/tenants/tenant-lifecycle.js';
import type { TenantRegistry } from '../../lib/registry/tenant-registry.js';
import type { Runtime } from '../../lib/runtime/runtime.js';
import type { StateStore } from '../../lib/state/state-store.js';
import { STATE_URL_REFRESH_AFTER_MS, STATE_URL_TTL_S, StateUrlLedger } from '../../lib/state/state-urls.js';
import { closeWorker } from '../../lib/platform/close-worker.js';

const AWAKE_STATUSES = new Set(['running', 'provisioning', 'stopping']);
/** Every Nth reconcile also walks the registry page by page (catches state Redis lost). */
const FULL_PASS_EVERY = 10;
const STOP_PARALLELISM = 8;

export interface LifecycleWorkerOptions {
  config: Config;
  log: Logger;
  redis: RedisClient;
  bull: RedisClient;
  registry: TenantRegistry;
  runtime: Runtime;
  lifecycle: RuntimeLifecycle;
  state: StateStore;
}

export interface IdleCheckResult { checked: number; stopped: string[]; ms: number }
export interface ReconcileResult { reset: string[]; deleted: string[]; locksCleared: string[]; stateUrlsRefreshed: string[]; fullPass: boolean }

export class LifecycleWorker {
  readonly queue: Queue;
  readonly worker: Worker;
  private readonly activity: Activity;
  private readonly endpoints: Endpoints;
  private reconciles = 0;
  private readonly incarnations: IncarnationIndex;

  constructor(private readonly o: LifecycleWorkerOptions) {
    this.activity = new Activity(o.redis);
    this.incarnations = new IncarnationIndex(o.redis);
    this.endpoints = new Endpoints({ redis: o.redis });
    this.queue = new Queue(QUEUES.lifecycle, { connection: o.bull, prefix: QUEUE_PREFIX });
    this.worker = new Worker(QUEUES.lifecycle, (job) => this.process(job), {
      connection: o.bull, prefix: QUEUE_PREFIX, concurrency: 1,
      // A tick that fails is not retried: the next tick comes soon enough.
      maxStalledCount: 1,
    });
    this.worker.on('error', (err) => o.log.error({ err }, 'lifecycle worker error'));
  }

  async start(): Promise<void> {
    const common = { opts: { removeOnComplete: true, removeOnFail: 50 } };
    await this.queue.upsertJobScheduler('idle-check', { every: this.o.config.idleCheckIntervalS * 1000 }, { name: 'idle-check', ...common });
    await this.queue.upsertJobScheduler('reconcile', { every: this.o.config.reconcileIntervalS * 1000 }, { name: 'reconcile', ...common });
  }

  private async process(job: Job): Promise<unknown> {
    if (job.name === 'idle-check') return this.idleCheck();
    if (job.name === 'reconcile') return this.reconcile();
    return 'unknown';
  }

  /** Stops every tenant whose idle deadline passed: reads only the expired part of the index. */
  async idleCheck(now = Date.now()): Promise<IdleCheckResult> {
    const started = Date.now();
    const stopped: string[] = [];
    let checked = 0;
    for (let round = 0; round < 100; round++) {
      const ids = await this.activity.takeExpired(now, 500);
      checked += ids.length;
      for (let i = 0; i < ids.length; i += STOP_PARALLELISM) {
        await Promise.all(ids.slice(i, i + STOP_PARALLELISM).map(async (id) => {
          this.o.log.info({ tenant: id }, 'idle check: terminating idle tenant');
          try {
            await this.o.lifecycle.sleep(id);
            stopped.push(id);
          } catch (err) {
            this.o.log.error({ tenant: id, err }, 'idle stop failed');
          }
        }));
      }
      if (ids.length < 500) break;
    }
    return { checked, stopped, ms: Date.now() - started };
  }

  /**
   * The repairs: awake tenants without a pod, pods without an awake tenant, stale wake locks; and on
   * a full pass (every FULL_PASS_EVERY-th, or when asked) each tenant's incarnation index, which the
   * ingress verifies webhooks against (Redis may have lost it: every webhook would then be a 401).
   */
  async reconcile(options: { fullPass?: boolean } = {}): Promise<ReconcileResult> {
    const fullPass = this.reconciles++ % FULL_PASS_EVERY === 0 || options.fullPass === true;
    const reset: string[] = [];
    const deleted: string[] = [];
    const candidates = new Set(await this.activity.awake());
    if (fullPass) {
      for await (const t of this.o.registry.iterate({ pageSize: 200 })) {
        if (t.status === 'running' || t.status === 'provisioning') candidates.add(t.tenant_id);
        if (t.status !== 'terminated') await this.incarnations.publish(t);
      }
    }
    for (const id of candidates) {
      if (await this.o.redis.exists(wakeLockKey(id))) continue; // a wake is on it
      if (await this.o.runtime.find(id)) continue;
      const tenant = await this.o.registry.get(id);
      if (tenant && (tenant.status === 'running' || tenant.status === 'provisioning')) {
        this.o.log.warn({ tenant: id, pod: tenant.pod_name }, 'reconciler: pod missing, resetting state');
        await this.o.registry.mutate(id, (cur) => (cur.status === 'running' || cur.status === 'provisioning' ? { status: 'idle', pod_name: null, pod_ip: null } : undefined));
        reset.push(id);
      }
      if (!tenant || tenant.status !== 'stopping') {
        await this.endpoints.drop(id);
        await this.activity.clear(id);
      }
    }
    for (const instance of await this.o.runtime.list()) {
      const tenant = await this.o.registry.get(instance.tenantId);
      if (tenant && AWAKE_STATUSES.has(tenant.status)) continue;
      if (await this.o.redis.exists(wakeLockKey(instance.tenantId))) continue;
      this.o.log.warn({ tenant: instance.tenantId, pod: instance.podName }, 'reconciler: pod without a running tenant, deleting it');
      await this.o.runtime.stop(instance.tenantId);
      deleted.push(instance.tenantId);
    }
    const locksCleared = await this.clearStaleWakeLocks();
    const stateUrlsRefreshed = await this.refreshStateUrls();
    return { reset, deleted, locksCleared, stateUrlsRefreshed, fullPass };
  }

  /** Running agents whose presigned state URLs are older than `olderThanMs` get fresh ones. */
  async refreshStateUrls(olderThanMs = STATE_URL_REFRESH_AFTER_MS): Promise<string[]> {
    const ledger = new StateUrlLedger(this.o.redis);
    const refreshed: string[] = [];
    for (const instance of await this.o.runtime.list()) {
      const issued = await ledger.issuedAt(instance.tenantId);
      if (issued !== undefined && Date.now() - issued < olderThanMs) continue;
      // The state key carries the record's incarnation.
      const tenant = await this.o.registry.get(instance.tenantId);
      if (!tenant) continue;
      const urls = await this.o.state.presign(tenant, { expiresInS: STATE_URL_TTL_S });
      if (await this.o.runtime.refreshState(instance.tenantId, urls)) {
        await ledger.issued(instance.tenantId);
        refreshed.push(instance.tenantId);
      } else {
        this.o.log.warn({ tenant: instance.tenantId, pod: instance.podName }, 'state URL refresh failed: will retry next reconcile');
      }
    }
    return refreshed;
  }

  private async clearStaleWakeLocks(): Promise<string[]> {
    const cleared: string[] = [];
    const wakeQueue = new Queue(QUEUES.wake, { connection: this.o.bull, prefix: QUEUE_PREFIX });
    try {
      let cursor = '0';
      do {
        const [next, keys] = await this.o.redis.scan(cursor, 'MATCH', 'tenant:waking:*', 'COUNT', 500);
        cursor = next;
        for (const key of keys) {
          const id = key.slice('tenant:waking:'.length);
          const jobId = await pendingWakeJobId(wakeQueue, id);
          const job = jobId ? await wakeQueue.getJob(jobId) : undefined;
          const state = job ? await job.getState() : 'missing';
          if (state === 'active' || state === 'waiting' || state === 'delayed' || state === 'prioritized') continue;
          // No wake is running for it: a crashed waker left it (it would block wakes until its TTL).
          const age = await this.o.redis.ttl(key);
          if (age > this.o.config.wakeLockTtlS - 30) continue; // just taken: give its job time to show up
          await this.o.redis.del(key);
          this.o.log.warn({ tenant: id }, 'reconciler: stale wake lock cleared');
          cleared.push(id);
        }
      } while (cursor !== '0');
    } finally {
      await wakeQueue.close();
    }
    return cleared;
  }

  async close(): Promise<void> {
    await closeWorker(this.worker);
    await this.queue.close();
  }
}
