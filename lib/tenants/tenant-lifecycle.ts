/**
 * Manual wake and graceful sleep of a tenant (`ztm tenant wake|sleep`) and the runtime side of a
 * delete. Wake goes through the wake queue like any message-triggered wake, so it shares the lock.
 */
import type { Queue } from 'bullmq';
import type { Logger } from '../logger.js';
import type { RedisClient } from '../redis.js';
import { NotFoundError, TimeoutError } from '../errors.js';
import { Endpoints } from '../delivery/endpoints.js';
import { requestWake, wakeFailedText } from '../wake/wake-contract.js';
import { WakeProgress, wakePhaseLine } from '../wake/wake-progress.js';
import type { TenantRegistry } from '../registry/tenant-registry.js';
import type { Runtime } from '../runtime/runtime.js';
import type { TenantIdentity } from '../webhook-secret.js';
import type { StateStore } from '../state/state-store.js';
import type { TenantLifecycle } from './tenant-admin.js';
import { Activity } from './activity.js';

/** The waker's clock and this one's may differ a little (a failure's `at` is the waker's). */
const CLOCK_SLACK_MS = 2_000;

export interface LifecycleOptions {
  registry: TenantRegistry;
  runtime: Runtime;
  state: StateStore;
  redis: RedisClient;
  wakeQueue: Queue;
  log: Logger;
  wakeTimeoutS: number;
}

export class RuntimeLifecycle implements TenantLifecycle {
  private readonly endpoints: Endpoints;
  private readonly activity: Activity;
  private readonly progress: WakeProgress;

  constructor(private readonly o: LifecycleOptions) {
    this.endpoints = new Endpoints({ redis: o.redis });
    this.activity = new Activity(o.redis);
    this.progress = new WakeProgress(o.redis);
  }

  async wake(tenantId: string, progress: (message: string) => void = () => undefined): Promise<{ tenant_id: string; address: string; ms: number }> {
    await this.o.registry.require(tenantId);
    const started = Date.now();
    await requestWake(this.o.wakeQueue, tenantId);
    progress('wake requested');
    const deadline = started + this.o.wakeTimeoutS * 1000;
    let lastStatus = '';
    let lastPhase = '';
    // Printed once each as they change: the wake's phases (the waker records them, wake-progress.ts).
    const phaseOf = async (): Promise<void> => {
      const view = await this.progress.read(tenantId);
      if (!view?.phase || view.started < started - 1000 || view.phase === 'failed') return;
      const line = wakePhaseLine(view.phase, view.detail);
      if (line !== lastPhase) progress((lastPhase = line));
    };
    for (let polls = 0; Date.now() < deadline; polls++) {
      const endpoint = await this.endpoints.get(tenantId);
      if (endpoint) {
        await phaseOf();
        if (!lastPhase.startsWith('ready')) progress('ready');
        return { tenant_id: tenantId, address: endpoint.address, ms: Date.now() - started };
      }
      // A failure of an earlier wake (the drains' copy lives two minutes) is not this one's.
      const failure = await this.endpoints.lastWakeFailure(tenantId);
      if (failure && (failure.at === undefined || failure.at >= started - CLOCK_SLACK_MS)) throw new TimeoutError(`${tenantId}: ${wakeFailedText(failure)}`);
      await phaseOf();
      // The registry (DynamoDB) is read once a second, the phases (Redis) every 200 ms.
      const tenant = polls % 5 === 0 ? await this.o.registry.get(tenantId) : undefined;
      if (tenant && tenant.status !== lastStatus) {
        lastStatus = tenant.status;
        progress(`status ${tenant.status}${tenant.pod_name ? ` (pod ${tenant.pod_name})` : ''}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new TimeoutError(`${tenantId} was not ready within ${this.o.wakeTimeoutS}s`);
  }

  /**
   * Graceful stop: routing stops first (a new message wakes a new agent, which waits for this
   * stop's checkpoint), then the agent checkpoints and exits, then status idle unless a wake
   * already took the tenant over.
   */
  async sleep(tenantId: string): Promise<{ tenant_id: string; stopped: boolean; status: string }> {
    const tenant = await this.o.registry.get(tenantId);
    if (!tenant) throw new NotFoundError(`tenant ${tenantId} not found`);
    if (tenant.status === 'running' || tenant.status === 'provisioning') {
      await this.o.registry.mutate(tenantId, (cur) => (cur.status === 'running' || cur.status === 'provisioning' ? { status: 'stopping' } : undefined));
    }
    const lastActive = await this.activity.lastActive(tenantId);
    await this.endpoints.drop(tenantId);
    const stopped = await this.o.runtime.stop(tenantId);
    const after = await this.o.registry.mutate(tenantId, (cur) => (cur.status === 'stopping' ? { status: 'idle', pod_name: null, pod_ip: null } : undefined));
    if (after.status === 'idle') await this.activity.clear(tenantId);
    if (lastActive !== undefined) await this.o.registry.touchLastActive(tenantId, new Date(lastActive)).catch(() => undefined);
    this.o.log.info({ tenant: tenantId, stopped, status: after.status }, 'tenant put to sleep: state saved');
    return { tenant_id: tenantId, stopped, status: after.status };
  }

  async tokenChanged(who: TenantIdentity, token: string): Promise<void> {
    await this.o.runtime.updateToken(who, token);
  }

  async remove(tenantId: string, options: { purgeState: boolean }): Promise<void> {
    await this.endpoints.drop(tenantId);
    await this.o.runtime.removeTenant(tenantId);
    await this.activity.clear(tenantId);
    if (options.purgeState) await this.o.state.purge(tenantId);
  }
}
