/**
 * One shim child process of the local runtime: spawned with its env, output appended to a log file
 * (the local `kubectl logs`), readiness and liveness read from the shim's own HTTP endpoints.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { shimAccepted } from './shim-admin.js';
import { withParentDeathSignal } from '../util/parent-death.js';

const SHIM_ENTRY = fileURLToPath(new URL('../../agent/shim.ts', import.meta.url));

/**
 * A shim that died hard (SIGKILL, crash) could not stop its agent, which runs in its own process
 * group: kill that group, as a pod's death takes every process of its container with it.
 */
function reapAgent(pidFile: string): void {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8'));
    if (Number.isInteger(pid) && pid > 1) process.kill(-pid, 'SIGKILL');
  } catch {
    /* no agent was started, or it is gone already */
  }
  rmSync(pidFile, { force: true });
}

/** True while `pid` is a live shim process (on Linux checked by its command line, so a reused pid is not). */
function isShim(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(SHIM_ENTRY);
  } catch {
    return true; // no /proc: trust the pid
  }
}

/**
 * A shim of this workspace left by a previous runtime process that died (its `shim.pid` is still
 * there, its process still alive): it is stopping on its own (it watches its supervisor, see
 * agent/shim.ts) and saves the tenant's state on the way out. Waits, bounded, until it is gone, so
 * that a new agent restores that state and not an older one. Resolves with its pid if there was one.
 */
export async function waitForOrphanShim(dir: string, timeoutMs: number): Promise<number | undefined> {
  const file = path.join(dir, 'shim.pid');
  let pid: number;
  try {
    pid = Number(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  const deadline = Date.now() + timeoutMs;
  const found = Number.isInteger(pid) && pid > 1 && isShim(pid);
  while (found && isShim(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return found ? pid : undefined;
}

export class ShimProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  private done = false;

  constructor(readonly name: string, readonly shimPort: number, readonly agentPort: number, env: Record<string, string>, logPath: string) {
    mkdirSync(path.dirname(logPath), { recursive: true });
    const pidFile = path.join(path.dirname(logPath), 'agent.pid');
    // The shim (and the agent, which inherits its stdout) write the log file directly, not through
    // a pipe to this process: if this process dies, their next log line must not die of EPIPE.
    const logFd = openSync(logPath, 'a');
    try {
      // SIGTERM from the kernel if this process dies, however: the shim stops its agent and saves the
      // state at once (the supervisor watch in agent/shim.ts is the fallback where setpriv is missing).
      const run = withParentDeathSignal(process.execPath, ['--import', import.meta.resolve('tsx'), SHIM_ENTRY], 'TERM');
      this.child = spawn(run.file, run.args, {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', SHIM_HOST: '127.0.0.1', SHIM_PORT: String(shimPort),
          AGENT_PORT: String(agentPort), AGENT_PID_FILE: pidFile, SHIM_SUPERVISOR_PID: String(process.pid), ...env,
        },
        stdio: ['ignore', logFd, logFd],
      });
    } finally {
      closeSync(logFd);
    }
    this.exited = new Promise((resolve) => this.child.once('exit', () => {
      this.done = true;
      reapAgent(pidFile);
      resolve();
    }));
  }

  /**
   * Records this shim's pid as serving the tenant whose directory is `dir` (`shim.pid`), for a later
   * runtime process to find if this one dies (waitForOrphanShim); removed when the shim exits.
   */
  serves(dir: string): void {
    const pid = this.child.pid;
    if (!pid || this.done) return;
    const file = path.join(dir, 'shim.pid');
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, String(pid));
    void this.exited.then(() => {
      try {
        if (Number(readFileSync(file, 'utf8')) === pid) rmSync(file, { force: true });
      } catch {
        /* gone already */
      }
    });
  }

  get alive(): boolean {
    return !this.done;
  }

  get address(): string {
    return `127.0.0.1:${this.agentPort}`;
  }

  /** `/readyz`: the agent answers. */
  ready(): Promise<boolean> {
    return this.probe('/readyz');
  }

  /**
   * `/healthz` answered once: the shim is up. It does not go down again but by exiting, which
   * `alive` tells (and a claim to a shim that exited fails, so it is caught either way).
   */
  seenHealthy = false;

  /** `/healthz`: the shim itself is up (a warm member is claimable once this answers). */
  async healthy(): Promise<boolean> {
    const ok = await this.probe('/healthz');
    if (ok) this.seenHealthy = true;
    return ok && !this.done;
  }

  private async probe(p: string): Promise<boolean> {
    if (this.done) return false;
    try {
      const res = await request(`http://127.0.0.1:${this.shimPort}${p}`, { headersTimeout: 1000, bodyTimeout: 1000 });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  /** Polls `check` until true, the process exits, or the deadline passes. */
  async waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<'ok' | 'exited' | 'timeout'> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.done) return 'exited';
      if (await check()) return 'ok';
      await new Promise((r) => setTimeout(r, 25));
    }
    return 'timeout';
  }

  /** SIGTERM (the shim checkpoints and exits), SIGKILL after `graceMs`; resolves once it exited. */
  async terminate(graceMs: number): Promise<void> {
    if (this.done) return;
    this.child.kill(graceMs === 0 ? 'SIGKILL' : 'SIGTERM');
    const killer = setTimeout(() => this.child.kill('SIGKILL'), Math.max(graceMs, 1));
    await this.exited;
    clearTimeout(killer);
  }

  /** POST /state-urls: fresh presigned URLs for the checkpoints to come. */
  async refreshState(secret: string, body: Record<string, unknown>): Promise<boolean> {
    return shimAccepted(`http://127.0.0.1:${this.shimPort}`, '/state-urls', secret, body, 5000);
  }

  /** A claim was sent: the shim may hold a tenant's state from then on. */
  claimed = false;

  /** POST /claim: binds a warm shim to a tenant; resolves true once its agent is ready. */
  async claim(secret: string, body: Record<string, unknown>, timeoutMs: number): Promise<boolean> {
    this.claimed = true;
    return shimAccepted(`http://127.0.0.1:${this.shimPort}`, '/claim', secret, body, timeoutMs);
  }
}
