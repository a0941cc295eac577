/**
 * The agent as a child process of the shim: its environment (no shim secrets), its start, its
 * readiness (the gateway's `GET /health`) and its stop (SIGTERM, bounded wait, SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { RuntimeError, TimeoutError } from '../lib/errors.js';
import { isListening } from '../lib/util/free-port.js';
import type { Logger } from '../lib/logger.js';
import type { AgentCommand, TenantBinding } from './shim-config.js';

export interface AgentExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Variables of the shim that the agent must not inherit: the agent runs code an LLM chose, and
 * these open the warm pool (claim secret), the tenant's state (presigned URLs) or AWS.
 */
const SHIM_ONLY = new Set(['WARM_POOL_SECRET', 'STATE_GET_URL', 'STATE_PUT_URL', 'BOT_TOKEN', 'WARM',
  'SHIM_PORT', 'SHIM_HOST', 'SHIM_SUPERVISOR_PID', 'AGENT_COMMAND', 'CHECKPOINT_INTERVAL_S', 'AGENT_READY_TIMEOUT_S', 'AGENT_STOP_TIMEOUT_S']);

export function buildAgentEnv(
  base: NodeJS.ProcessEnv,
  binding: TenantBinding,
  agent: { port: number; workspace: string; host: string },
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined && !SHIM_ONLY.has(k) && !k.startsWith('AWS_')) env[k] = v;
  }
  Object.assign(env, binding.env);
  // The agent listens where the shim does (pod IP in Kubernetes, loopback locally), unless told.
  env.HOST ??= agent.host;
  // Last, so a claim's env cannot redirect the port or workspace the shim relies on.
  env.PORT = String(agent.port);
  env.WORKSPACE = agent.workspace;
  env.TENANT_ID = binding.tenantId;
  if (binding.botToken !== undefined) env.TELEGRAM_BOT_TOKEN = binding.botToken;
  else delete env.TELEGRAM_BOT_TOKEN;
  return env;
}

export interface AgentProcessOptions {
  command: AgentCommand;
  env: Record<string, string>;
  cwd: string;
  port: number;
  log: Logger;
}

export class AgentProcess {
  readonly pid: number;
  /** Resolves when the agent has exited, however that happened. */
  readonly exited: Promise<AgentExit>;
  private readonly child: ChildProcess;
  private readonly port: number;
  /** Where the agent listens: its HOST (the pod IP under the simulated kubelet), loopback for any-address. */
  private readonly probeHost: string;
  private exit: AgentExit | undefined;

  constructor(options: AgentProcessOptions) {
    const { command, env, cwd, port } = options;
    // Own process group, so stop() reaches what `sh -c` started too; output goes straight to
    // the shim's stdout/stderr (the pod's log), unprefixed.
    this.child = spawn(command.file, command.args, { cwd, env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    this.port = port;
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

  /** Polls `GET /health` until 200 (every 5 ms, after 3 s every 50 ms); rejects when the agent exits or time runs out. */
  async waitReady(timeoutMs: number): Promise<void> {
    const probingSince = Date.now();
    const deadline = probingSince + timeoutMs;
    const url = `http://${this.probeHost.includes(':') ? `[${this.probeHost}]` : this.probeHost}:${this.port}/health`;
    // Every 5 ms for the first 3 s (a wake waits for this probe, and most agents listen within
    // ~100 ms; a refused connect on loopback costs next to nothing), then every 50 ms.
    while (Date.now() < deadline) {
      if (this.exit) throw new RuntimeError(`agent exited before ready (code ${this.exit.code}, signal ${this.exit.signal})`);
      try {
        const res = await request(url, { headersTimeout: 1000, bodyTimeout: 1000 });
        await res.body.dump();
        if (res.statusCode === 200) return;
      } catch {
        // Not listening yet.
      }
      await sleep(Date.now() - probingSince < 3_000 ? 5 : 50);
    }
    if (this.exit) throw new RuntimeError(`agent exited before ready (code ${this.exit.code}, signal ${this.exit.signal})`);
    throw new TimeoutError(`agent not ready after ${Math.round(timeoutMs / 1000)}s (no 200 from GET /health on port ${this.port})`);
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
