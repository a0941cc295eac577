/**
 * Exit handling: every tenant pod, followed through the shared informer. A pod that ends
 * (Failed/Succeeded), starts being deleted or disappears, without a deletion of this runtime, is
 * reported once to the `onExit` listeners (the platform drops its endpoint). So is one that was
 * Ready and no longer is because its node was lost (pod-deletion.ts nodeLost): it will not come
 * back, and its eviction comes only minutes later. Pods already ended when this process first
 * looked are the reconciler's business, not exits.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../logger.js';
import { podDeleting, podExitReason, podReady, podTerminated } from '../kube-client.js';
import { LABEL_APP, LABEL_TENANT, TENANT_APP } from '../pod-spec.js';
import type { PodEvent, PodInformer } from './pod-informer.js';
import type { PodDeletion } from './pod-deletion.js';

type Listener = (tenantId: string, podName: string) => void;

interface Known {
  tenant: string;
  name: string;
  reported: boolean;
  ready: boolean;
}

export class PodExits {
  private readonly listeners: Listener[] = [];
  private readonly known = new Map<string, Known>();
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly informer: PodInformer, private readonly deletion: PodDeletion, private readonly log: Logger) {}

  onExit(listener: Listener): void {
    this.listeners.push(listener);
    this.unsubscribe ??= this.informer.subscribe((e) => this.observe(e));
  }

  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  private observe({ type, pod, initial }: PodEvent): void {
    const uid = pod.metadata?.uid ?? '';
    const tenant = pod.metadata?.labels?.[LABEL_TENANT];
    if (!uid) return;
    if (type === 'DELETED') {
      const entry = this.known.get(uid) ?? (tenant && isTenantPod(pod) ? { tenant, name: pod.metadata?.name ?? '?', reported: false, ready: false } : undefined);
      this.known.delete(uid);
      if (entry) this.report(uid, entry, 'deleted');
      this.deletion.forget(uid);
      return;
    }
    if (!tenant || !isTenantPod(pod)) return; // a warm member: no tenant to report
    let entry = this.known.get(uid);
    if (!entry) {
      entry = { tenant, name: pod.metadata?.name ?? '?', reported: initial && (podTerminated(pod) || podDeleting(pod)), ready: false };
      this.known.set(uid, entry);
    }
    const wasReady = entry.ready;
    entry.ready = podReady(pod);
    if (podTerminated(pod)) this.report(uid, entry, `phase ${pod.status?.phase}: ${podExitReason(pod)}`);
    else if (podDeleting(pod)) this.report(uid, entry, 'deleted');
    else if (wasReady && !entry.ready && !entry.reported) {
      const known = entry;
      void this.deletion.nodeLost(pod).then((why) => {
        if (why) this.report(uid, known, `not ready: ${why}`);
      });
    }
  }

  private report(uid: string, entry: Known, why: string): void {
    if (entry.reported) return;
    entry.reported = true;
    if (this.deletion.isOwn(uid)) return;
    this.log.warn({ tenant: entry.tenant, pod: entry.name, why }, 'tenant pod exited');
    for (const l of this.listeners) {
      try {
        l(entry.tenant, entry.name);
      } catch (err) {
        this.log.error({ err }, 'onExit listener failed');
      }
    }
  }
}

function isTenantPod(pod: V1Pod): boolean {
  return pod.metadata?.labels?.[LABEL_APP] === TENANT_APP;
}
