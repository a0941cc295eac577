/**
 * The warm pool on Kubernetes: plain pods `warm-pool-<control id>` (`app=warm-pool`) at a low
 * priority class, sized by the pool-keeper (count/add/remove), and claimed by a start:
 *
 * A claim relabels a ready member `app=zeroclaw,tenant=<id>` with a JSON merge patch carrying the
 * member's resourceVersion: of two wakers exactly one wins, the other gets 409 and tries the next
 * member. Then the signed `POST /claim` hands it the tenant; a refused claim deletes the member
 * (nothing of the tenant's was saved by it yet) and the start tries another, then goes cold.
 */
import { randomInt } from 'node:crypto';
import { PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../logger.js';
import { RuntimeError } from '../../errors.js';
import type { Tenant } from '../../registry/tenant.js';
import type { PresignedState } from '../../state/state-store.js';
import { createdMs, describeKubeError, isConflict, isNotFound, podDeleting, podExitReason, podLive, podReady, podTerminated } from '../kube-client.js';
import { CLAIMED_AT_ANNOTATION, claimPatch, LABEL_APP, LABEL_TENANT, TENANT_APP, WARM_APP, WARM_SELECTOR, warmPodManifest, type Ownership, type PodSpecOptions } from '../pod-spec.js';
import { ControlSecretError, createPodWithControlSecret } from '../pod-secrets.js';
import type { StartResult } from '../runtime.js';
import { apiError, type CallContext, type KubeApi } from './kube-api.js';
import type { PodDeletion } from './pod-deletion.js';
import type { ShimClient } from './shim-client.js';
import type { TenantSecrets } from './tenant-secrets.js';

const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** Warm members hold no tenant state: a short grace is enough for the shim to exit. */
const WARM_DELETE_GRACE_S = 5;

export interface WarmPoolOptions {
  api: KubeApi;
  spec: PodSpecOptions;
  warmPoolSecret: string;
  secrets: TenantSecrets;
  deletion: PodDeletion;
  shim: ShimClient;
  log: Logger;
  /** The release's owner of every member (pod-owner.ts), read once. */
  ownership: () => Promise<Ownership>;
  /** How many members a start tries (a failed claim deletes the member) before going cold. */
  maxClaimAttempts: number;
}

const nameOf = (pod: V1Pod): string => pod.metadata?.name ?? '?';
const uidOf = (pod: V1Pod): string => pod.metadata?.uid ?? '';

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

export class KubernetesWarmPool {
  constructor(private readonly o: WarmPoolOptions) {}

  async countReady(): Promise<number> {
    return (await this.o.api.listPods(WARM_SELECTOR)).filter((p) => podLive(p)).length;
  }

  async count(): Promise<number> {
    return (await this.o.api.listPods(WARM_SELECTOR)).filter((p) => !podDeleting(p) && !podTerminated(p)).length;
  }

  async add(n: number): Promise<void> {
    if (n === 0) return;
    await this.o.secrets.ensureWarmPool();
    await this.collectEnded();
    const { api, warmPoolSecret } = this.o;
    const spec: PodSpecOptions = { ...this.o.spec, ...(await this.o.ownership()) };
    const results = await Promise.allSettled(
      Array.from({ length: n }, () => createPodWithControlSecret(api, spec.namespace, warmPoolSecret, (controlId) => warmPodManifest(spec, controlId))),
    );
    const created = results.flatMap((r) => (r.status === 'fulfilled' ? [nameOf(r.value)] : []));
    if (created.length > 0) this.o.log.info({ pods: created, count: created.length }, 'warm pool: members added');
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      const reason: unknown = failed.reason instanceof ControlSecretError ? failed.reason.apiError : failed.reason;
      throw apiError(`warm pool: ${n - created.length} of ${n} member(s) not created`, reason);
    }
  }

  async remove(n: number): Promise<void> {
    if (n === 0) return;
    await this.collectEnded();
    // Not-ready members first (they serve no claim yet), then the newest ready ones.
    const rank = (p: V1Pod): number => (podReady(p) ? 1 : 0);
    const candidates = (await this.o.api.listPods(WARM_SELECTOR))
      .filter((p) => !podDeleting(p) && !podTerminated(p))
      .sort((a, b) => rank(a) - rank(b) || createdMs(b) - createdMs(a));
    const removed: string[] = [];
    for (const pod of candidates) {
      if (removed.length >= n) break;
      if (await this.deleteMember(pod)) removed.push(nameOf(pod));
    }
    if (removed.length > 0) this.o.log.info({ pods: removed, count: removed.length }, 'warm pool: members removed');
  }

  /** Deletes a member only while it is still unclaimed: the delete carries its resourceVersion. */
  private async deleteMember(pod: V1Pod): Promise<boolean> {
    const { api, spec, deletion } = this.o;
    let current: V1Pod | undefined = pod;
    for (let i = 0; i < 3 && current; i++) {
      const member: V1Pod = current;
      try {
        deletion.markOwn(member);
        await api.call({ verb: 'delete', object: `pod ${nameOf(member)}` }, (opts) => api.core.deleteNamespacedPod({
          name: nameOf(member),
          namespace: spec.namespace,
          gracePeriodSeconds: WARM_DELETE_GRACE_S,
          body: { preconditions: { uid: uidOf(member), resourceVersion: member.metadata?.resourceVersion } },
        }, opts));
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        if (!isConflict(err)) throw apiError(`delete warm pod ${nameOf(member)}`, err);
        current = await api.readPod(nameOf(member));
        if (!current || current.metadata?.labels?.[LABEL_APP] !== WARM_APP || podDeleting(current)) return false;
      }
    }
    return false;
  }

  /** restartPolicy Never: a member whose shim exited stays Failed until someone deletes it. */
  private async collectEnded(): Promise<void> {
    const ended = (await this.o.api.listPods(WARM_SELECTOR)).filter((p) => podTerminated(p) && !podDeleting(p));
    for (const pod of ended) {
      this.o.log.warn({ pod: nameOf(pod), reason: podExitReason(pod) }, 'warm pool: removing an ended member');
      await this.o.deletion.delete(pod, 0).catch((err: unknown) => this.o.log.warn({ pod: nameOf(pod), err: describeKubeError(err) }, 'warm pool: could not remove an ended member'));
    }
  }

  /** Claims a ready member for the tenant, or undefined (none, or every attempt failed); `beforeClaim` runs once a member is bound. */
  async claim(tenant: Tenant, state: PresignedState, log: Logger, claimTimeoutMs: number, ctx: CallContext = {}, beforeClaim?: () => void): Promise<StartResult | undefined> {
    const id = tenant.tenant_id;
    for (let attempt = 0; attempt < this.o.maxClaimAttempts; attempt++) {
      const candidates = shuffle((await this.o.api.listPods(WARM_SELECTOR, ctx)).filter((p) => claimable(p)));
      let bound: V1Pod | undefined;
      for (const candidate of candidates) {
        bound = await this.bind(candidate, id, log, ctx);
        if (bound) break;
      }
      if (!bound) return undefined;
      beforeClaim?.();
      const started = Date.now();
      const outcome = await this.o.shim.claim(bound, tenant, state, Math.min(claimTimeoutMs, (ctx.deadlineMs ?? Number.POSITIVE_INFINITY) - Date.now()));
      if (outcome.ok) {
        const instance = this.o.shim.instanceOf(bound, id);
        log.info({ pod: instance.podName, address: instance.address, node: bound.spec?.nodeName, claim_ms: Date.now() - started }, 'warm pool hit: reusing node');
        return { instance, path: 'warm' };
      }
      log.warn({ pod: nameOf(bound), reason: outcome.reason }, 'warm pool claim failed: deleting the member');
      try {
        // Nothing of the tenant's was saved by it yet: no grace needed.
        await this.o.deletion.delete(bound, 0, ctx);
        await this.o.deletion.waitGone(bound, 0, ctx);
      } catch (err) {
        log.warn({ pod: nameOf(bound), err: describeKubeError(err) }, 'could not delete the failed warm pool member');
        throw new RuntimeError(`warm pod ${nameOf(bound)} failed its claim (${outcome.reason}) and could not be removed`, { cause: err, reason: err instanceof RuntimeError ? err.reason : undefined });
      }
    }
    return undefined;
  }

  /**
   * Relabels a member to the tenant, conditional on its resourceVersion. A 409 means it changed
   * since it was listed: by a status update (re-read, still claimable → try again), by another
   * waker's claim or a removal (not ours), or by this very patch, applied although its answer was
   * lost and retried (relabelled to us with our claim time → ours).
   */
  private async bind(pod: V1Pod, tenantId: string, log: Logger, ctx: CallContext): Promise<V1Pod | undefined> {
    const { api, spec } = this.o;
    let current = pod;
    const name = nameOf(pod);
    for (let i = 0; i < 4; i++) {
      const claimedAt = new Date();
      const body = claimPatch(tenantId, current.metadata?.resourceVersion ?? '', claimedAt);
      try {
        const patched = await api.call({ verb: 'patch', object: `pod ${name}` }, (opts) => api.core.patchNamespacedPod({ name, namespace: spec.namespace, body }, opts), ctx, MERGE_PATCH);
        const labels = patched.metadata?.labels ?? {};
        if (labels[LABEL_TENANT] !== tenantId || labels[LABEL_APP] !== TENANT_APP) {
          throw new RuntimeError(`claim of warm pod ${name}: the API server did not apply the labels`, { reason: 'api_refused' });
        }
        return patched;
      } catch (err) {
        if (err instanceof RuntimeError) throw err;
        if (isNotFound(err)) return undefined;
        if (!isConflict(err)) throw apiError(`claim of warm pod ${name}`, err);
        log.debug({ pod: name }, 'warm pod changed while claiming it: re-reading');
        const fresh = await api.readPod(name, ctx);
        if (fresh && fresh.metadata?.labels?.[LABEL_TENANT] === tenantId && fresh.metadata.annotations?.[CLAIMED_AT_ANNOTATION] === claimedAt.toISOString()) return fresh;
        if (!fresh || !claimable(fresh)) return undefined;
        current = fresh;
      }
    }
    return undefined;
  }
}

function claimable(pod: V1Pod): boolean {
  return pod.metadata?.labels?.[LABEL_APP] === WARM_APP && podLive(pod) && typeof pod.metadata?.resourceVersion === 'string';
}
