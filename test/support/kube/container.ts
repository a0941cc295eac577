/**
 * What the simulated kubelet does for one container: resolve its environment the way the real
 * kubelet does (plain values with $(VAR) expansion, secretKeyRef, fieldRef, envFrom secretRef; a
 * missing secret or key is a CreateContainerConfigError), map volume mounts and the image's own
 * paths onto per-pod host directories, spawn the process, keep its output, and run HTTP probes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { KubeObject } from './objects.js';
import type { ObjectStore } from './store.js';
import { RESOURCES } from './objects.js';

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
  };
}
export interface HttpGetAction { path?: string; port: number | string; host?: string }
export interface Probe {
  httpGet?: HttpGetAction;
  initialDelaySeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}
export interface Container {
  name: string;
  image?: string;
  env?: EnvVar[];
  envFrom?: Array<{ prefix?: string; secretRef?: { name: string; optional?: boolean }; configMapRef?: { name: string; optional?: boolean } }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  readinessProbe?: Probe;
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string }>;
}
interface Volume { name: string; emptyDir?: object; persistentVolumeClaim?: { claimName: string }; secret?: { secretName: string; optional?: boolean } }

/** The container cannot be created yet: reason and message for its `waiting` state. */
export class ContainerConfigError extends Error {
  constructor(readonly reason: 'CreateContainerConfigError' | 'ContainerCreating', message: string) {
    super(message);
  }
}

const SECRETS = RESOURCES.find((r) => r.resource === 'secrets');
const rec = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, unknown> : {});

function secretData(store: ObjectStore, ns: string, name: string): Record<string, string> | undefined {
  if (!SECRETS) return undefined;
  const secret = store.find(SECRETS, ns, name);
  if (secret === undefined) return undefined;
  return Object.fromEntries(Object.entries(rec(secret.data)).map(([k, v]) => [k, Buffer.from(String(v), 'base64').toString('utf8')]));
}

function fieldValue(pod: KubeObject, fieldPath: string): string {
  const meta = pod.metadata;
  const status = rec(pod.status);
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (m) return rec(meta[m[1] ?? ''])[m[2] ?? ''] as string ?? '';
  const fields: Record<string, unknown> = {
    'metadata.name': meta.name, 'metadata.namespace': meta.namespace, 'metadata.uid': meta.uid,
    'spec.nodeName': rec(pod.spec).nodeName, 'spec.serviceAccountName': rec(pod.spec).serviceAccountName ?? 'default',
    'status.podIP': status.podIP, 'status.hostIP': status.hostIP, 'status.podIPs': status.podIP,
  };
  if (!(fieldPath in fields)) throw new ContainerConfigError('CreateContainerConfigError', `unsupported fieldPath: ${fieldPath}`);
  return String(fields[fieldPath] ?? '');
}

/** `$(VAR)` from earlier variables; `$$(` stays a literal `$(`; unknown references are kept. */
const expand = (value: string, env: Record<string, string>): string =>
  value.replace(/\$\$\(|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name: string | undefined) =>
    (name === undefined ? '$(' : env[name] ?? all));

/** The container's own variables, resolved against the pod (podIP must already be set) and its Secrets. */
export function resolveEnv(store: ObjectStore, pod: KubeObject, c: Container): Record<string, string> {
  const ns = pod.metadata.namespace ?? '';
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.secretRef) {
      const data = secretData(store, ns, from.secretRef.name);
      if (data === undefined) {
        if (from.secretRef.optional) continue;
        throw new ContainerConfigError('CreateContainerConfigError', `secret "${from.secretRef.name}" not found`);
      }
      for (const [k, v] of Object.entries(data)) env[`${from.prefix ?? ''}${k}`] = v;
    } else if (from.configMapRef && !from.configMapRef.optional) {
      throw new ContainerConfigError('CreateContainerConfigError', `configmap "${from.configMapRef.name}" not found`);
    }
  }
  for (const v of c.env ?? []) {
    if (v.valueFrom === undefined) {
      env[v.name] = expand(v.value ?? '', env);
      continue;
    }
    const { secretKeyRef, configMapKeyRef, fieldRef } = v.valueFrom;
    if (secretKeyRef) {
      const data = secretData(store, ns, secretKeyRef.name);
      if (data === undefined) {
        if (secretKeyRef.optional) continue;
        throw new ContainerConfigError('CreateContainerConfigError', `secret "${secretKeyRef.name}" not found`);
      }
      const value = data[secretKeyRef.key];
      if (value === undefined) {
        if (secretKeyRef.optional) continue;
        throw new ContainerConfigError('CreateContainerConfigError', `couldn't find key ${secretKeyRef.key} in Secret ${ns}/${secretKeyRef.name}`);
      }
      env[v.name] = value;
    } else if (fieldRef) {
      env[v.name] = fieldValue(pod, fieldRef.fieldPath);
    } else if (configMapKeyRef && !configMapKeyRef.optional) {
      throw new ContainerConfigError('CreateContainerConfigError', `configmap "${configMapKeyRef.name}" not found`);
    }
  }
  return env;
}

/**
 * Host directories for the container's mounts (emptyDir and secret volumes under the pod's
 * directory, PVCs under `<dataDir>/pvc/<ns>/<claim>` so they outlive the pod) and for the image's
 * own paths; env values under a mapped path are rewritten to the host path.
 */
export function mapPaths(store: ObjectStore, pod: KubeObject, c: Container, podDir: string, dataDir: string, imagePaths: string[]): Array<[string, string]> {
  const ns = pod.metadata.namespace ?? '';
  const volumes = (rec(pod.spec).volumes ?? []) as Volume[];
  const map: Array<[string, string]> = [];
  for (const mount of c.volumeMounts ?? []) {
    const vol = volumes.find((v) => v.name === mount.name);
    if (!vol) throw new ContainerConfigError('CreateContainerConfigError', `cannot find volume "${mount.name}" to mount into container "${c.name}"`);
    let dir = path.join(podDir, 'volumes', vol.name);
    if (vol.persistentVolumeClaim) dir = path.join(dataDir, 'pvc', ns, vol.persistentVolumeClaim.claimName);
    if (vol.secret) {
      const data = secretData(store, ns, vol.secret.secretName);
      if (data === undefined && !vol.secret.optional) {
        throw new ContainerConfigError('ContainerCreating', `MountVolume.SetUp failed for volume "${vol.name}" : secret "${vol.secret.secretName}" not found`);
      }
      mkdirSync(dir, { recursive: true });
      for (const [k, v] of Object.entries(data ?? {})) writeFileSync(path.join(dir, k), v, { mode: 0o600 });
    }
    if (mount.subPath) dir = path.join(dir, mount.subPath);
    mkdirSync(dir, { recursive: true });
    map.push([mount.mountPath.replace(/\/+$/, ''), dir]);
  }
  for (const p of imagePaths) {
    if (!map.some(([m]) => m === p)) {
      const dir = path.join(podDir, 'rootfs', p);
      mkdirSync(dir, { recursive: true });
      map.push([p.replace(/\/+$/, ''), dir]);
    }
  }
  return map.sort((a, b) => b[0].length - a[0].length);
}

export function rewritePaths(env: Record<string, string>, map: Array<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    const hit = map.find(([m]) => v === m || v.startsWith(`${m}/`));
    out[k] = hit ? hit[1] + v.slice(hit[0].length) : v;
  }
  return out;
}

/** Container ports the process will listen on: declared ports and numeric `*_PORT` variables. */
export function portsOf(c: Container, env: Record<string, string>): number[] {
  const ports = new Set<number>((c.ports ?? []).map((p) => p.containerPort));
  for (const [k, v] of Object.entries(env)) if (/PORT$/.test(k) && /^[0-9]{1,5}$/.test(v)) ports.add(Number(v));
  return [...ports].filter((p) => p > 0 && p < 65_536);
}

/** True when every port can be bound on `ip` right now. */
export async function portsFree(ip: string, ports: number[]): Promise<boolean> {
  for (const port of ports) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, ip, () => s.close(() => resolve(true)));
    });
    if (!ok) return false;
  }
  return true;
}

/** One HTTP GET probe: success is a status from 200 to 399 within the timeout. */
export function httpProbe(ip: string, c: Container, probe: HttpGetAction, timeoutMs: number): Promise<boolean> {
  const port = typeof probe.port === 'number' ? probe.port : c.ports?.find((p) => p.name === probe.port)?.containerPort;
  if (port === undefined) return Promise.resolve(false);
  return new Promise((resolve) => {
    const req = http.get({ host: probe.host ?? ip, port, path: probe.path ?? '/', agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
  });
}

/** Output kept per container (stdout and stderr interleaved, as `kubectl logs` shows them). */
export class LogBuffer {
  private text = '';
  constructor(private readonly limit = 8 * 1024 * 1024) {}
  append(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > this.limit) this.text = this.text.slice(-this.limit);
  }
  toString(): string {
    return this.text;
  }
}

/**
 * Marks every process of one container run (inherited through the environment), so all of them
 * can be found again after their parent died: a container's processes share a PID namespace and
 * die with it, however they were started (the shim starts its agent in its own process group).
 */
export const CONTAINER_MARK = 'STAND_IN_CONTAINER_ID';

/** SIGKILLs every live process carrying `CONTAINER_MARK=<id>` (Linux /proc; a no-op elsewhere). */
export async function killMarked(id: string): Promise<number> {
  const needle = Buffer.from(`${CONTAINER_MARK}=${id}\0`);
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((d) => /^[0-9]+$/.test(d) && Number(d) !== process.pid);
  } catch {
    return 0;
  }
  let killed = 0;
  await Promise.all(pids.map(async (pid) => {
    try {
      if ((await readFile(`/proc/${pid}/environ`)).includes(needle)) {
        process.kill(Number(pid), 'SIGKILL');
        killed++;
      }
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }));
  return killed;
}

export function startProcess(argv: string[], env: Record<string, string>, cwd: string, logs: LogBuffer): ChildProcess {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('empty container command');
  const child = spawn(file, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => logs.append(d));
  child.stderr?.on('data', (d: Buffer) => logs.append(d));
  return child;
}
