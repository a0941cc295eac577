/**
 * A simulated kubelet (one node) for the stand-in apiserver: registers its Node, then really runs
 * the containers of the pods the scheduler (control-plane.ts) binds to it as child processes (by
 * default every container is the agent shim, as in production), each pod on its own loopback IP so
 * every pod can listen on the same ports. It reports status like the real kubelet: Pending →
 * Running with podIP, readiness from the readinessProbe (Ready/ContainersReady), image pulls and
 * their errors, restarts per restartPolicy, terminal phases, graceful deletion (SIGTERM, SIGKILL
 * after the grace period, then the pod object is removed). A freed pod IP is handed out again
 * after `ipReuseAfterS` (as the VPC CNI does); `loseNode()` makes the node unreachable.
 * Container mechanics (env, volumes, probes, processes): container.ts; one pod: pod-worker.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomInt, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { KubeApiServer } from './api-server.js';
import { ApiError, RESOURCES, timestamp, type KubeObject, type ResourceType } from './objects.js';
import { NODES } from './control-plane.js';
import type { StoreEvent } from './store.js';
import { PodWorker, type ContainerRun } from './pod-worker.js';
import { portsFree, startReaper, type Container } from './container.js';

export interface KubeletOptions {
  nodeName?: string;
  /** Pending (scheduled, ContainerCreating) for this long before the containers start. Default 50. */
  startDelayMs?: number;
  /** Probe period (stands in for periodSeconds). Default 50. */
  probeIntervalMs?: number;
  /** First restart back-off for restartPolicy Always/OnFailure, doubling up to 5 s. Default 100. */
  restartBackoffMs?: number;
  /** Pod IPs are `<ipPrefix>2`, `<ipPrefix>3`, …; default a random `127.a.b.` per kubelet so test files in parallel do not collide. */
  ipPrefix?: string;
  /** argv for a container; default: the agent shim (`node --import tsx agent/shim.ts`) for every container. */
  command?: (pod: KubeObject, container: Container) => string[];
  /** The image's ENV (before the container's env). Default: PATH, HOME=/home/node, WORKSPACE=/workspace. */
  imageEnv?: Record<string, string>;
  /** Image paths given a per-pod host directory (env values under them are rewritten). Default ['/workspace', '/home/node']. */
  imagePaths?: string[];
  /** Where pod directories and PVC contents live; default a new temp dir (removed on close). */
  dataDir?: string;
}

export const SHIM_PATH = fileURLToPath(new URL('../../../agent/shim.ts', import.meta.url));
export const shimCommand = (): string[] => [process.execPath, '--import', import.meta.resolve('tsx'), SHIM_PATH];
const PODS = RESOURCES.find((r) => r.resource === 'pods') as ResourceType;

export interface KubeletSettings {
  nodeName: string;
  startDelayMs: number;
  probeIntervalMs: number;
  restartBackoffMs: number;
  command: (pod: KubeObject, container: Container) => string[];
  imageEnv: Record<string, string>;
  imagePaths: string[];
  dataDir: string;
}

export class Kubelet {
  readonly settings: KubeletSettings;
  /** Marks this kubelet's container processes (see startReaper). */
  readonly id = randomBytes(8).toString('hex');
  private readonly reaper: ChildProcess;
  private readonly workers = new Map<string, PodWorker>();
  /** Logs by `ns/name`, kept after the pod is gone (until a pod of that name starts again). */
  private readonly logs = new Map<string, Map<string, ContainerRun['logs']>>();
  private readonly ownDataDir: boolean;
  /** Store events not handled yet (kept here: the store's history window may be tiny in a test). */
  private readonly queue: StoreEvent[] = [];
  private scheduled = false;
  private closed = false;
  private isLost = false;
  private prefix: string;
  private nextHost = 2;
  /** Freed pod IPs, oldest first, with when they were freed. */
  private readonly freed: Array<{ ip: string; at: number }> = [];
  /** Images this node has pulled (IfNotPresent then skips the pull). */
  readonly pulled = new Set<string>();
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

  constructor(readonly api: KubeApiServer, options: KubeletOptions = {}) {
    this.ownDataDir = options.dataDir === undefined;
    this.settings = {
      nodeName: options.nodeName ?? 'stand-in-node',
      startDelayMs: options.startDelayMs ?? 50,
      probeIntervalMs: options.probeIntervalMs ?? 50,
      restartBackoffMs: options.restartBackoffMs ?? 100,
      command: options.command ?? (() => shimCommand()),
      imageEnv: options.imageEnv ?? { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: '/home/node', WORKSPACE: '/workspace' },
      imagePaths: options.imagePaths ?? ['/workspace', '/home/node'],
      dataDir: options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'kubelet-')),
    };
    this.reaper = startReaper(this.id);
    this.prefix = options.ipPrefix ?? `127.${1 + randomInt(254)}.${randomInt(256)}.`;
    api.store.on('event', this.onEvent);
    this.register();
    for (const pod of api.store.list(PODS, undefined).items) this.reconcile(pod.metadata.uid ?? '', pod.metadata.namespace ?? '', pod.metadata.name ?? '');
  }

  /** The Node object, Ready (an existing one of that name is taken over and made Ready again). */
  private register(): void {
    const now = timestamp();
    const node = {
      metadata: { name: this.settings.nodeName, labels: { 'kubernetes.io/hostname': this.settings.nodeName, 'kubernetes.io/os': 'linux' } },
      spec: {},
      status: {
        conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: now, lastTransitionTime: now }],
        addresses: [{ type: 'InternalIP', address: '127.0.0.1' }, { type: 'Hostname', address: this.settings.nodeName }],
      },
    };
    try {
      this.api.store.create(NODES, '', node);
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== 409) throw err;
      this.api.store.mutate(NODES, '', this.settings.nodeName, (n) => {
        n.spec = node.spec;
        n.status = node.status;
      });
    }
  }

  private drain(): void {
    if (this.closed || this.isLost) return;
    for (const ev of this.queue.splice(0)) {
      if (ev.rt === PODS) this.handle(ev);
    }
  }

  private handle(ev: StoreEvent): void {
    const uid = ev.object.metadata.uid ?? '';
    if (ev.type === 'DELETED') {
      const w = this.workers.get(uid);
      if (w) {
        this.workers.delete(uid);
        if (w.ip !== undefined) this.freed.push({ ip: w.ip, at: Date.now() });
        // Killing and removing happen in the background; a directory that cannot be removed is no test failure.
        void w.gone().catch(() => undefined);
      }
      return;
    }
    this.reconcile(uid, ev.namespace, ev.object.metadata.name ?? '');
  }

  /** Acts on the pod's current state (events may be stale by the time they are handled). */
  private reconcile(uid: string, ns: string, name: string): void {
    const pod = this.api.store.find(PODS, ns, name);
    if (!pod || pod.metadata.uid !== uid) return;
    const spec = (pod.spec ?? {}) as { nodeName?: string };
    // Unbound pods are the scheduler's (control-plane.ts); other nodes' pods are not ours.
    if (spec.nodeName !== this.settings.nodeName) return;
    let w = this.workers.get(uid);
    if (!w) {
      const logs = new Map<string, ContainerRun['logs']>();
      this.logs.set(`${ns}/${name}`, logs);
      w = new PodWorker(this, pod, logs);
      this.workers.set(uid, w);
      w.begin();
    }
    w.observe(pod);
  }

  /**
   * A pod IP on which all `ports` can be bound: a freed one that has rested `ipReuseAfterS` (the
   * VPC CNI's cool-down; the oldest first), else the next new one.
   */
  async allocateIp(ports: number[]): Promise<string> {
    const rest = this.api.behaviour.ms(this.api.behaviour.current.ipReuseAfterS);
    for (const f of [...this.freed]) {
      const i = this.freed.indexOf(f);
      if (i < 0 || Date.now() - f.at < rest) continue;
      this.freed.splice(i, 1); // taken before the await: two pods never get the same one
      // The CNI hands the rested IP out whatever happens: here the old pod's processes share the
      // host's loopback, so give ones still exiting a moment (bounded) to let go of its ports.
      for (let wait = 0; wait < 40; wait++) {
        if (await portsFree(f.ip, ports)) return f.ip;
        await new Promise((r) => setTimeout(r, 50));
      }
      this.freed.push(f); // still held after 2 s: later
    }
    for (let attempt = 0; attempt < 200; attempt++) {
      if (this.nextHost > 254) {
        const [a, b, c] = this.prefix.split('.');
        this.prefix = `${a}.${b}.${(Number(c) + 1) % 256}.`;
        this.nextHost = 2;
      }
      const ip = `${this.prefix}${this.nextHost++}`;
      if (await portsFree(ip, ports)) return ip;
    }
    throw new Error('kubelet: no free pod IP');
  }

  /** A per-pod directory (emptyDir volumes and image paths), removed with the pod. */
  podDir(ns: string, name: string): string {
    const dir = path.join(this.settings.dataDir, 'pods', `${ns}_${name}_${randomBytes(3).toString('hex')}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  private worker(name: string, namespace?: string): PodWorker | undefined {
    return [...this.workers.values()].find((w) => w.name === name && (namespace === undefined || w.ns === namespace));
  }

  /** The container's output so far (all restarts); after the pod is gone, its last output. */
  logsOf(name: string, options: { namespace?: string; container?: string } = {}): string {
    const key = [...this.logs.keys()].find((k) => k.endsWith(`/${name}`) && (options.namespace === undefined || k === `${options.namespace}/${name}`));
    const byContainer = key === undefined ? undefined : this.logs.get(key);
    if (!byContainer) return '';
    const buf = options.container === undefined ? [...byContainer.values()][0] : byContainer.get(options.container);
    return buf?.toString() ?? '';
  }

  /** Sends a signal to a running container's process (a crash, for tests); false if none runs. */
  killContainer(name: string, signal: NodeJS.Signals = 'SIGKILL', options: { namespace?: string; container?: string } = {}): boolean {
    const child: ChildProcess | undefined = this.worker(name, options.namespace)?.child(options.container);
    if (!child || child.exitCode !== null || child.signalCode !== null) return false;
    return child.kill(signal);
  }

  /** The pid of a running container's process. */
  pidOf(name: string, options: { namespace?: string; container?: string } = {}): number | undefined {
    return this.worker(name, options.namespace)?.child(options.container)?.pid;
  }

  /** Whether the node was lost (loseNode): nothing is reported or finalised any more. */
  get lost(): boolean {
    return this.isLost;
  }

  /**
   * The node stops reporting (an instance gone): its containers are killed (resolved once every
   * process is gone) without a word to the API, the node controller marks it Ready=Unknown with the unreachable
   * taints, and its pods are evicted later but never finalised (they stay Terminating).
   */
  async loseNode(): Promise<void> {
    if (this.isLost || this.closed) return;
    this.isLost = true;
    this.api.store.off('event', this.onEvent);
    const workers = [...this.workers.values()];
    this.workers.clear();
    // Resolves once every process of the node is gone (the agents too: nothing answers any more).
    await Promise.all(workers.map((w) => w.gone().catch(() => undefined)));
    this.api.controlPlane.nodeLost(this.settings.nodeName);
  }

  /** Pods this kubelet is running (not yet removed). */
  get podCount(): number {
    return this.workers.size;
  }

  /** Kills every container (SIGKILL), waits for them to exit (bounded), removes its directories. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.api.store.off('event', this.onEvent);
    const workers = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(workers.map((w) => w.gone()));
    try {
      if (!this.isLost) this.api.store.delete(NODES, '', this.settings.nodeName);
    } catch {
      // Already gone (or the API server closed first).
    }
    const reaped = new Promise<void>((resolve) => {
      if (this.reaper.exitCode !== null || this.reaper.signalCode !== null) resolve();
      else this.reaper.once('exit', () => resolve());
      setTimeout(resolve, 5000).unref();
    });
    this.reaper.stdin?.end();
    await reaped;
    if (this.ownDataDir) rmSync(this.settings.dataDir, { recursive: true, force: true });
  }
}
