/**
 * Deleting pods and waiting for them to go, including the lost-node path.
 *
 * - A delete names exactly one pod (uid precondition: never a newer pod of the same name) and is
 *   remembered, so the exit handling does not report it as a crash.
 * - `waitGone` follows the pod in the shared informer, bounded by the longest grace period that can
 *   apply plus slack.
 * - Lost nodes: a pod whose deletion is past its deadline (deletionTimestamp, which is the request
 *   time plus its grace) by `lostNodeAfterS`, on a node that is gone (the Node's Ready condition not
 *   True, the `node.kubernetes.io/unreachable` taint, the Node deleted; or, without `get nodes`, the
 *   pod's own NodeLost/DeletionByTaintManager marks), is force-deleted (grace 0): no kubelet will
 *   ever confirm it, and until it goes every wake of its tenant would wait for it. What restores
 *   then is the tenant's last checkpoint. A pod on a healthy node is never forced.
 */
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../logger.js';
import { RuntimeError } from '../../errors.js';
import { describeKubeError, isConflict, isNotFound, podDeleting } from '../kube-client.js';
import { apiError, type CallContext, type KubeApi } from './kube-api.js';
import type { PodInformer } from './pod-informer.js';
import { describePod, podShowsNodeLost } from './pod-status.js';

/** Deletions this runtime made are not crashes; remembered this long per pod uid. */
const OWN_DELETE_TTL_MS = 30 * 60_000;

export interface PodDeletionOptions {
  api: KubeApi;
  informer: PodInformer;
  namespace: string;
  log: Logger;
  /** The pods' own grace (terminationGracePeriodSeconds). */
  defaultGraceS: number;
  /** Added to the grace as the bound of waiting for a pod to disappear. */
  deleteSlackS: number;
  /** How long past its deletion deadline a pod may stay before its node is checked (and the pod forced). */
  lostNodeAfterS: number;
}

const nameOf = (pod: V1Pod): string => pod.metadata?.name ?? '?';
const uidOf = (pod: V1Pod): string => pod.metadata?.uid ?? '';

function timeMs(t: Date | string | undefined | null): number | undefined {
  const ms = t instanceof Date ? t.getTime() : typeof t === 'string' ? Date.parse(t) : Number.NaN;
  return Number.isFinite(ms) ? ms : undefined;
}

export class PodDeletion {
  private readonly own = new Map<string, number>();
  /** `get nodes` was refused once: rely on the pods' own marks from then on. */
  private nodesForbidden = false;
  /** Pods force-deleted because their node was lost (for tests and the report). */
  readonly forced: Array<{ pod: string; why: string }> = [];

  constructor(private readonly o: PodDeletionOptions) {}

  /** Deletes exactly this pod; gone or replaced meanwhile is fine. */
  async delete(pod: V1Pod, graceS: number, ctx?: CallContext): Promise<void> {
    this.markOwn(pod);
    try {
      await this.o.api.call({ verb: 'delete', object: `pod ${nameOf(pod)}` }, (opts) => this.o.api.core.deleteNamespacedPod({
        name: nameOf(pod),
        namespace: this.o.namespace,
        gracePeriodSeconds: graceS,
        body: { gracePeriodSeconds: graceS, preconditions: { uid: uidOf(pod) } },
      }, opts), ctx);
    } catch (err) {
      if (isNotFound(err) || isConflict(err)) return; // gone, or already replaced by another pod
      throw apiError(`delete pod ${nameOf(pod)}`, err);
    }
  }

  markOwn(pod: V1Pod): void {
    const now = Date.now();
    for (const [uid, at] of this.own) if (now - at > OWN_DELETE_TTL_MS) this.own.delete(uid);
    const uid = uidOf(pod);
    if (uid) this.own.set(uid, now);
  }

  isOwn(uid: string): boolean {
    return this.own.has(uid);
  }

  forget(uid: string): void {
    this.own.delete(uid);
  }

  /**
   * Resolves once this pod (by uid) no longer exists. Force-deletes it when it is stuck on a lost
   * node; fails (reason pod_lost) past grace + slack.
   */
  async waitGone(pod: V1Pod, graceS?: number, ctx: CallContext = {}): Promise<void> {
    const grace = Math.max(graceS ?? pod.spec?.terminationGracePeriodSeconds ?? this.o.defaultGraceS, pod.metadata?.deletionGracePeriodSeconds ?? 0);
    const boundMs = Math.max(grace + this.o.deleteSlackS, this.o.lostNodeAfterS + this.o.deleteSlackS) * 1000;
    const until = Math.min(Date.now() + boundMs, ctx.deadlineMs ?? Number.POSITIVE_INFINITY);
    let checking = false;
    await this.o.informer.waitFor(pod, {
      timeoutMs: until - Date.now(),
      tickMs: 1000,
      timeoutError: (last) => new RuntimeError(`pod ${nameOf(pod)} still exists ${Math.round(boundMs / 1000)}s after its deletion (${last ? describePod(last) : 'unknown'})`, { reason: 'pod_lost' }),
      decide: (view) => {
        if (view.state === 'gone') return true;
        if (view.state !== 'present' || checking || !podDeleting(view.pod)) return undefined;
        const due = timeMs(view.pod.metadata?.deletionTimestamp as Date | string | undefined);
        if (due === undefined || Date.now() < due + this.o.lostNodeAfterS * 1000) return undefined;
        checking = true;
        void this.forceIfNodeLost(view.pod).finally(() => {
          checking = false;
        });
        return undefined;
      },
    });
  }

  /** Force-deletes the pod when its node is lost; true when it did. */
  async forceIfNodeLost(pod: V1Pod): Promise<boolean> {
    const why = await this.nodeLost(pod);
    if (!why) return false;
    this.o.log.warn({ pod: nameOf(pod), node: pod.spec?.nodeName, why }, 'force-deleting a pod stuck on a lost node: its tenant restores from its last checkpoint');
    this.forced.push({ pod: nameOf(pod), why });
    await this.delete(pod, 0).catch((err: unknown) => this.o.log.warn({ pod: nameOf(pod), err: describeKubeError(err) }, 'could not force-delete the pod'));
    return true;
  }

  /** Why the pod's node is gone, or undefined when it is not (or cannot be told). */
  async nodeLost(pod: V1Pod): Promise<string | undefined> {
    const mark = podShowsNodeLost(pod);
    if (mark) return mark;
    const nodeName = pod.spec?.nodeName;
    if (!nodeName || this.nodesForbidden) return undefined;
    let node: V1Node;
    try {
      node = await this.o.api.call({ verb: 'get', object: `node ${nodeName}` }, (opts) => this.o.api.core.readNode({ name: nodeName }, opts));
    } catch (err) {
      if (isNotFound(err)) return `node ${nodeName} no longer exists`;
      if (err instanceof RuntimeError && err.reason === 'api_refused') {
        this.nodesForbidden = true;
        this.o.log.warn({ err: err.message }, 'cannot get nodes: lost nodes are recognised from the pods\' own status only');
      }
      return undefined;
    }
    const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready?.status !== 'True') return `node ${nodeName} Ready=${ready?.status ?? 'unknown'}${ready?.reason ? ` (${ready.reason})` : ''}`;
    if (node.spec?.taints?.some((t) => t.key === 'node.kubernetes.io/unreachable')) return `node ${nodeName} tainted node.kubernetes.io/unreachable`;
    return undefined;
  }
}
