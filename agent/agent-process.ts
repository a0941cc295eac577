/**
 * The agent as a child process of the shim: its environment (no shim secrets), its start as its
 * profile says, its readiness (the profile's probes) and its stop (SIGTERM, bounded wait, SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { RuntimeError, TimeoutError } from '../lib/errors.js';
import { isListening } from '../lib/util/free-port.js';
import { withParentDeathSignal } from '../lib/util/parent-death.js';
import type { Logger } from '../lib/logger.js';
import { programReads, sandboxCommand, type SandboxSettings } from './agent-sandbox.js';
import type { TenantBinding } from './shim-config.js';
import type { AgentLaunch, Probe } from './profiles/profile.js';

export interface AgentExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Variables of the shim that the agent must not inherit: the agent runs code an LLM chose, and
 * these open the warm pool (claim secret), the tenant's state (presigned URLs), the model provider
 * (a profile hands the key on under the name its agent reads) or AWS.
 */
const SHIM_ONLY = new Set(['WARM_POOL_SECRET', 'STATE_GET_URL', 'STATE_PUT_URL', 'STATE_LEGACY_GET_URL', 'BOT_TOKEN', 'WARM',
  'TENANT_WEBHOOK_SECRET', 'AGENT_TOKEN_SHA256', 'AGENT_LLM_API_KEY', 'STATE_MAX_BYTES', 'AGENT_INTERNAL_PORT', 'AGENT_PID_FILE',
  'SHIM_PORT', 'SHIM_HOST', 'SHIM_SUPERVISOR_PID', 'SHIM_PREWARM', 'AGENT_COMMAND', 'CHECKPOINT_INTERVAL_S', 'AGENT_READY_TIMEOUT_S', 'AGENT_STOP_TIMEOUT_S',
  'AGENT_SANDBOX', 'AGENT_SANDBOX_HIDE', 'AGENT_SANDBOX_UID', 'AGENT_SANDBOX_GID']);

/** The shim's environment minus its secrets, plus a claim's extra variables: what every agent starts from. */
export function shimBaseEnv(base: NodeJS.ProcessEnv, binding: TenantBinding): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined && !SHIM_ONLY.has(k) && !k.startsWith('AWS_')) env[k] = v;
  }
  Object.assign(env, binding.env);
  return env;
}

export interface AgentProcessOptions {
  launch: AgentLaunch;
  log: Logger;
  /** Run it in the local sandbox (agent/agent-sandbox.ts) with this workspace; else as a plain child. */
  sandbox?: { settings: SandboxSettings; workspace: string; shimOwn?: string[] } | undefined;
}

export class AgentProcess {
  readonly pid: number;
  /** Resolves when the agent has exited, however that happened. */
  readonly exited: Promise<AgentExit>;
  private readonly child: ChildProcess;
  private readonly launch: AgentLaunch;
  /** Where the agent listens: its HOST (the pod IP under the simulated kubelet), loopback for any-address. */
  private readonly probeHost: string;
  private exit: AgentExit | undefined;
  /** Probe addresses that accepted a connection once: from then on only the HTTP probe is asked. */
  private readonly listening = new Set<string>();

  constructor(options: AgentProcessOptions) {
    const { command, cwd } = options.launch;
    let { env } = options.launch;
    this.launch = options.launch;
    const box = options.sandbox;
    // In the sandbox only the workspace and a private /tmp are writable: a HOME elsewhere (the
    // platform user's) would be unreadable or read-only there.
    if (box && !(env.HOME && path.resolve(env.HOME).startsWith(`${path.resolve(box.workspace)}/`))) env = { ...env, HOME: '/tmp' };
    const inner = box ? sandboxCommand(box.settings, { workspace: box.workspace, reads: programReads(command), shimOwn: box.shimOwn }, command) : command;
    // Own process group, so stop() reaches what `sh -c` started too (and, sandboxed, the agent
    // inside its namespaces); output goes straight to the shim's stdout/stderr (the pod's log),
    // unprefixed. SIGKILLed by the kernel if the shim dies first: an agent never outlives its shim
    // (it would hold the port and the workspace); sandboxed, unshare's --kill-child and the end of
    // its pid namespace take the agent with it.
    const run = withParentDeathSignal(inner.file, inner.args, 'KILL');
    // Sandboxed, the script enters the workspace after its mounts (a cwd taken in before them
    // would be a way back into the hidden DATA_DIR through `..`).
    this.child = spawn(run.file, run.args, { cwd: box ? '/' : cwd, env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    this.probeHost = probeHostOf(env.HOST);
    this.exited = new Promise<AgentExit>((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      // spawn failures (ENOENT, EACCES) come as 'error' without 'exit'.
      this.child.once('error', (err) => {
        options.log.error({ err: { message: err.message, code: (err as { code?: string }).code } }, 'agent failed to start');
        this.exit ??= { code: 127, signal: null };
        resolve(this.exit);
      });
    });
    this.pid = this.child.pid ?? -1;
  }

  get hasExited(): boolean {
    return this.exit !== undefined;
  }

  /**
   * Polls the profile's readiness probes until every one passes (every 5 ms for the first 3 s, then
   * every 50 ms); rejects when the agent exits or time runs out, naming the probe that still fails.
   */
  async waitReady(timeoutMs: number): Promise<void> {
    const probingSince = Date.now();
    const deadline = probingSince + timeoutMs;
    // A wake waits for this; most agents listen within ~100 ms and a refused connect on loopback
    // costs next to nothing. Probes that passed are not asked again.
    const pending = [...this.launch.readiness];
    while (Date.now() < deadline) {
      if (this.exit) throw new RuntimeError(`agent exited before ready (code ${this.exit.code}, signal ${this.exit.signal})`);
      while (pending.length > 0 && (await this.passes(pending[0] as Probe))) pending.shift();
      if (pending.length === 0) return;
      await sleep(Date.now() - probingSince < 3_000 ? 5 : 50);
    }
    if (this.exit) throw new RuntimeError(`agent exited before ready (code ${this.exit.code}, signal ${this.exit.signal})`);
    const failing = pending[0] as Probe;
    throw new TimeoutError(`agent not ready after ${Math.round(timeoutMs / 1000)}s (${failing.describe} on port ${failing.port} did not pass)`);
  }

  /** The agent process answers its liveness probe now. */
  alive(): Promise<boolean> {
    return this.passes(this.launch.liveness);
  }

  private async passes(probe: Probe): Promise<boolean> {
    const host = probe.loopback ? '127.0.0.1' : this.probeHost;
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${probe.port}${probe.path}`;
    // Until the agent listens, a bare connect tells the same as an HTTP request at a fraction of
    // its CPU: the probe runs every 5 ms, in twenty shims at once during a burst of wakes.
    if (!this.listening.has(`${host}:${probe.port}`)) {
      if (!(await isListening(host, probe.port, 1000))) return false;
      this.listening.add(`${host}:${probe.port}`);
    }
    try {
      const res = await request(url, {
        method: probe.method ?? 'GET', headersTimeout: 1000, bodyTimeout: 1000,
        ...(probe.headers ? { headers: probe.headers } : {}), ...(probe.body !== undefined ? { body: probe.body } : {}),
      });
      if (res.statusCode !== 200 && !probe.ok) {
        await res.body.dump();
        return false;
      }
      const body = await res.body.text();
      return probe.ok ? probe.ok(res.statusCode, body) : true;
    } catch {
      return false; // not listening yet
    }
  }

  /** SIGTERM, up to `timeoutMs` for a clean exit, then SIGKILL; also sweeps the process group. */
  async stop(timeoutMs: number): Promise<AgentExit & { killed: boolean }> {
    let killed = false;
    if (!this.exit) {
      this.signal('SIGTERM');
      const timer = sleep(timeoutMs).then(() => 'timeout' as const);
      if ((await Promise.race([this.exited, timer])) === 'timeout') {
        killed = true;
        this.signal('SIGKILL');
      }
    }
    const exit = await this.exited;
    // Leftovers of the group (children of `sh -c`) must not write after the final checkpoint.
    this.signal('SIGKILL');
    return { ...exit, killed };
  }

  private signal(sig: NodeJS.Signals): void {
    if (this.pid <= 0) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      // ESRCH: the group is already gone.
    }
  }
}

/** Where to reach an agent told to listen on HOST: that address, or loopback for any-address. */
export function probeHostOf(host: string | undefined): string {
  const h = host?.trim();
  return !h || h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h;
}

/**
 * Refuses to start an agent on a port something already answers on: the readiness probe would take
 * that process's answer for the new agent's, and the platform would route the tenant's messages to
 * it (a local-runtime bug once did exactly that; this is the shim's own line of defence).
 */
export async function assertPortFree(host: string, port: number, timeoutMs = 500): Promise<void> {
  if (await isListening(host, port, timeoutMs)) throw new RuntimeError(`agent port ${host}:${port} is already taken by another process: not starting the agent there`);
}
