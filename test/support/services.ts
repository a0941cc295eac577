/**
 * Platform services as real OS processes (`node --import tsx <entry>`), so tests can kill -9 one
 * and restart it. Each is spawned in its own process group (detached): `kill()` takes the group by
 * default (with any shim children), `kill({ group: false })` only the service itself, as a crash
 * would. `ServiceSet.close()` kills every group ever started and reaps the agents the local runtime
 * started under DATA_DIR (each agent is its own process group, recorded in `agent.pid`).
 *
 * Output is JSON log lines (pino): every line's `msg` is counted; warn and above, and lines that
 * match `keep`, are kept for assertions. Nothing else is buffered, so a busy service costs no memory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './platform.js';
import { sleep } from './wait.js';

export interface ServiceSpec {
  name: string;
  /** Path of the entry point, relative to the repository root. */
  entry: string;
  /** The argv to run instead of `node --import tsx <entry>` (e.g. the image's entrypoint script). */
  command?: string[];
  env: Record<string, string>;
  /** The `msg` of the log line that says the service is up (none: start() returns once it is spawned). */
  readyMsg?: string;
  /** Extra `msg` substrings whose lines are kept (warn and above always are). */
  keep?: string[];
}

export interface LogEntry {
  msg?: string;
  level?: number;
  [k: string]: unknown;
}

const MAX_KEPT = 5_000;

export class ServiceProcess {
  private child: ChildProcess | undefined;
  private readonly counts = new Map<string, number>();
  readonly kept: LogEntry[] = [];
  /** The last lines of stderr that were not JSON (a configuration error, a crash's stack). */
  readonly stderrTail: string[] = [];
  /** Every pid this service ran as (one per start): its process groups. */
  readonly pids: number[] = [];
  starts = 0;

  constructor(readonly spec: ServiceSpec) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** How the last run ended (undefined while it runs or before the first start). */
  get exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    const child = this.child;
    return child && !this.running ? { code: child.exitCode, signal: child.signalCode } : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** How many log lines had `msg` containing `needle`, over every start. */
  count(needle: string): number {
    let n = 0;
    for (const [msg, c] of this.counts) if (msg.includes(needle)) n += c;
    return n;
  }

  find(needle: string): LogEntry[] {
    return this.kept.filter((e) => String(e.msg ?? '').includes(needle));
  }

  async start(timeoutMs = 30_000): Promise<void> {
    if (this.running) throw new Error(`${this.spec.name} is already running`);
    const readyMsg = this.spec.readyMsg;
    const readyBefore = readyMsg === undefined ? 0 : this.count(readyMsg);
    const [bin, ...args] = this.spec.command ?? [process.execPath, '--import', 'tsx', path.join(ROOT, this.spec.entry)];
    const child = spawn(bin as string, args, {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...this.spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    this.starts++;
    if (child.pid) this.pids.push(child.pid);
    this.consume(child, 'stdout');
    this.consume(child, 'stderr');
    if (readyMsg === undefined) return;
    const deadline = Date.now() + timeoutMs;
    while (this.count(readyMsg) === readyBefore) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${this.spec.name} exited at start (${child.exitCode ?? child.signalCode}): ${this.stderrTail.join('\n').slice(-2000)}`);
      }
      if (Date.now() > deadline) throw new Error(`${this.spec.name} did not log "${readyMsg}" within ${timeoutMs} ms`);
      await sleep(25);
    }
  }

  private consume(child: ChildProcess, stream: 'stdout' | 'stderr'): void {
    let rest = '';
    child[stream]?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) this.line(line, stream);
    });
  }

  private line(line: string, stream: 'stdout' | 'stderr'): void {
    if (!line.trim()) return;
    let entry: LogEntry;
    try {
      entry = JSON.parse(line) as LogEntry;
    } catch {
      if (stream === 'stderr') this.stderrTail.push(line);
      if (this.stderrTail.length > 50) this.stderrTail.shift();
      return;
    }
    const msg = String(entry.msg ?? '');
    this.counts.set(msg, (this.counts.get(msg) ?? 0) + 1);
    if ((entry.level ?? 0) >= 40 || this.spec.keep?.some((k) => msg.includes(k)) || msg === this.spec.readyMsg) {
      this.kept.push(entry);
      if (this.kept.length > MAX_KEPT) this.kept.shift();
    }
  }

  /** Signals the service (its whole process group unless `group: false`) and waits for its exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL', { group = true }: { group?: boolean } = {}): Promise<void> {
    const child = this.child;
    if (!child?.pid || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      process.kill(group ? -child.pid : child.pid, signal);
    } catch {
      /* gone already */
    }
    const timer = setTimeout(() => killGroup(child.pid as number), 20_000);
    await exited;
    clearTimeout(timer);
  }

  async restart(timeoutMs?: number): Promise<void> {
    await this.kill('SIGKILL');
    await this.start(timeoutMs);
  }

  /** Resident set size of the service process, from /proc (bytes). */
  rss(): number {
    if (!this.child?.pid) throw new Error(`${this.spec.name} is not running`);
    const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
    if (!kb) throw new Error('no VmRSS');
    return Number(kb) * 1024;
  }
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* no such group */
  }
}

/** Agent pids the local runtime recorded under `dataDir` (tenants and warm members). */
export function agentPidsUnder(dataDir: string): number[] {
  const pids: number[] = [];
  for (const sub of ['tenants', 'warm']) {
    const dir = path.join(dataDir, sub);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      try {
        const pid = Number(readFileSync(path.join(dir, name, 'agent.pid'), 'utf8'));
        if (Number.isInteger(pid) && pid > 1) pids.push(pid);
      } catch {
        /* no agent there */
      }
    }
  }
  return pids;
}

export class ServiceSet {
  readonly services: ServiceProcess[] = [];

  constructor(private readonly dataDirs: string[] = []) {}

  add(spec: ServiceSpec): ServiceProcess {
    const s = new ServiceProcess(spec);
    this.services.push(s);
    return s;
  }

  /** SIGKILL every process group any service ever ran as, then every agent group under DATA_DIR. */
  async close(): Promise<void> {
    await Promise.all(this.services.map((s) => s.kill('SIGKILL')));
    for (const s of this.services) for (const pid of s.pids) killGroup(pid);
    for (const dir of this.dataDirs) for (const pid of agentPidsUnder(dir)) killGroup(pid);
  }
}
