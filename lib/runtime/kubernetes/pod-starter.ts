/**
 * A tenant's start on Kubernetes (Runtime.start):
 *
 * 1. What is there already: a pod still being deleted is waited for (its final checkpoint must land
 *    before the new agent restores; one stuck on a lost node is force-deleted, pod-deletion.ts), an
 *    ended one cleared, a live one reused, a cold pod already starting waited for.
 * 2. A ready warm member is claimed (warm-pool.ts), else
 * 3. a cold pod `zeroclaw-<id>` is created and followed in the shared informer until its shim
 *    listens (Ready), then claimed the same way (the claim restores the state and starts the agent).
 *
 * Patience and bounds: a pod Pending because no node fits yet (Karpenter is bringing one up) is
 * waited for up to the cold bound (COLD_START_TIMEOUT_S) and never deleted for being slow before
 * it; once on a node it has `readyTimeoutS` to become ready. The whole start ends by its deadline
 * (the caller's `deadlineMs`, and the cold bound), every API call included. A pod that can never
 * start (an image that cannot be pulled, a crash loop, unschedulable at the bound) fails the start
 * with a RuntimeError `reason` (pod-status.ts) and is deleted: a failed start leaves nothing behind.
 * Phases are reported through `onProgress` as the pod's status changes, with a heartbeat.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../logger.js';
import { RuntimeError } from '../../errors.js';
import type { Tenant } from '../../registry/tenant.js';
import type { PresignedState } from '../../state/state-store.js';
import { isConflict, podDeleting, podExitReason, podLive, podReady, podTerminated } from '../kube-client.js';
import { coldPodManifest, tenantSelector, type Ownership, type PodSpecOptions } from '../pod-spec.js';
import { ControlSecretError, createPodWithControlSecret } from '../pod-secrets.js';
import { podNameOf, type StartOptions, type StartProgress, type StartResult } from '../runtime.js';
import { apiError, type CallContext, type KubeApi } from './kube-api.js';
import type { PodDeletion } from './pod-deletion.js';
import type { PodInformer } from './pod-informer.js';
import { describePod, PullFailures, startFailureOf, startPhaseOf, unschedulable } from './pod-status.js';
import type { ShimClient } from './shim-client.js';
import type { TenantSecrets } from './tenant-secrets.js';
import type { KubernetesWarmPool } from './warm-pool.js';

/** The same phase is reported again at most this often (a heartbeat for the waker's lock and notices). */
const HEARTBEAT_MS = 5000;

export interface PodStarterOptions {
  api: KubeApi;
  informer: PodInformer;
  deletion: PodDeletion;
  secrets: TenantSecrets;
  warm: KubernetesWarmPool;
  shim: ShimClient;
  spec: PodSpecOptions;
  /** The release's owner of every pod (pod-owner.ts), read once. */
  ownership: () => Promise<Ownership>;
  warmPoolSecret: string;
  /** From being on a node to the agent ready (pull, start, restore). */
  readyTimeoutS: number;
  /** The whole start, a wait for a node included. */
  coldStartTimeoutS: number;
  /** Failed image pulls tolerated before the start fails (the kubelet retries meanwhile). */
  maxPullFailures: number;
}

/** Reports phases to the caller, once per change and as a heartbeat; a throwing listener is logged, not fatal. */
class Progress {
  private last: string | undefined;
  private lastAt = 0;

  constructor(private readonly listener: StartOptions['onProgress'], private readonly log: Logger) {}

  report(p: StartProgress): void {
    const now = Date.now();
    const changed = p.phase !== this.last;
    if (!changed && now - this.lastAt < HEARTBEAT_MS) return;
    if (changed) this.log.info({ phase: p.phase, detail: p.detail }, 'start phase');
    this.last = p.phase;
    this.lastAt = now;
    try {
      this.listener?.(p);
    } catch (err) {
      this.log.warn({ err }, 'start progress listener failed');
    }
  }
}

const nameOf = (pod: V1Pod): string => pod.metadata?.name ?? '?';

export class PodStarter {
  constructor(private readonly o: PodStarterOptions) {}

  async start(tenant: Tenant, state: PresignedState, options: StartOptions, log: Logger): Promise<StartResult> {
    const id = tenant.tenant_id;
    const deadline = Math.min(options.deadlineMs ?? Number.POSITIVE_INFINITY, Date.now() + this.o.coldStartTimeoutS * 1000);
    const ctx: CallContext = { deadlineMs: deadline };
    const progress = new Progress(options.onProgress, log);
    const { api, deletion, spec } = this.o;

    // What is there already: a pod still being deleted (wait: its final checkpoint must land
    // before the new agent restores), a dead one (clear it), a live one (reuse it).
    let coldPending: V1Pod | undefined;
    for (const pod of await api.listPods(tenantSelector(id), ctx)) {
      if (podDeleting(pod)) {
        log.info({ pod: nameOf(pod) }, 'waiting for the previous pod to finish stopping');
        await deletion.waitGone(pod, undefined, ctx);
      } else if (podTerminated(pod)) {
        log.info({ pod: nameOf(pod), reason: podExitReason(pod) }, 'removing the ended pod before starting again');
        await deletion.delete(pod, 0, ctx);
        await deletion.waitGone(pod, 0, ctx);
      } else if (await this.o.shim.isLive(pod)) {
        progress.report({ phase: 'ready' });
        return { instance: this.o.shim.instanceOf(pod, id), path: 'warm' };
      } else if (nameOf(pod) === podNameOf(id) && !(pod.spec?.nodeName && !podReady(pod) && (await deletion.nodeLost(pod)))) {
        coldPending = pod; // a cold start already under way (e.g. an earlier wake timed out): wait for it
      } else {
        // A claimed warm pod whose agent is not (or no longer) ready, or a pod on a lost node: replace it.
        log.warn({ pod: nameOf(pod), node: pod.spec?.nodeName }, 'tenant pod not ready: deleting it before starting again');
        await deletion.delete(pod, spec.terminationGracePeriodSeconds, ctx);
        await deletion.waitGone(pod, spec.terminationGracePeriodSeconds, ctx);
      }
    }

    if (!coldPending) {
      const warm = await this.o.warm.claim(tenant, state, log, this.o.readyTimeoutS * 1000, ctx, () => progress.report({ phase: 'restoring-state' }));
      if (warm) {
        progress.report({ phase: 'ready' });
        return warm;
      }
      log.info({ pod: podNameOf(id) }, 'warm pool miss: cold start');
    } else {
      log.info({ pod: nameOf(coldPending) }, 'tenant pod already starting: waiting for it');
    }
    const pod = await this.startCold(tenant, state, deadline, progress, log);
    progress.report({ phase: 'ready' });
    return { instance: this.o.shim.instanceOf(pod, id), path: 'cold' };
  }

  /** Creates (or adopts) `zeroclaw-<id>`, waits until its shim listens, claims it; resolves once its agent is ready. */
  private async startCold(tenant: Tenant, state: PresignedState, deadline: number, progress: Progress, log: Logger): Promise<V1Pod> {
    const id = tenant.tenant_id;
    const name = podNameOf(id);
    const ctx: CallContext = { deadlineMs: deadline };
    const { api, deletion, secrets } = this.o;
    progress.report({ phase: 'scheduling' });
    const spec: PodSpecOptions = { ...this.o.spec, ...(await this.o.ownership()) };
    await secrets.ensureToken(tenant, tenant.bot_token, ctx);
    await secrets.ensureWarmPool(ctx); // the model provider's key comes from it
    let pod: V1Pod | undefined;
    for (let attempt = 0; !pod; attempt++) {
      try {
        pod = await createPodWithControlSecret(api, spec.namespace, this.o.warmPoolSecret, (controlId) => coldPodManifest(spec, id, controlId), ctx);
        log.info({ pod: name }, 'tenant pod created');
      } catch (err) {
        if (err instanceof ControlSecretError) throw apiError(`create the control secret of pod ${name}`, err.apiError);
        if (!isConflict(err) || attempt >= 3) throw apiError(`create pod ${name}`, err);
        const existing = await api.readPod(name, ctx);
        if (!existing) continue; // deleted meanwhile: create again
        if (podDeleting(existing)) {
          await deletion.waitGone(existing, undefined, ctx);
        } else if (podTerminated(existing)) {
          await deletion.delete(existing, 0, ctx);
          await deletion.waitGone(existing, 0, ctx);
        } else {
          pod = existing; // another start created it (or our create's answer was lost): wait for the same pod
        }
      }
    }
    const { ready, claimBy } = await this.waitListening(pod, deadline, progress, log);
    return this.claimCold(ready, tenant, state, claimBy, progress, log);
  }

  /**
   * Follows the pod in the informer until its shim listens (Ready). Fails on what can never start
   * (pod-status.ts startFailureOf), on the ready bound once on a node, and on the start's deadline
   * (unschedulable when it never got a node); the pod is then deleted.
   */
  private async waitListening(pod: V1Pod, deadline: number, progress: Progress, log: Logger): Promise<{ ready: V1Pod; claimBy: number }> {
    const name = nameOf(pod);
    const started = Date.now();
    const readyMs = this.o.readyTimeoutS * 1000;
    const pulls = new PullFailures();
    let boundAt: number | undefined;
    const notReady = (last: V1Pod | undefined): RuntimeError => new RuntimeError(
      `pod ${name} was not ready within ${this.o.readyTimeoutS}s (${last ? describePod(last) : 'not found'})`, { reason: 'start_timeout' });
    try {
      const ready = await this.o.informer.waitFor(pod, {
        timeoutMs: deadline - Date.now(),
        tickMs: 1000,
        timeoutError: (last) => {
          if (last?.spec?.nodeName) return notReady(last);
          const u = last ? unschedulable(last) : undefined;
          const waited = Math.round((Date.now() - started) / 1000);
          return new RuntimeError(`pod ${name} got no node within ${waited}s (${last ? describePod(last) : 'not found'})`, { reason: u ? 'unschedulable' : 'start_timeout' });
        },
        decide: (view) => {
          if (view.state === 'unknown') return undefined;
          if (view.state === 'gone') throw new RuntimeError(`pod ${name} was deleted before it was ready`, { reason: 'pod_lost' });
          const p = view.pod;
          pulls.observe(p);
          const failure = startFailureOf(p, pulls.count, this.o.maxPullFailures);
          if (failure) throw new RuntimeError(failure.message, { reason: failure.reason });
          if (podLive(p)) return p;
          if (p.spec?.nodeName && boundAt === undefined) boundAt = Date.now();
          if (boundAt !== undefined && Date.now() - boundAt > readyMs) throw notReady(p);
          progress.report(startPhaseOf(p));
          return undefined;
        },
      });
      log.info({ pod: name, ip: ready.status?.podIP, node: ready.spec?.nodeName, ms: Date.now() - started }, 'tenant pod ready');
      return { ready, claimBy: Math.min(deadline, (boundAt ?? Date.now()) + readyMs) };
    } catch (err) {
      // Like the local runtime: a start that failed leaves nothing behind.
      await this.o.deletion.delete(pod, 0).catch((e: unknown) => log.warn({ pod: name, err: e }, 'could not delete the pod that did not start'));
      throw err;
    }
  }

  /**
   * The cold pod's claim: what a warm member gets, at once. A pod another start already claimed
   * (409) is waited for; a refused claim or one past the bound removes the pod.
   */
  private async claimCold(pod: V1Pod, tenant: Tenant, state: PresignedState, claimBy: number, progress: Progress, log: Logger): Promise<V1Pod> {
    const name = nameOf(pod);
    progress.report({ phase: 'restoring-state' });
    const outcome = await this.o.shim.claim(pod, tenant, state, claimBy - Date.now());
    if (outcome.ok || (outcome.status === 409 && (await this.waitAgentReady(pod, claimBy)))) {
      log.info({ pod: name }, 'tenant pod claimed: agent ready');
      return pod;
    }
    await this.o.deletion.delete(pod, 0).catch((e: unknown) => log.warn({ pod: name, err: e }, 'could not delete the pod whose claim failed'));
    if (Date.now() >= claimBy) throw new RuntimeError(`pod ${name} was not ready within ${this.o.readyTimeoutS}s (claim: ${outcome.reason})`, { reason: 'start_timeout' });
    throw new RuntimeError(`pod ${name} refused its claim (${outcome.reason})`, { reason: outcome.status !== undefined && outcome.status >= 500 ? 'crash_loop' : undefined });
  }

  /** Asks the shim's /readyz until it answers 200 (true) or the bound passes (false). */
  private async waitAgentReady(pod: V1Pod, until: number): Promise<boolean> {
    while (Date.now() < until) {
      if (this.o.api.closed) return false;
      if (await this.o.shim.isLive(pod)) return true;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return false;
  }
}
