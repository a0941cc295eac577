/**
 * What a pod's status says about a start, as pure functions of the pod object (no API calls):
 * which phase it is in (StartPhase, for `ztm tenant wake` and the waker), and whether it can never
 * become ready (a StartFailureReason). The scheduler and the kubelet report:
 *
 * - not bound yet: `PodScheduled=False` reason `Unschedulable` with the scheduler's "0/N nodes are
 *   available: ..." message while no node fits (Karpenter provisions one meanwhile), possibly
 *   `status.nominatedNodeName`: waiting for a node, patiently (the start's cold bound);
 * - bound: the container `waiting` with `ContainerCreating` (the image is pulled, the sandbox made),
 *   `ErrImagePull` ⇄ `ImagePullBackOff` (a pull failed; the kubelet retries), `InvalidImageName`
 *   (never), `CrashLoopBackOff` (restartPolicy Always: it keeps dying);
 * - running but not Ready: the shim is starting.
 */
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { redactSecrets } from '../../redact.js';
import type { StartFailureReason, StartProgress } from '../runtime.js';
import { podDeleting, podExitReason, podReady, podTerminated } from '../kube-client.js';

const clip = (s: string, n = 240): string => redactSecrets(s.length > n ? `${s.slice(0, n - 1)}…` : s);

function waitingOf(pod: V1Pod): { reason: string; message: string | undefined } | undefined {
  const statuses: V1ContainerStatus[] = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const cs of statuses) {
    const w = cs.state?.waiting;
    if (w?.reason) return { reason: w.reason, message: w.message ?? undefined };
  }
  return undefined;
}

/** The scheduler's verdict while the pod is not bound: its condition, if False. */
export function unschedulable(pod: V1Pod): { reason: string; message: string } | undefined {
  if (pod.spec?.nodeName) return undefined;
  const c = pod.status?.conditions?.find((x) => x.type === 'PodScheduled');
  if (c?.status !== 'False') return undefined;
  return { reason: c.reason ?? 'Unschedulable', message: c.message ?? '' };
}

/** The start phase this pod is in (before its claim: 'restoring-state' and 'ready' are the claim's). */
export function startPhaseOf(pod: V1Pod): StartProgress {
  if (!pod.spec?.nodeName) {
    const u = unschedulable(pod);
    const nominated = pod.status?.nominatedNodeName;
    if (u) {
      const detail = `${u.reason}${u.message ? `: ${u.message}` : ''}${nominated ? ` (node ${nominated} nominated)` : ''}`;
      return { phase: 'waiting-for-node', detail: clip(detail) };
    }
    if (nominated) return { phase: 'waiting-for-node', detail: clip(`node ${nominated} nominated`) };
    return { phase: 'scheduling' };
  }
  if (podReady(pod)) return { phase: 'starting', detail: 'shim listening' };
  const w = waitingOf(pod);
  if (w && /^(ContainerCreating|PodInitializing|ErrImagePull|ImagePullBackOff)$/.test(w.reason)) {
    return { phase: 'pulling-image', detail: clip(`${w.reason}${w.message ? `: ${w.message}` : ''} on ${pod.spec.nodeName}`) };
  }
  if (!pod.status?.containerStatuses?.some((c) => c.state?.running)) {
    return { phase: 'pulling-image', detail: clip(`${w?.reason ?? 'ContainerCreating'} on ${pod.spec.nodeName}`) };
  }
  return { phase: 'starting', detail: clip(`on ${pod.spec.nodeName}`) };
}

/** Counts failed image pulls across observations of one pod (ErrImagePull, and backoffs seen without it). */
export class PullFailures {
  private last: string | undefined;
  count = 0;

  observe(pod: V1Pod): void {
    const reason = waitingOf(pod)?.reason;
    if (reason === 'ErrImagePull' && this.last !== 'ErrImagePull') this.count++;
    else if (reason === 'ImagePullBackOff' && this.last !== 'ErrImagePull' && this.last !== 'ImagePullBackOff') this.count++;
    this.last = reason;
  }
}

export interface StartFailure {
  reason: StartFailureReason;
  message: string;
}

/**
 * Why this pod can never become ready, or undefined while it still can. `pullFailures`: the image
 * pulls seen failing so far; `maxPullFailures`: how many the start tolerates (a registry hiccup
 * clears on the kubelet's retry; a missing image or tag does not).
 */
export function startFailureOf(pod: V1Pod, pullFailures: number, maxPullFailures: number): StartFailure | undefined {
  const name = pod.metadata?.name ?? '?';
  if (podTerminated(pod)) {
    const lost = pod.status?.reason === 'NodeLost' || pod.status?.reason === 'Evicted' || pod.status?.reason === 'Shutdown';
    return { reason: lost ? 'pod_lost' : 'crash_loop', message: `pod ${name} ended before it was ready: ${podExitReason(pod)}` };
  }
  if (podDeleting(pod)) return { reason: 'pod_lost', message: `pod ${name} is being deleted before it was ready` };
  const w = waitingOf(pod);
  const detail = (x: { reason: string; message: string | undefined }): string => clip(`${x.reason}${x.message ? `: ${x.message}` : ''}`);
  if (w?.reason === 'InvalidImageName' || w?.reason === 'ErrImageNeverPull') {
    return { reason: 'image_pull_failed', message: `pod ${name}: the image can never be pulled (${detail(w)})` };
  }
  if (w && (w.reason === 'ErrImagePull' || w.reason === 'ImagePullBackOff') && pullFailures >= maxPullFailures) {
    return { reason: 'image_pull_failed', message: `pod ${name}: the image pull failed ${pullFailures} times (${detail(w)})` };
  }
  if (w?.reason === 'CrashLoopBackOff') {
    return { reason: 'crash_loop', message: `pod ${name}: its container keeps crashing (${detail(w)}; ${podExitReason(pod)})` };
  }
  return undefined;
}

/** One line about a pod for an error: phase, readiness, waiting reasons, the scheduler's verdict. */
export function describePod(p: V1Pod): string {
  const parts = [`phase ${p.status?.phase ?? 'unknown'}`, podReady(p) ? 'Ready' : 'not Ready'];
  const waiting = p.status?.containerStatuses?.map((c) => c.state?.waiting?.reason).filter((r): r is string => !!r);
  if (waiting && waiting.length > 0) parts.push(waiting.join(','));
  const u = unschedulable(p);
  if (u) parts.push(`${u.reason}${u.message ? `: ${u.message.slice(0, 160)}` : ''}`);
  return redactSecrets(parts.join(', '));
}

/**
 * Signs on the pod itself that its node is gone (usable without `get nodes`): the node lifecycle
 * controller's `status.reason: NodeLost`, or the taint manager's eviction
 * (`DisruptionTarget` reason `DeletionByTaintManager`).
 */
export function podShowsNodeLost(pod: V1Pod): string | undefined {
  if (pod.status?.reason === 'NodeLost') return 'pod status NodeLost';
  const d = pod.status?.conditions?.find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
  if (d?.reason === 'DeletionByTaintManager') return 'evicted by the taint manager (node unreachable or not ready)';
  return undefined;
}
