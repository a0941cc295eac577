/**
 * The platform in its production shape: every service its own OS process, started as the chart's
 * Deployment starts it and with the env the chart gives it.
 *
 * - The env is not written here: `helm template` (the real helm, test/support/chart.ts) renders the
 *   chart with the test's values, and each Deployment's container env is resolved as the kubelet
 *   does: the image's ENV (Dockerfile), then envFrom (the ConfigMap), then env (secretKeyRef from the
 *   chart's Secret, one key at a time; literal values). Only what a pod has and a host process does
 *   not is then replaced, and named in POD_ONLY: each pod has its own network namespace (here the
 *   container ports become free loopback ports), and the runtime services get the API through
 *   their mounted service-account token (here a kubeconfig for the API stand-in, only for the
 *   Deployments that mount a token: automountServiceAccountToken).
 * - The command is the image's: `docker-entrypoint.sh <args>` in an image-shaped directory
 *   (docker-entrypoint.sh, dist/, package.json, node_modules, as the Dockerfile copies them), so
 *   the entrypoint's `exec node dist/services/<name>/main.js` runs compiled JavaScript as in the
 *   image. dist/ is compiled from the sources once per run into that directory (esbuild, as
 *   scripts/build.mjs does; the image uses tsc: the same transpilation), never the shared dist/,
 *   which other runs rebuild.
 * - Started when the readiness probe of the Deployment (its path and port) answers 200.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';
import { freePort } from '../../lib/util/free-port.js';
import { withParentDeathSignal } from '../../lib/util/parent-death.js';
import { sources } from '../../scripts/build.mjs';
import { renderChart, type Manifest } from './chart.js';
import { parseDockerfile } from './dockerfile.js';
import { ROOT } from './platform.js';
import { ServiceSet, type ServiceProcess } from './services.js';
import { sleep } from './wait.js';

export const PLATFORM_SERVICES = ['ingress', 'forwarder', 'waker', 'janitor', 'pool-keeper', 'dashboard'] as const;
export type PlatformService = (typeof PLATFORM_SERVICES)[number];

/** What a pod has that a process on this host does not: the variables replaced, and why. */
export const POD_ONLY = {
  ports: 'each pod has its own network namespace: its container ports become free loopback ports here',
  KUBECONFIG: 'the mounted service-account token: a kubeconfig for the API stand-in, for Deployments that mount one',
  HOME: "the image's home, not the user's (no ~/.kube/config of the machine)",
} as const;

/** One Deployment as the kubelet would run its container. */
export interface DeploymentRun {
  service: PlatformService;
  /** The container's args (the image's entrypoint gets them). */
  args: string[];
  /** The container's environment: image ENV, then envFrom, then env. */
  env: Record<string, string>;
  /** Container ports by name (http, admin). */
  ports: Record<string, number>;
  readiness: { path: string; port: string };
  terminationGracePeriodSeconds: number;
  /** The pod mounts a service-account token (the runtime services: they talk to the Kubernetes API). */
  apiAccess: boolean;
}

/** The env variable that sets each container port of a service (checked against the rendered value). */
const PORT_ENV: Record<string, (service: PlatformService) => string> = {
  http: (service) => (service === 'dashboard' ? 'DASHBOARD_PORT' : 'INGRESS_PORT'),
  admin: () => 'ADMIN_PORT',
};

const imageEnv = (): Record<string, string> => parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')).env;

/**
 * `helm template` of the chart with `values` (merged over values.yaml) in `namespace`, and every
 * platform Deployment's container resolved as the kubelet would run it.
 */
export interface RenderedRelease {
  deployments: Map<PlatformService, DeploymentRun>;
  /** Everything helm rendered (what `helm install` would apply besides the Deployments). */
  manifests: Manifest[];
}

export async function deploymentsFromChart(values: unknown, namespace: string): Promise<Map<PlatformService, DeploymentRun>> {
  return (await releaseFromChart(values, namespace)).deployments;
}

export async function releaseFromChart(values: unknown, namespace: string): Promise<RenderedRelease> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-shape-values-'));
  let manifests: Manifest[];
  try {
    const file = path.join(dir, 'values.yaml');
    writeFileSync(file, stringify(values), { mode: 0o600 });
    manifests = await renderChart([file], namespace);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const find = (kind: string, name: string): Manifest => {
    const m = manifests.find((x) => x.kind === kind && x.metadata.name === name);
    if (!m) throw new Error(`the rendered chart has no ${kind}/${name}`);
    return m;
  };
  const image = imageEnv();
  const runs = new Map<PlatformService, DeploymentRun>();
  for (const d of manifests.filter((m) => m.kind === 'Deployment')) {
    const service = d.metadata.name as PlatformService;
    if (!PLATFORM_SERVICES.includes(service)) throw new Error(`unexpected Deployment ${service}`);
    const pod = d.spec.template.spec;
    const [container, ...more] = pod.containers as any[];
    if (!container || more.length > 0) throw new Error(`${service}: expected one container`);
    const env: Record<string, string> = { ...image };
    for (const from of container.envFrom ?? []) {
      if (!from.configMapRef) throw new Error(`${service}: envFrom other than a ConfigMap`);
      Object.assign(env, find('ConfigMap', from.configMapRef.name).data);
    }
    for (const e of container.env ?? []) {
      if (e.value !== undefined) env[e.name] = String(e.value);
      else if (e.valueFrom?.secretKeyRef) {
        const ref = e.valueFrom.secretKeyRef;
        const value = (find('Secret', ref.name).stringData ?? {})[ref.key];
        if (value !== undefined) env[e.name] = String(value);
        else if (!ref.optional) throw new Error(`${service}: the Secret ${ref.name} has no ${ref.key} and the reference is not optional`);
      } else throw new Error(`${service}: env ${e.name} has neither value nor secretKeyRef`);
    }
    const ports: Record<string, number> = {};
    for (const p of container.ports ?? []) ports[p.name] = p.containerPort;
    const probe = container.readinessProbe?.httpGet;
    if (!probe) throw new Error(`${service}: no HTTP readiness probe`);
    runs.set(service, {
      service, args: container.args ?? [], env, ports,
      readiness: { path: probe.path, port: String(probe.port) },
      terminationGracePeriodSeconds: pod.terminationGracePeriodSeconds ?? 30,
      apiAccess: pod.automountServiceAccountToken !== false,
    });
  }
  return { deployments: runs, manifests };
}

/** The image's /app: docker-entrypoint.sh, dist/ (compiled now), package.json, node_modules. */
export interface ImageDir {
  dir: string;
  entrypoint: string;
  /** The image's HOME (an empty directory). */
  home: string;
  close(): void;
}

export async function buildImageDir(): Promise<ImageDir> {
  const docker = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
  if (docker.entrypoint.join(' ') !== '/app/docker-entrypoint.sh') throw new Error(`the image's entrypoint changed: ${docker.entrypoint.join(' ')}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-image-'));
  const entrypoint = path.join(dir, 'docker-entrypoint.sh');
  copyFileSync(path.join(ROOT, 'scripts/docker-entrypoint.sh'), entrypoint);
  copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  const { build } = await import('esbuild');
  // scripts/build.mjs's transpilation, into this directory.
  await build({
    entryPoints: sources().files, outdir: path.join(dir, 'dist'), outbase: ROOT, format: 'esm', platform: 'node',
    target: 'node20', sourcemap: true, bundle: false, logLevel: 'error',
  });
  const home = path.join(dir, 'home');
  mkdirSync(home, { mode: 0o700 });
  return { dir, entrypoint, home, close: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface ServiceProcessesOptions {
  deployments: Map<PlatformService, DeploymentRun>;
  image: ImageDir;
  /** A kubeconfig file for the runtime services (stands in for their mounted token). */
  kubeconfig: string;
  /** Which Deployments to run; default every one rendered but the dashboard. */
  services?: PlatformService[];
}

export interface StopResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
}

/** The services of one rendered release, each its own process (ServiceProcess: its own process group). */
export class ServiceProcesses {
  readonly set = new ServiceSet();
  private readonly byName = new Map<PlatformService, ServiceProcess>();
  private readonly probes = new Map<PlatformService, string>();

  private constructor(readonly deployments: Map<PlatformService, DeploymentRun>) {}

  static async create(o: ServiceProcessesOptions): Promise<ServiceProcesses> {
    const sp = new ServiceProcesses(o.deployments);
    const names = o.services ?? [...o.deployments.keys()].filter((s) => s !== 'dashboard');
    for (const name of names) {
      const d = o.deployments.get(name);
      if (!d) throw new Error(`the rendered chart has no Deployment ${name}`);
      const env: Record<string, string> = { ...d.env, HOME: o.image.home };
      const hostPorts: Record<string, number> = {};
      for (const [portName, containerPort] of Object.entries(d.ports)) {
        const variable = PORT_ENV[portName]?.(name);
        if (!variable) throw new Error(`${name}: no setting known for container port ${portName}`);
        if (env[variable] !== String(containerPort)) throw new Error(`${name}: ${variable}=${env[variable]} but its container port ${portName} is ${containerPort}`);
        hostPorts[portName] = await freePort();
        env[variable] = String(hostPorts[portName]);
      }
      // 0.0.0.0 in a pod is its own address; on this shared host, loopback.
      if (env.INGRESS_HOST === '0.0.0.0') env.INGRESS_HOST = '127.0.0.1';
      if (d.apiAccess) env.KUBECONFIG = o.kubeconfig;
      const probePort = hostPorts[d.readiness.port];
      if (!probePort) throw new Error(`${name}: the readiness probe's port ${d.readiness.port} is not a container port`);
      sp.probes.set(name, `http://127.0.0.1:${probePort}${d.readiness.path}`);
      // Each is its own process group (ServiceProcess), so a test process killed before its
      // teardown (a timeout) would leave them running: the kernel kills them with it instead.
      const command = withParentDeathSignal('/bin/sh', [o.image.entrypoint, ...d.args], 'KILL');
      sp.byName.set(name, sp.set.add({
        name,
        entry: `dist/services/${name}/main.js`,
        command: [command.file, ...command.args],
        env,
        keep: ['warm pool hit', 'warm pool miss', 'idle check: terminating', 'admin command', 'stopping', 'stopped', 'sent the answer kept'],
      }));
      if (name === 'ingress') sp.ingressUrl = `http://127.0.0.1:${hostPorts.http}`;
      if (name === 'dashboard') sp.dashboardUrl = `http://127.0.0.1:${hostPorts.http}`;
    }
    return sp;
  }

  ingressUrl = '';
  /** The dashboard's URL, when it runs. */
  dashboardUrl = '';

  get(name: PlatformService): ServiceProcess {
    const s = this.byName.get(name);
    if (!s) throw new Error(`${name} is not one of these services`);
    return s;
  }

  get names(): PlatformService[] {
    return [...this.byName.keys()];
  }

  /** Starts one service and waits for its readiness probe (bounded), as the kubelet marks it Ready. */
  async start(name: PlatformService, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const service = this.get(name);
    await service.start(timeoutMs);
    const url = this.probes.get(name) as string;
    for (;;) {
      const status = await request(url, { headersTimeout: 2000, bodyTimeout: 2000 }).then(async (r) => (await r.body.dump(), r.statusCode), () => 0);
      if (status === 200) return;
      if (!service.running) throw new Error(`${name} exited before it was ready (${JSON.stringify(service.exit)}): ${service.stderrTail.join('\n').slice(-1500)}`);
      if (Date.now() > deadline) throw new Error(`${name}: ${url} did not answer 200 within ${timeoutMs} ms (last ${status})`);
      await sleep(100);
    }
  }

  async startAll(timeoutMs?: number): Promise<void> {
    await Promise.all(this.names.map((n) => this.start(n, timeoutMs)));
  }

  /**
   * SIGTERM to the service alone, as the kubelet sends it, and its exit. Bounded by its grace: past
   * it (or past ServiceProcess.kill's own 20 s) it is SIGKILLed, and the result says so.
   */
  async stop(name: PlatformService): Promise<StopResult> {
    const s = this.get(name);
    const graceMs = (this.deployments.get(name)?.terminationGracePeriodSeconds ?? 30) * 1000;
    const started = Date.now();
    const killed = setTimeout(() => void s.kill('SIGKILL'), graceMs);
    await s.kill('SIGTERM', { group: false });
    clearTimeout(killed);
    return { code: s.exit?.code ?? null, signal: s.exit?.signal ?? null, ms: Date.now() - started };
  }

  /** Kills every process group any service ever ran as. */
  close(): Promise<void> {
    return this.set.close();
  }
}
