/**
 * The kubelet's work for one pod: start its containers after the start delay (pulling the image
 * first as behaviour.images says: ContainerCreating, ErrImagePull ⇄ ImagePullBackOff,
 * InvalidImageName; waiting while a referenced Secret is missing; a crashing command when
 * behaviour.crash selects the pod), probe readiness, restart per restartPolicy, terminate on
 * deletion (SIGTERM, SIGKILL after the grace period, terminal phase, then the final grace-0
 * delete with a UID precondition), and publish the status the real kubelet would.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { constants } from 'node:os';
import { RESOURCES, timestamp, type KubeObject, type ResourceType } from './objects.js';
import {
  CONTAINER_MARK, ContainerConfigError, KUBELET_MARK, LogBuffer, killMarked, httpProbe, mapPaths, portsOf, resolveEnv, rewritePaths, startProcess, type Container,
} from './container.js';
import type { Kubelet } from './kubelet.js';
import { labelSelector } from './selectors.js';

const PODS = RESOURCES.find((r) => r.resource === 'pods') as ResourceType;

type State =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: { exitCode: number; signal?: number; reason: string; startedAt?: string; finishedAt: string } };

export interface ContainerRun {
  spec: Container;
  logs: LogBuffer;
  child?: ChildProcess;
  exited?: Promise<void>;
  state: State;
  lastState?: State;
  everStarted: boolean;
  ready: boolean;
  restartCount: number;
  successes: number;
  failures: number;
  startedMs: number;
  containerID?: string;
  /** The image is on the node for this container. */
  pulled?: boolean;
  /** A pull in progress ends at this time (ms). */
  pullUntil?: number;
}

export class PodWorker {
  readonly ns: string;
  readonly name: string;
  private readonly uid: string;
  private pod: KubeObject;
  private readonly runs: ContainerRun[];
  private podIp: string | undefined;
  private dir: string | undefined;
  private startTime: string | undefined;
  private readonly transitions = new Map<string, { status: string; at: string }>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private terminating = false;
  private deadline = Infinity;
  private killTimer: NodeJS.Timeout | undefined;
  private finalized = false;
  private removed = false;

  constructor(private readonly kubelet: Kubelet, pod: KubeObject, logs: Map<string, LogBuffer>) {
    this.pod = pod;
    this.ns = pod.metadata.namespace ?? '';
    this.name = pod.metadata.name ?? '';
    this.uid = pod.metadata.uid ?? '';
    const containers = ((pod.spec as { containers?: Container[] }).containers ?? []);
    this.runs = containers.map((spec) => {
      const buf = new LogBuffer();
      logs.set(spec.name, buf);
      return { spec, logs: buf, state: { waiting: { reason: 'ContainerCreating' } }, everStarted: false, ready: false, restartCount: 0, successes: 0, failures: 0, startedMs: 0 };
    });
  }

  private get restartPolicy(): string {
    return (this.pod.spec as { restartPolicy?: string }).restartPolicy ?? 'Always';
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  begin(): void {
    this.publish();
    this.later(this.kubelet.settings.startDelayMs, () => this.kick());
  }

  private kick(): void {
    this.startAll().catch((err: Error) => {
      for (const r of this.runs) r.logs.append(`kubelet: cannot start pod: ${err.message}\n`);
    });
  }

  /** A newer version of the pod object: only deletion matters (labels, annotations do not). */
  observe(pod: KubeObject): void {
    this.pod = pod;
    if (pod.metadata.deletionTimestamp === undefined) return;
    const grace = pod.metadata.deletionGracePeriodSeconds ?? (pod.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30;
    const deadline = Date.now() + grace * 1000;
    if (!this.terminating) {
      this.terminating = true;
      this.deadline = deadline;
      for (const t of this.timers) clearTimeout(t);
      this.timers.clear();
      for (const r of this.runs) r.child?.kill('SIGTERM');
      this.armKill();
      this.maybeFinalize();
    } else if (deadline < this.deadline) {
      this.deadline = deadline;
      this.armKill();
    }
  }

  private armKill(): void {
    if (this.killTimer) clearTimeout(this.killTimer);
    this.killTimer = setTimeout(() => {
      for (const r of this.runs) r.child?.kill('SIGKILL');
    }, Math.max(0, this.deadline - Date.now()));
  }

  /** The pod's IP once its sandbox exists. */
  get ip(): string | undefined {
    return this.podIp;
  }

  started(container?: string): boolean {
    const run = container === undefined ? this.runs[0] : this.runs.find((r) => r.spec.name === container);
    return run?.everStarted ?? false;
  }

  child(container?: string): ChildProcess | undefined {
    return (container === undefined ? this.runs[0] : this.runs.find((r) => r.spec.name === container))?.child;
  }

  private async startAll(): Promise<void> {
    if (this.terminating || this.removed) return;
    if (this.podIp === undefined) {
      const plain = (c: Container): Record<string, string> => Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value ?? '']));
      const ip = await this.kubelet.allocateIp([...new Set(this.runs.flatMap((r) => portsOf(r.spec, plain(r.spec))))]);
      if (this.terminating || this.removed) return;
      this.podIp = ip;
      this.dir = this.kubelet.podDir(this.ns, this.name);
    }
    const withIp: KubeObject = { ...this.pod, status: { ...(this.pod.status as object), podIP: this.podIp, hostIP: '127.0.0.1' } };
    let pending = false;
    let retryMs = Infinity;
    for (const run of this.runs) {
      if (run.everStarted) continue;
      const wait = this.pull(run);
      if (wait !== undefined) {
        retryMs = Math.min(retryMs, wait);
        continue;
      }
      try {
        this.spawn(run, withIp);
      } catch (err) {
        const reason = err instanceof ContainerConfigError ? err.reason : 'RunContainerError';
        run.state = { waiting: { reason, message: (err as Error).message } };
        pending = true;
      }
    }
    this.publish();
    if (pending) retryMs = Math.min(retryMs, Math.max(100, this.kubelet.settings.probeIntervalMs * 2));
    if (retryMs !== Infinity) this.later(retryMs, () => this.kick());
  }

  /**
   * Gets the container's image onto the node (behaviour.images): undefined once it is there, else
   * the waiting state is set (ContainerCreating while pulling, ErrImagePull ⇄ ImagePullBackOff,
   * InvalidImageName) and the ms until the kubelet looks again.
   */
  private pull(run: ContainerRun): number | undefined {
    if (run.pulled) return undefined;
    const b = this.kubelet.api.behaviour;
    const image = run.spec.image ?? '';
    const fault = b.current.images.faults[image];
    if (fault === 'InvalidImageName') {
      run.state = { waiting: { reason: 'InvalidImageName', message: `Failed to apply default image tag "${image}": couldn't parse image name "${image}": invalid reference format` } };
      return Math.max(50, b.ms(b.current.images.backoffS));
    }
    if (fault === 'ErrImagePull') {
      const was = 'waiting' in run.state ? run.state.waiting.reason : '';
      run.state = was === 'ErrImagePull'
        ? { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` } }
        : { waiting: { reason: 'ErrImagePull', message: `rpc error: code = NotFound desc = failed to pull and unpack image "${image}": failed to resolve reference "${image}": ${image}: not found` } };
      return Math.max(50, b.ms(b.current.images.backoffS));
    }
    const policy = (run.spec as { imagePullPolicy?: string }).imagePullPolicy;
    if (policy !== 'Always' && this.kubelet.pulled.has(image)) {
      run.pulled = true;
      return undefined;
    }
    const now = Date.now();
    if (run.pullUntil === undefined) {
      const ms = b.ms(b.current.images.pullS);
      if (ms > 0) {
        run.pullUntil = now + ms;
        run.state = { waiting: { reason: 'ContainerCreating' } };
        return ms;
      }
    } else if (now < run.pullUntil) return run.pullUntil - now;
    run.pulled = true;
    run.pullUntil = undefined;
    this.kubelet.pulled.add(image);
    return undefined;
  }

  private spawn(run: ContainerRun, pod: KubeObject): void {
    const s = this.kubelet.settings;
    const dir = this.dir ?? '';
    const mounts = mapPaths(this.kubelet.api.store, pod, run.spec, dir, s.dataDir, s.imagePaths);
    const mark = `${this.uid}.${run.spec.name}.${run.restartCount}`;
    const env = rewritePaths({
      ...s.imageEnv, ...resolveEnv(this.kubelet.api.store, pod, run.spec), HOSTNAME: this.name, SHIM_HOST: this.podIp ?? '', HOST: this.podIp ?? '',
    }, mounts);
    env[CONTAINER_MARK] = mark;
    env[KUBELET_MARK] = this.kubelet.id;
    const cwd = path.join(dir, 'rootfs');
    const crash = this.kubelet.api.behaviour.current.crash;
    const crashes = crash.selector !== undefined && labelSelector(crash.selector)(this.pod);
    const argv = crashes ? [process.execPath, '-e', `process.exit(${crash.exitCode})`] : s.command(this.pod, run.spec);
    const child = startProcess(argv, env, cwd, run.logs);
    const startedAt = timestamp();
    run.child = child;
    run.everStarted = true;
    run.startedMs = Date.now();
    run.containerID = `stand-in://${child.pid ?? 0}-${run.restartCount}`;
    run.state = { running: { startedAt } };
    run.ready = run.spec.readinessProbe?.httpGet === undefined;
    run.successes = 0;
    run.failures = 0;
    this.startTime ??= startedAt;
    let done!: () => void;
    run.exited = new Promise<void>((resolve) => (done = resolve));
    let handled = false;
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (handled) return;
      handled = true;
      // The container's main process is gone: so is everything else in its PID namespace.
      void killMarked(mark).catch(() => 0).then(() => {
        done();
        this.exited(run, code, signal, startedAt);
      });
    };
    child.once('exit', onExit);
    child.once('error', (err) => {
      run.logs.append(`${err.message}\n`);
      onExit(128, null);
    });
    if (!this.probeTimer) this.probeTimer = setInterval(() => void this.probe(), s.probeIntervalMs);
  }

  private exited(run: ContainerRun, code: number | null, signal: NodeJS.Signals | null, startedAt: string): void {
    const signo = signal ? constants.signals[signal] : undefined;
    const exitCode = code ?? 128 + (signo ?? 0);
    run.child = undefined;
    run.ready = false;
    run.state = {
      terminated: { exitCode, ...(signo !== undefined ? { signal: signo } : {}), reason: exitCode === 0 ? 'Completed' : 'Error', startedAt, finishedAt: timestamp() },
    };
    if (this.removed) return;
    if (this.terminating) {
      this.maybeFinalize();
      return;
    }
    const policy = this.restartPolicy;
    if (policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0)) {
      run.lastState = run.state;
      run.restartCount++;
      const backoff = Math.min(5000, this.kubelet.settings.restartBackoffMs * 2 ** (run.restartCount - 1));
      run.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${backoff}ms restarting failed container=${run.spec.name} pod=${this.name}_${this.ns}(${this.uid})` } };
      this.later(backoff, () => {
        if (this.terminating || this.removed) return;
        try {
          this.spawn(run, { ...this.pod, status: { ...(this.pod.status as object), podIP: this.podIp } });
        } catch (err) {
          run.state = { waiting: { reason: err instanceof ContainerConfigError ? err.reason : 'RunContainerError', message: (err as Error).message } };
        }
        this.publish();
      });
    }
    this.publish();
  }

  private async probe(): Promise<void> {
    if (this.probing || this.removed) return;
    this.probing = true;
    try {
      let changed = false;
      for (const run of this.runs) {
        const p = run.spec.readinessProbe;
        if (!p?.httpGet || !run.child || this.podIp === undefined) continue;
        if (Date.now() - run.startedMs < (p.initialDelaySeconds ?? 0) * 1000) continue;
        const ok = await httpProbe(this.podIp, run.spec, p.httpGet, (p.timeoutSeconds ?? 1) * 1000);
        if (!run.child) continue;
        if (ok) [run.successes, run.failures] = [run.successes + 1, 0];
        else [run.successes, run.failures] = [0, run.failures + 1];
        const ready = run.ready ? run.failures < (p.failureThreshold ?? 3) : run.successes >= (p.successThreshold ?? 1);
        if (ready !== run.ready) [run.ready, changed] = [ready, true];
      }
      if (changed) this.publish();
    } finally {
      this.probing = false;
    }
  }

  private maybeFinalize(): void {
    if (this.finalized || this.runs.some((r) => r.child)) return;
    this.finalized = true;
    this.stopTimers();
    this.publish();
    try {
      this.kubelet.api.store.delete(PODS, this.ns, this.name, { gracePeriodSeconds: 0, preconditions: { uid: this.uid } });
    } catch {
      // Already gone, or a new pod of that name: nothing of ours to remove.
    }
  }

  private stopTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.probeTimer) clearInterval(this.probeTimer);
    if (this.killTimer) clearTimeout(this.killTimer);
    this.probeTimer = undefined;
  }

  /** The pod object is gone: kill what still runs, wait (bounded), remove its directory. */
  async gone(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    this.stopTimers();
    for (const r of this.runs) r.child?.kill('SIGKILL');
    const exits = this.runs.map((r) => (r.child ? r.exited : undefined)).filter((e): e is Promise<void> => e !== undefined);
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 5000).unref())]);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  private condition(type: string, ok: boolean, reason?: string, message?: string): Record<string, unknown> {
    const status = ok ? 'True' : 'False';
    let t = this.transitions.get(type);
    if (t?.status !== status) this.transitions.set(type, (t = { status, at: timestamp() }));
    return { type, status, lastProbeTime: null, lastTransitionTime: t.at, ...(ok || !reason ? {} : { reason, message }) };
  }

  private phase(): string {
    if (this.runs.some((r) => !r.everStarted)) return this.finalized ? 'Failed' : 'Pending';
    const waiting = (r: ContainerRun): boolean => 'waiting' in r.state;
    if (!this.finalized && this.runs.some((r) => r.child || waiting(r))) return 'Running';
    if (this.finalized && this.runs.some((r) => waiting(r))) return 'Failed';
    const failed = this.runs.some((r) => 'terminated' in r.state && r.state.terminated.exitCode !== 0);
    return failed ? 'Failed' : 'Succeeded';
  }

  private publish(): void {
    if (this.removed) return;
    const unready = this.runs.filter((r) => !r.ready).map((r) => r.spec.name);
    const allReady = unready.length === 0 && !this.finalized;
    const phase = this.phase();
    const why = phase === 'Succeeded' || phase === 'Failed' ? 'PodCompleted' : 'ContainersNotReady';
    const msg = `containers with unready status: [${unready.join(' ')}]`;
    const status: Record<string, unknown> = {
      phase,
      conditions: [
        this.condition('PodReadyToStartContainers', this.podIp !== undefined && !this.finalized),
        this.condition('Initialized', true),
        this.condition('Ready', allReady, why, msg),
        this.condition('ContainersReady', allReady, why, msg),
        this.condition('PodScheduled', true),
      ],
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      ...(this.podIp !== undefined ? { podIP: this.podIp, podIPs: [{ ip: this.podIp }] } : {}),
      ...(this.startTime !== undefined ? { startTime: this.startTime } : {}),
      containerStatuses: this.runs.map((r) => ({
        name: r.spec.name,
        state: r.state,
        lastState: r.lastState ?? {},
        ready: r.ready,
        restartCount: r.restartCount,
        image: r.spec.image ?? '',
        imageID: `stand-in://${r.spec.image ?? ''}`,
        ...(r.containerID !== undefined ? { containerID: r.containerID } : {}),
        started: r.child !== undefined,
      })),
      qosClass: (this.pod.status as { qosClass?: string } | undefined)?.qosClass ?? 'BestEffort',
    };
    this.kubelet.api.store.mutate(PODS, this.ns, this.name, (p) => {
      if (p.metadata.uid === this.uid) p.status = status;
    });
  }
}
