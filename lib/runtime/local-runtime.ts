/**
 * The embedded default's runtime: each tenant's pod is the shim (agent/shim.ts) as a child process
 * on 127.0.0.1 with its own ports, its workspace under DATA_DIR, its log in
 * `DATA_DIR/tenants/<id>/agent.log` (the local `kubectl logs`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import type { Logger } from '../logger.js';
import { RuntimeError } from '../errors.js';
import { freePort } from '../util/free-port.js';
import type { Tenant } from '../registry/tenant.js';
import type { PresignedState } from '../state/state-store.js';
import { podNameOf, type Runtime, type StartResult, type StopOptions, type TenantInstance } from './runtime.js';

const SHIM_ENTRY = fileURLToPath(new URL('../../agent/shim.ts', import.meta.url));

export interface LocalRuntimeOptions {
  dataDir: string;
  log: Logger;
  warmPoolSecret: string;
  /** A shell command line for the agent (AGENT_COMMAND); the reference agent when unset. */
  agentCommand?: string | undefined;
  readyTimeoutS?: number;
  checkpointIntervalS?: number;
  logLevel?: string;
}

interface Child {
  tenantId: string;
  process: ChildProcess;
  instance: TenantInstance;
  shimPort: number;
  ready: boolean;
  exited: Promise<void>;
}

export class LocalRuntime implements Runtime {
  readonly kind = 'local' as const;
  private readonly children = new Map<string, Child>();
  private readonly exitListeners: Array<(tenantId: string, podName: string) => void> = [];
  /** Stops in progress: a new start of the same tenant waits for the old one's final checkpoint. */
  private readonly stopping = new Map<string, Promise<void>>();

  constructor(private readonly o: LocalRuntimeOptions) {
    if (!o.dataDir || !o.log || !o.warmPoolSecret) throw new TypeError('LocalRuntime: dataDir, log and warmPoolSecret are required');
  }

  onExit(listener: (tenantId: string, podName: string) => void): void {
    this.exitListeners.push(listener);
  }

  async start(tenant: Tenant, state: PresignedState): Promise<StartResult> {
    const id = tenant.tenant_id;
    await this.stopping.get(id);
    const live = await this.find(id);
    if (live) return { instance: live, path: 'warm' };
    const dir = path.join(this.o.dataDir, 'tenants', id);
    mkdirSync(path.join(dir, 'workspace'), { recursive: true });
    const [shimPort, agentPort] = [await freePort(), await freePort()];
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? dir,
      SHIM_PORT: String(shimPort), SHIM_HOST: '127.0.0.1', AGENT_PORT: String(agentPort),
      WORKSPACE: path.join(dir, 'workspace'), TENANT_ID: id, BOT_TOKEN: tenant.bot_token,
      STATE_GET_URL: state.getUrl, STATE_PUT_URL: state.putUrl, WARM_POOL_SECRET: this.o.warmPoolSecret,
      CHECKPOINT_INTERVAL_S: String(this.o.checkpointIntervalS ?? 60),
      AGENT_READY_TIMEOUT_S: String(this.o.readyTimeoutS ?? 60),
      LOG_LEVEL: this.o.logLevel ?? 'info',
    };
    if (this.o.agentCommand) env.AGENT_COMMAND = this.o.agentCommand;
    const logFile = createWriteStream(path.join(dir, 'agent.log'), { flags: 'a' });
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), SHIM_ENTRY], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(logFile, { end: false });
    child.stderr?.pipe(logFile, { end: false });
    const instance: TenantInstance = { tenantId: id, podName: podNameOf(id), address: `127.0.0.1:${agentPort}`, ip: '127.0.0.1' };
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const entry: Child = { tenantId: id, process: child, instance, shimPort, ready: false, exited };
    this.children.set(id, entry);
    void exited.then(() => {
      logFile.end();
      if (this.children.get(id) !== entry) return;
      this.children.delete(id);
      if (entry.ready) {
        this.o.log.warn({ tenant: id, code: child.exitCode, signal: child.signalCode }, 'agent process exited');
        for (const l of this.exitListeners) l(id, instance.podName);
      }
    });
    this.o.log.info({ tenant: id, pod: instance.podName, address: instance.address, log: path.join(dir, 'agent.log') }, 'starting agent process (cold)');
    await this.waitReady(entry, (this.o.readyTimeoutS ?? 60) * 1000);
    entry.ready = true;
    return { instance, path: 'cold' };
  }

  private async waitReady(entry: Child, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void entry.exited.then(() => (exited = true));
    while (Date.now() < deadline) {
      if (exited) throw new RuntimeError(`agent process for ${entry.tenantId} exited before it was ready (exit code ${entry.process.exitCode ?? 'signal'}); see its agent.log`);
      if (await this.isReady(entry.shimPort)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    entry.process.kill('SIGKILL');
    throw new RuntimeError(`agent for ${entry.tenantId} was not ready within ${Math.round(timeoutMs / 1000)}s`);
  }

  private async isReady(shimPort: number): Promise<boolean> {
    try {
      const res = await request(`http://127.0.0.1:${shimPort}/readyz`, { headersTimeout: 1000, bodyTimeout: 1000 });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  async find(tenantId: string): Promise<TenantInstance | undefined> {
    const entry = this.children.get(tenantId);
    if (!entry || !entry.ready || entry.process.exitCode !== null || entry.process.signalCode !== null) return undefined;
    return (await this.isReady(entry.shimPort)) ? entry.instance : undefined;
  }

  async stop(tenantId: string, options: StopOptions = {}): Promise<boolean> {
    const entry = this.children.get(tenantId);
    if (!entry) {
      await this.stopping.get(tenantId);
      return false;
    }
    this.children.delete(tenantId); // a requested stop is not a crash: no exit listeners
    const graceMs = (options.graceS ?? 30) * 1000;
    entry.process.kill(graceMs === 0 ? 'SIGKILL' : 'SIGTERM');
    const killer = setTimeout(() => entry.process.kill('SIGKILL'), Math.max(graceMs, 1));
    const done = entry.exited.finally(() => {
      clearTimeout(killer);
      this.stopping.delete(tenantId);
    });
    this.stopping.set(tenantId, done);
    await done;
    this.o.log.info({ tenant: tenantId, pod: entry.instance.podName }, 'agent process stopped');
    return true;
  }

  async list(): Promise<TenantInstance[]> {
    return [...this.children.values()].filter((c) => c.ready).map((c) => c.instance);
  }

  /** Test and operator aid: the OS pid of a tenant's shim. */
  pidOf(tenantId: string): number | undefined {
    return this.children.get(tenantId)?.process.pid;
  }

  async close(): Promise<void> {
    await Promise.all([...this.children.keys()].map((id) => this.stop(id)));
  }
}
