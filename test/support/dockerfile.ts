/**
 * Just enough of a Dockerfile reader for test/images.test.ts (no Docker engine here): stages, COPY
 * sources, and the ENV / USER / ENTRYPOINT / HEALTHCHECK the default target ends up with, following
 * `FROM <stage>` chains and `${VAR:-default}` / `${VAR:+alt}` in FROM with the ARG defaults.
 * Plus child-process helpers that capture output and never hang a test.
 */
import { spawn } from 'node:child_process';

export interface CopyInstruction {
  from: string | undefined;
  sources: string[];
  dest: string;
}

export interface Dockerfile {
  stages: string[];
  /** Images from a registry that stages are built FROM (ARG defaults expanded; stage names excluded). */
  bases: string[];
  copies: CopyInstruction[];
  /** Of the default target (the last stage), inherited through FROM <stage>. */
  env: Record<string, string>;
  user: string | undefined;
  entrypoint: string[];
  healthcheck: boolean;
}

interface Stage {
  name: string | undefined;
  base: string;
  env: Record<string, string>;
  user?: string;
  entrypoint?: string[];
  healthcheck?: boolean;
}

function expand(s: string, args: Record<string, string>): string {
  return s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}/g, (_m, name: string, op: string | undefined, word: string | undefined) => {
    const v = args[name] ?? '';
    if (op === '-') return v !== '' ? v : expand(word ?? '', args);
    if (op === '+') return v !== '' ? expand(word ?? '', args) : '';
    return v;
  });
}

/** `A=1 B="two words"` → { A: '1', B: 'two words' }. */
function parseEnv(rest: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
  for (const m of rest.matchAll(re)) {
    const raw = m[2] ?? '';
    out[m[1] as string] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
  }
  return out;
}

export function parseDockerfile(text: string): Dockerfile {
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ').split('\n');
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  const copies: CopyInstruction[] = [];
  for (const line of lines) {
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const op = (m[1] as string).toUpperCase();
    const rest = (m[2] as string).trim();
    const stage = stages[stages.length - 1];
    if (op === 'ARG' && !stage) {
      const [name, ...def] = rest.split('=');
      args[name as string] = expand(def.join('='), args);
    } else if (op === 'FROM') {
      const parts = rest.split(/\s+/).filter((p) => !p.startsWith('--platform'));
      const asAt = parts.findIndex((p) => p.toUpperCase() === 'AS');
      stages.push({ name: asAt >= 0 ? parts[asAt + 1] : undefined, base: expand(parts[0] ?? '', args), env: {} });
    } else if (op === 'COPY' && stage) {
      const words = rest.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      copies.push({ from, sources: paths.slice(0, -1), dest: paths[paths.length - 1] ?? '' });
    } else if (op === 'ENV' && stage) {
      Object.assign(stage.env, parseEnv(rest));
    } else if (op === 'USER' && stage) {
      stage.user = rest;
    } else if (op === 'ENTRYPOINT' && stage) {
      stage.entrypoint = JSON.parse(rest) as string[];
    } else if (op === 'HEALTHCHECK' && stage) {
      stage.healthcheck = !/^NONE$/i.test(rest);
    }
  }
  // The default target and the stages it is built FROM, base first.
  const chain: Stage[] = [];
  for (let s = stages[stages.length - 1]; s; s = stages.find((x) => x.name !== undefined && x.name === s?.base)) {
    chain.unshift(s);
    if (chain.length > stages.length) throw new Error('FROM cycle');
  }
  const names = new Set(stages.flatMap((s) => (s.name ? [s.name] : [])));
  // `FROM agent-${AGENT:-reference}` names a stage once expanded, so it is no base.
  const bases = [...new Set(stages.map((s) => s.base).filter((b) => !names.has(b)))];
  const final: Dockerfile = { stages: [...names], bases, copies, env: {}, user: undefined, entrypoint: [], healthcheck: false };
  for (const s of chain) {
    Object.assign(final.env, s.env);
    if (s.user !== undefined) final.user = s.user;
    if (s.entrypoint) final.entrypoint = s.entrypoint;
    if (s.healthcheck !== undefined) final.healthcheck = s.healthcheck;
  }
  return final;
}

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunningProcess {
  readonly stdout: string;
  readonly stderr: string;
  readonly exited: boolean;
  readonly code: number | null;
  exit: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

export function startProcess(cmd: string, args: string[], o: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): RunningProcess {
  const child = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let exited = false;
  let code: number | null = null;
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000);
  const exit = new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      stderr += String(err);
      exited = true;
      clearTimeout(timer);
      resolve(null);
    });
    child.once('close', (c) => {
      exited = true;
      code = c;
      clearTimeout(timer);
      resolve(c);
    });
  });
  return {
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    get exited() { return exited; },
    get code() { return code; },
    exit,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
  };
}

export async function runProcess(cmd: string, args: string[], o: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<ProcessResult> {
  const p = startProcess(cmd, args, { timeoutMs: 60_000, ...o });
  const code = await p.exit;
  return { code, stdout: p.stdout, stderr: p.stderr };
}
