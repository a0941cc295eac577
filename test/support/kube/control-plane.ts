/**
 * The stand-in's scheduler and node lifecycle controller, driven by the behaviour knobs
 * (behaviour.ts) on the scaled clock:
 * - Scheduler: binds each new pod to a Ready node (the least loaded; nodes are the kubelets that
 *   registered, kubelet.ts) after `scheduling.delayS`. While a node is being provisioned
 *   (`scheduling.provisionS`) or never (`scheduling.never`) the pod stays Pending with
 *   PodScheduled=False, reason Unschedulable and the scheduler's "0/N nodes are available: ..."
 *   message (optionally status.nominatedNodeName), as with Karpenter bringing up a node. With no
 *   Ready node the message names the taint. Without any Node object it does nothing at all (pods
 *   stay unscheduled and untouched, as before nodes existed in the stand-in).
 * - Node lifecycle: a lost node (kubelet.ts `loseNode`) gets Ready=Unknown and the unreachable
 *   taints, its pods Ready=False; after the NoExecute toleration (the pod's own, else
 *   `nodeLoss.evictAfterS`: DefaultTolerationSeconds 300) they are deleted gracefully, and since no
 *   kubelet confirms, they stay Terminating until someone deletes them with gracePeriodSeconds=0.
 * Not modelled: resource fit, node selectors and affinity, preemption, Events.
 */
import { RESOURCES, timestamp, type KubeObject, type ResourceType } from './objects.js';
import type { ObjectStore, StoreEvent } from './store.js';
import type { ClusterBehaviour } from './behaviour.js';
import { labelSelector } from './selectors.js';

const PODS = RESOURCES.find((r) => r.resource === 'pods') as ResourceType;
export const NODES = RESOURCES.find((r) => r.resource === 'nodes') as ResourceType;
export const UNREACHABLE_TAINT = 'node.kubernetes.io/unreachable';
const rec = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : {});

interface Pending { ns: string; name: string; timer?: NodeJS.Timeout; blocked: boolean }

export function nodeReady(node: KubeObject | undefined): boolean {
  const conditions = rec(node?.status).conditions;
  return Array.isArray(conditions) && conditions.some((c) => rec(c).type === 'Ready' && rec(c).status === 'True')
    && rec(node?.spec).unschedulable !== true;
}

export class ControlPlane {
  private readonly pending = new Map<string, Pending>();
  private readonly evictions = new Set<NodeJS.Timeout>();
  /** Store events not handled yet (kept here: the store's history window may be tiny in a test). */
  private readonly queue: StoreEvent[] = [];
  private scheduled = false;
  private closed = false;
  private readonly offBehaviour: () => void;
  private readonly onEvent = (ev: StoreEvent): void => {
    if (this.closed) return;
    this.queue.push(ev);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  };

  constructor(private readonly store: ObjectStore, private readonly behaviour: ClusterBehaviour) {
    store.on('event', this.onEvent);
    // A knob turned (e.g. `never` lifted): blocked pods are planned again.
    this.offBehaviour = behaviour.onChange(() => this.replanBlocked());
  }

  close(): void {
    this.closed = true;
    this.store.off('event', this.onEvent);
    this.offBehaviour();
    for (const p of this.pending.values()) if (p.timer) clearTimeout(p.timer);
    this.pending.clear();
    for (const t of this.evictions) clearTimeout(t);
    this.evictions.clear();
  }

  private nodes(): KubeObject[] {
    return this.store.list(NODES, '').items;
  }

  private drain(): void {
    if (this.closed) return;
    let nodesChanged = false;
    for (const ev of this.queue.splice(0)) {
      if (ev.rt === NODES) nodesChanged = true;
      else if (ev.rt === PODS) this.handlePod(ev);
    }
    if (nodesChanged) {
      this.adoptUnbound();
      this.retryWaiting();
    }
  }

  /** Pods created before any node existed: scheduled once one registers. */
  private adoptUnbound(): void {
    if (this.nodes().length === 0) return;
    for (const pod of this.store.list(PODS, undefined).items) {
      const uid = pod.metadata.uid ?? '';
      const nodeName = rec(pod.spec).nodeName;
      if (this.pending.has(uid) || (typeof nodeName === 'string' && nodeName !== '') || pod.metadata.deletionTimestamp !== undefined) continue;
      const p: Pending = { ns: pod.metadata.namespace ?? '', name: pod.metadata.name ?? '', blocked: false };
      this.pending.set(uid, p);
      this.plan(uid, p, pod);
    }
  }

  private handlePod(ev: StoreEvent): void {
    const uid = ev.object.metadata.uid ?? '';
    if (ev.type === 'DELETED') {
      const p = this.pending.get(uid);
      if (p?.timer) clearTimeout(p.timer);
      this.pending.delete(uid);
      return;
    }
    const spec = rec(ev.object.spec);
    if ((typeof spec.nodeName === 'string' && spec.nodeName !== '') || ev.object.metadata.deletionTimestamp !== undefined) {
      const p = this.pending.get(uid);
      if (p?.timer) clearTimeout(p.timer);
      this.pending.delete(uid);
      return;
    }
    if (this.pending.has(uid) || this.nodes().length === 0) return;
    const p: Pending = { ns: ev.namespace, name: ev.object.metadata.name ?? '', blocked: false };
    this.pending.set(uid, p);
    this.plan(uid, p, ev.object);
  }

  private affected(pod: KubeObject): boolean {
    const sel = this.behaviour.current.scheduling.selector;
    return sel === undefined || labelSelector(sel)(pod);
  }

  private plan(uid: string, p: Pending, pod: KubeObject): void {
    const s = this.behaviour.current.scheduling;
    p.blocked = false;
    if (this.affected(pod) && s.never) {
      p.blocked = true;
      this.markUnschedulable(uid, p, s.message, false);
      return;
    }
    if (this.affected(pod) && s.provisionS !== undefined) {
      this.markUnschedulable(uid, p, s.message, s.nominate);
      this.later(uid, p, this.behaviour.ms(s.provisionS));
      return;
    }
    this.later(uid, p, this.behaviour.ms(s.delayS));
  }

  private later(uid: string, p: Pending, ms: number): void {
    if (p.timer) clearTimeout(p.timer);
    p.timer = setTimeout(() => {
      p.timer = undefined;
      this.bind(uid, p);
    }, ms);
  }

  private replanBlocked(): void {
    for (const [uid, p] of this.pending) {
      if (!p.blocked) continue;
      const pod = this.store.find(PODS, p.ns, p.name);
      if (pod?.metadata.uid === uid) this.plan(uid, p, pod);
    }
  }

  /** Pods that found no Ready node: tried again when a node changes. */
  private retryWaiting(): void {
    for (const [uid, p] of this.pending) if (!p.blocked && p.timer === undefined) this.bind(uid, p);
  }

  private pick(): string | undefined {
    const ready = this.nodes().filter(nodeReady).map((n) => n.metadata.name ?? '');
    if (ready.length === 0) return undefined;
    const load = new Map(ready.map((n) => [n, 0]));
    for (const pod of this.store.list(PODS, undefined).items) {
      const n = String(rec(pod.spec).nodeName ?? '');
      if (load.has(n)) load.set(n, (load.get(n) ?? 0) + 1);
    }
    return [...load.entries()].sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))[0]?.[0];
  }

  private bind(uid: string, p: Pending): void {
    if (this.closed) return;
    const pod = this.store.find(PODS, p.ns, p.name);
    if (!pod || pod.metadata.uid !== uid || pod.metadata.deletionTimestamp !== undefined) {
      this.pending.delete(uid);
      return;
    }
    const node = this.pick();
    if (node === undefined) {
      const total = this.nodes().length;
      this.markUnschedulable(uid, p, `0/${total} nodes are available: ${total} node(s) had untolerated taint {${UNREACHABLE_TAINT}: }. preemption: 0/${total} nodes are available: ${total} Preemption is not helpful for scheduling.`, false);
      return;
    }
    this.pending.delete(uid);
    // The Binding: nodeName plus PodScheduled=True (nominatedNodeName is cleared).
    this.store.mutate(PODS, p.ns, p.name, (o) => {
      if (o.metadata.uid !== uid) return;
      (o.spec as { nodeName?: string }).nodeName = node;
      const status = rec(o.status);
      delete status.nominatedNodeName;
      const others = (Array.isArray(status.conditions) ? status.conditions : []).filter((c) => rec(c).type !== 'PodScheduled');
      status.conditions = [...others, { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: timestamp() }];
      o.status = status;
    });
  }

  private markUnschedulable(uid: string, p: Pending, message: string, nominate: boolean): void {
    const nominated = nominate ? this.pick() : undefined;
    this.store.mutate(PODS, p.ns, p.name, (o) => {
      if (o.metadata.uid !== uid) return;
      const status = rec(o.status);
      const others = (Array.isArray(status.conditions) ? status.conditions : []).filter((c) => rec(c).type !== 'PodScheduled');
      const before = (Array.isArray(status.conditions) ? status.conditions : []).map(rec).find((c) => c.type === 'PodScheduled');
      status.conditions = [...others, {
        type: 'PodScheduled', status: 'False', lastProbeTime: null,
        lastTransitionTime: before?.status === 'False' ? before.lastTransitionTime : timestamp(), reason: 'Unschedulable', message,
      }];
      if (nominated !== undefined) status.nominatedNodeName = nominated;
      o.status = status;
    });
  }

  /** The node lifecycle controller's reaction to a node that stopped reporting. */
  nodeLost(nodeName: string): void {
    const now = timestamp();
    this.store.mutate(NODES, '', nodeName, (n) => {
      const status = rec(n.status);
      const conditions = (Array.isArray(status.conditions) ? status.conditions : []).map(rec).filter((c) => c.type !== 'Ready');
      status.conditions = [...conditions, {
        type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.',
        lastHeartbeatTime: now, lastTransitionTime: now,
      }];
      n.status = status;
      const spec = rec(n.spec);
      const taints = (Array.isArray(spec.taints) ? spec.taints : []).map(rec).filter((t) => t.key !== UNREACHABLE_TAINT);
      spec.taints = [...taints, { key: UNREACHABLE_TAINT, effect: 'NoSchedule', timeAdded: now }, { key: UNREACHABLE_TAINT, effect: 'NoExecute', timeAdded: now }];
      n.spec = spec;
    });
    for (const pod of this.store.list(PODS, undefined, { fieldSelector: `spec.nodeName=${nodeName}` }).items) {
      const ns = pod.metadata.namespace ?? '';
      const name = pod.metadata.name ?? '';
      const uid = pod.metadata.uid ?? '';
      this.store.mutate(PODS, ns, name, (o) => {
        const status = rec(o.status);
        status.conditions = (Array.isArray(status.conditions) ? status.conditions : []).map(rec)
          .map((c) => (c.type === 'Ready' ? { ...c, status: 'False', lastTransitionTime: now } : c));
        o.status = status;
      });
      const toleration = (Array.isArray(rec(pod.spec).tolerations) ? rec(pod.spec).tolerations as unknown[] : []).map(rec)
        .find((t) => t.key === UNREACHABLE_TAINT && (t.effect === 'NoExecute' || t.effect === undefined));
      if (toleration && toleration.tolerationSeconds === undefined) continue; // tolerated for good
      const afterS = typeof toleration?.tolerationSeconds === 'number' ? toleration.tolerationSeconds : this.behaviour.current.nodeLoss.evictAfterS;
      const t = setTimeout(() => {
        this.evictions.delete(t);
        const current = this.store.find(PODS, ns, name);
        if (current?.metadata.uid !== uid || current.metadata.deletionTimestamp !== undefined) return;
        try {
          this.store.delete(PODS, ns, name, { preconditions: { uid } });
        } catch {
          // Gone meanwhile.
        }
      }, this.behaviour.ms(afterS));
      this.evictions.add(t);
    }
  }
}
