/**
 * Shared pieces of the benchmarks: machine description, sample statistics, a private
 * redis-server, child processes driven over IPC and small formatting helpers.
 * Benchmarks are not tests: nothing here runs under `npm test`.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { EmbeddedRedis } from '../../lib/embedded-redis.js';

export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(BENCH_DIR, '..');

// ---------------------------------------------------------------------------------------------
// The machine

export interface MachineInfo {
  date: string;
  nproc: number;
  cpuModel: string;
  memGiB: number;
  node: string;
  redis: string;
  loadavg: string;
  /** speedIndexMs(): the same work takes longer on a slower day of the same machine. */
  speedMs: number;
}

/**
 * A fixed single-threaded workload like the platform's own (10,000 JSON round trips and SHA-256
 * digests of a ~1 KB Telegram update), the fastest of seven runs in ms (noise only adds time).
 * This machine's speed moves between days by more than most changes under test (the same code
 * measured 30 % apart), and for seconds at a time within a run, so every benchmark prints it:
 * figures of different days compare only together with it.
 */
export function speedIndexMs(): number {
  const text = JSON.stringify({
    update_id: 1, message: { message_id: 1, date: 1, chat: { id: 1, type: 'private' }, from: { id: 1, is_bot: false, first_name: 'x' }, text: 'x'.repeat(900) },
  });
  let best = Number.POSITIVE_INFINITY;
  let sink = 0;
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) {
      const u = JSON.parse(text) as { update_id: number };
      u.update_id = i;
      sink += createHash('sha256').update(JSON.stringify(u)).digest()[0] as number;
    }
    best = Math.min(best, performance.now() - t0);
  }
  if (sink < 0) throw new Error('unreachable');
  return Math.round(best * 10) / 10;
}

export function machineInfo(): MachineInfo {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) cpuModel = m[1].trim();
  } catch {
    /* not Linux */
  }
  const redis = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout?.trim().split(' ').find((w) => w.startsWith('v='))?.slice(2) ?? 'unknown';
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism(),
    cpuModel,
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    redis,
    loadavg: os.loadavg().map((l) => l.toFixed(2)).join(' '),
    speedMs: speedIndexMs(),
  };
}

export function printMachine(m: MachineInfo): void {
  console.log(`# ${m.date}  ${m.nproc} cores (${m.cpuModel}), ${m.memGiB} GiB, node ${m.node}, redis ${m.redis}, load avg ${m.loadavg}, speed index ${m.speedMs} ms (bench/lib/common.ts speedIndexMs: lower is faster)`);
}

// ---------------------------------------------------------------------------------------------
// Statistics

/** A growable buffer of numbers (latencies in ms) with percentiles; no per-sample allocation. */
export class Samples {
  private data = new Float64Array(1 << 16);
  length = 0;

  add(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }

  /** Percentiles (0-100) by nearest rank over a sorted copy. */
  percentiles(...ps: number[]): number[] {
    if (this.length === 0) return ps.map(() => Number.NaN);
    const sorted = this.data.slice(0, this.length).sort();
    return ps.map((p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number);
  }

  mean(): number {
    let s = 0;
    for (let i = 0; i < this.length; i++) s += this.data[i] as number;
    return this.length ? s / this.length : Number.NaN;
  }
}

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

export const fmt = {
  int: (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-'),
  ms: (n: number): string => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : '-'),
  ratio: (n: number): string => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '-'),
  pct: (n: number): string => (Number.isFinite(n) ? `${(n * 100).toFixed(0)}%` : '-'),
  mib: (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`,
};

/** A markdown table (also readable on a terminal). */
export function table(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i] as number)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// A private redis-server (never the machine's 6379)

export interface BenchRedis {
  url: string;
  port: number;
  server: EmbeddedRedis;
  /** CPU seconds (user + sys) redis-server has used so far, from INFO. */
  cpuSeconds(): Promise<number>;
  /** The same, split: the commands' and scripts' work (user) against the kernel's (sys: sockets, AOF). */
  cpuSplit(): Promise<{ user: number; sys: number }>;
  /** Calls per command so far (INFO commandstats), e.g. { evalsha: 1234 }. */
  commandCalls(): Promise<Record<string, number>>;
  client(): Redis;
  close(): Promise<void>;
}

// Ctrl-C or a kill: exit through process.exit so the 'exit' hooks below stop what we started.
let signalsHooked = false;
function exitOnSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
}

export async function startBenchRedis(persist: false | 'always' | 'everysec' = 'everysec'): Promise<BenchRedis> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-bench-redis-'));
  const server = await EmbeddedRedis.start({ dir, persist });
  // A benchmark that dies must not leave its redis-server behind.
  exitOnSignals();
  const onExit = (): void => {
    void server.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  const probe = new Redis(server.url, { lazyConnect: false, maxRetriesPerRequest: 3 });
  const clients: Redis[] = [probe];
  const cpuSplit = async (): Promise<{ user: number; sys: number }> => {
    const info = await probe.info('cpu');
    const num = (k: string): number => Number(new RegExp(`^${k}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 'NaN');
    return { user: num('used_cpu_user'), sys: num('used_cpu_sys') };
  };
  return {
    url: server.url,
    port: server.port,
    server,
    cpuSplit,
    async cpuSeconds() {
      const { user, sys } = await cpuSplit();
      return user + sys;
    },
    async commandCalls() {
      const out: Record<string, number> = {};
      for (const m of (await probe.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1] as string] = Number(m[2]);
      return out;
    },
    client() {
      const c = new Redis(server.url, { maxRetriesPerRequest: 3 });
      clients.push(c);
      return c;
    },
    async close() {
      process.off('exit', onExit);
      for (const c of clients) c.disconnect();
      await server.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Child processes over IPC: each server under test runs in its own process, so the load generator
// (this process) and the server do not share an event loop.

export interface ChildHandle {
  child: ChildProcess;
  /** The first message the child sent (its "ready" report). */
  ready: Record<string, unknown>;
  /** Sends `{ id, cmd, ...args }` and resolves with the child's `{ id, ...result }`. */
  call<T = Record<string, unknown>>(cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  /** Asks the child to exit cleanly (it writes its CPU profile then), else SIGKILL after a grace. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Write a V8 CPU profile of the child into this directory (node --cpu-prof). */
  cpuProfDir?: string | undefined;
  readyTimeoutMs?: number;
}

export async function spawnChild(script: string, options: SpawnOptions = {}): Promise<ChildHandle> {
  const execArgv = [...process.execArgv.filter((a) => !a.startsWith('--cpu-prof'))];
  if (!execArgv.some((a) => a.includes('tsx'))) execArgv.push('--import', 'tsx');
  if (options.cpuProfDir) execArgv.push('--cpu-prof', '--cpu-prof-dir', options.cpuProfDir);
  const child = fork(script, options.args ?? [], {
    execArgv,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let seq = 0;
  const pending = new Map<number, (m: Record<string, unknown>) => void>();
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true;
    resolve();
  }));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${path.basename(script)} did not report ready`)), options.readyTimeoutMs ?? 60_000);
    child.once('exit', (code) => reject(new Error(`${path.basename(script)} exited (${code}) before ready`)));
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve(m as Record<string, unknown>);
    });
  });
  child.on('message', (m) => {
    const msg = m as { id?: number };
    if (typeof msg.id === 'number') {
      pending.get(msg.id)?.(msg as Record<string, unknown>);
      pending.delete(msg.id);
    }
  });
  return {
    child,
    ready,
    call<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 120_000) {
      const id = ++seq;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`child did not answer ${cmd}`)), timeoutMs);
        pending.set(id, (m) => {
          clearTimeout(timer);
          if (typeof m.error === 'string') reject(new Error(m.error));
          else resolve(m as T);
        });
        child.send({ id, cmd, ...args });
      });
    },
    async stop(graceMs = 15_000) {
      if (exited) return;
      child.send({ cmd: 'exit' });
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exitPromise;
      clearTimeout(timer);
    },
  };
}

/**
 * The child side: report ready, then answer `{ id, cmd }` messages with the handler's result.
 * `exit` runs `onExit` and exits 0 (so --cpu-prof writes its profile).
 */
export function serveParent(ready: Record<string, unknown>, handlers: Record<string, (args: Record<string, unknown>) => unknown>, onExit: () => Promise<void>): void {
  if (!process.send) throw new Error('this script is started by a benchmark (it needs an IPC channel)');
  process.on('message', (m: { id?: number; cmd?: string } & Record<string, unknown>) => {
    if (m.cmd === 'exit') {
      void onExit().finally(() => process.exit(0));
      return;
    }
    const handler = m.cmd ? handlers[m.cmd] : undefined;
    if (!handler) {
      process.send?.({ id: m.id, error: `unknown command ${m.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(m))
      .then(
        (result) => process.send?.({ id: m.id, ...(result as object) }),
        (err: unknown) => process.send?.({ id: m.id, error: err instanceof Error ? err.stack ?? err.message : String(err) }),
      );
  });
  // The parent died: do not linger.
  process.on('disconnect', () => process.exit(0));
  process.send(ready);
}

/** CPU time of this process in seconds since `since` (process.cpuUsage). */
export function cpuSecondsSince(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
