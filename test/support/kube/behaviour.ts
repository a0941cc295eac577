/**
 * How the stand-in cluster behaves beyond plain storage: the knobs a test turns to get the
 * production behaviours the platform depends on. One typed object, given at construction
 * (`KubeApiServer.start({ behaviour })`) and changed at any time (`api.behaviour.set({...})`, a
 * deep merge of what is given; tests flip knobs mid-test). The default is instant and permissive.
 *
 * What it models (each as the real component reports it, see the files named):
 * - a scaled clock (`timeScale`): every *cluster* delay below is in simulated seconds and takes
 *   `seconds * timeScale` real seconds (0.01: a 5-minute node provisioning takes 3 s);
 * - scheduling (scheduler.ts): a delay, `PodScheduled=False reason Unschedulable` with the
 *   scheduler's "0/N nodes are available: ..." message while a node is provisioned (then bound,
 *   optionally `status.nominatedNodeName` first), or forever;
 * - images (pod-worker.ts): a pull that takes time (ContainerCreating), ErrImagePull ⇄
 *   ImagePullBackOff, InvalidImageName; a crashing container (CrashLoopBackOff with restartCount
 *   under restartPolicy Always, Failed under Never);
 * - admission (admission.ts): a missing PriorityClass or RuntimeClass, Pod Security (namespace
 *   label `pod-security.kubernetes.io/enforce`), a pods ResourceQuota, RBAC denials: 403 Forbidden
 *   Status bodies with the real plugins' messages;
 * - the API itself (faults.ts): latency per verb, 429 + Retry-After, 5xx, hung requests,
 *   connection resets (real milliseconds, not scaled: they race the client's own timeouts);
 * - node loss (kubelet.ts `loseNode`): Ready=Unknown, the unreachable taints, pods marked not
 *   Ready, evicted after `nodeLoss.evictAfterS` and then stuck Terminating until force-deleted;
 * - pod IP reuse (kubelet.ts): a freed IP goes to the next pod once `ipReuseAfterS` passed;
 * - watches (watch-stream.ts): BOOKMARK events, history expiry (410 Expired beyond the window).
 *
 * What it does not model: Events objects, preemption, resource fit (nodes have no capacity),
 * PriorityClass/RuntimeClass/ResourceQuota/RBAC objects (they are knobs here), Leases, JSON Patch,
 * pod logs over the API, TLS, APF queueing, multiple API servers, a partitioned node whose
 * containers keep running (a lost node's containers are killed).
 */

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

export interface SchedulingBehaviour {
  /** Simulated seconds from creation to binding when a node is free. */
  delayS: number;
  /** When set, no node fits until one is provisioned: Unschedulable for this long, then bound. */
  provisionS: number | undefined;
  /** Never schedulable (Unschedulable for good). */
  never: boolean;
  /** Only pods matching this label selector are affected by provisionS / never; default all. */
  selector: string | undefined;
  /** Set status.nominatedNodeName while waiting for a provisioned node. */
  nominate: boolean;
  /** The scheduler's message while unschedulable. */
  message: string;
}

export type ImageFault = 'ErrImagePull' | 'InvalidImageName';

export interface ImageBehaviour {
  /** Simulated seconds a pull takes (the container waits in ContainerCreating meanwhile). */
  pullS: number;
  /** Images (exact reference) whose pull fails this way. */
  faults: Record<string, ImageFault>;
  /** Simulated seconds of back-off between pull attempts (ErrImagePull, then ImagePullBackOff). */
  backoffS: number;
}

export interface CrashBehaviour {
  /** Pods matching this label selector get containers that exit at once with `exitCode`. */
  selector: string | undefined;
  exitCode: number;
}

export interface AdmissionBehaviour {
  /** PriorityClasses that exist; undefined: any name is accepted. */
  priorityClasses: string[] | undefined;
  /** RuntimeClasses that exist; undefined: any name is accepted. */
  runtimeClasses: string[] | undefined;
  /** A `pods` ResourceQuota per namespace (name and hard limit). */
  podQuota: Record<string, { name: string; pods: number }>;
  /** RBAC: who the client is, and what it may not do (resource plural, verb). */
  user: string;
  deny: Array<{ verb: Verb | '*'; resource: string; namespace?: string }>;
}

export interface NodeLossBehaviour {
  /** Simulated seconds from NotReady to eviction (DefaultTolerationSeconds: 300). */
  evictAfterS: number;
}

export interface WatchBehaviour {
  /** Simulated seconds between BOOKMARK events on watches that asked for them. */
  bookmarkEveryS: number;
  /** Events kept for watches from an older resourceVersion; older ones get 410 Expired. */
  historyEvents: number;
  /** Simulated seconds an event is kept (etcd compacts every 5 minutes). */
  historyS: number;
}

export interface Behaviour {
  timeScale: number;
  scheduling: SchedulingBehaviour;
  images: ImageBehaviour;
  crash: CrashBehaviour;
  admission: AdmissionBehaviour;
  /** Real milliseconds added to every request of a verb. */
  latencyMs: Partial<Record<Verb, number>>;
  nodeLoss: NodeLossBehaviour;
  /** Simulated seconds a freed pod IP rests before it is handed out again (VPC CNI: ~30 s). */
  ipReuseAfterS: number;
  watch: WatchBehaviour;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends Array<unknown> | Record<string, unknown> | undefined ? T[K] : T[K] extends object ? DeepPartial<T[K]> : T[K] };
export type BehaviourOptions = DeepPartial<Behaviour>;

export function defaultBehaviour(): Behaviour {
  return {
    timeScale: 1,
    scheduling: {
      delayS: 0, provisionS: undefined, never: false, selector: undefined, nominate: false,
      message: '0/3 nodes are available: 3 Insufficient cpu, 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.',
    },
    images: { pullS: 0, faults: {}, backoffS: 10 },
    crash: { selector: undefined, exitCode: 1 },
    admission: { priorityClasses: undefined, runtimeClasses: undefined, podQuota: {}, user: 'system:serviceaccount:platform:zeroclaw-platform', deny: [] },
    latencyMs: {},
    nodeLoss: { evictAfterS: 300 },
    ipReuseAfterS: 30,
    watch: { bookmarkEveryS: 60, historyEvents: 10_000, historyS: 300 },
  };
}

const isPlain = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Sections whose value is a map replaced whole (faults, quotas, latency), not merged key by key. */
const REPLACED = new Set(['faults', 'podQuota', 'latencyMs']);

function merge(target: Record<string, unknown>, patch: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(patch)) {
    if (isPlain(v) && isPlain(target[k]) && !REPLACED.has(k)) merge(target[k] as Record<string, unknown>, v);
    else target[k] = v;
  }
}

/** The current behaviour; `set` changes it from now on (pods already past a step keep theirs). */
export class ClusterBehaviour {
  private value: Behaviour = defaultBehaviour();
  private readonly listeners = new Set<() => void>();

  constructor(options: BehaviourOptions = {}) {
    this.set(options);
  }

  get current(): Readonly<Behaviour> {
    return this.value;
  }

  set(patch: BehaviourOptions): void {
    const next = structuredClone(this.value) as unknown as Record<string, unknown>;
    merge(next, structuredClone(patch) as Record<string, unknown>);
    const b = next as unknown as Behaviour;
    if (!(b.timeScale > 0)) throw new Error('behaviour: timeScale must be > 0');
    this.value = b;
    for (const l of this.listeners) l();
  }

  /** Back to the defaults (instant and permissive). */
  reset(): void {
    this.value = defaultBehaviour();
    for (const l of this.listeners) l();
  }

  /** Real milliseconds for simulated seconds. */
  ms(simulatedS: number): number {
    return Math.max(0, Math.round(simulatedS * 1000 * this.value.timeScale));
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
