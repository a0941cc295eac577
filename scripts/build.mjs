// Transpiles lib/, services/, agent/ and cli/ to dist/ (ES modules with source maps), type-free and
// in well under a second: `ztm` runs this JavaScript (a CLI must start in ~0.1 s; through tsx it took
// ~0.6 s), and cli/ztm.js rebuilds on its first run after a source changed. Type checking is
// `npm run typecheck`'s job; the images compile with tsc (Dockerfile). Writes dist/.build-stamp last,
// so a half-written dist is never taken for fresh.
import { readdirSync, statSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SOURCE_DIRS = ['lib', 'services', 'agent', 'cli'];
export const STAMP = path.join(ROOT, 'dist', '.build-stamp');

/** Every .ts source under the source directories (not .d.ts), and the newest mtime among them. */
export function sources() {
  const files = [];
  let newest = 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        files.push(p);
        newest = Math.max(newest, statSync(p).mtimeMs);
      }
    }
  };
  for (const d of SOURCE_DIRS) walk(path.join(ROOT, d));
  return { files, newest };
}

/** True when dist/ was built after the newest source changed. */
export function isFresh() {
  try {
    return statSync(STAMP).mtimeMs >= sources().newest;
  } catch {
    return false;
  }
}

export async function buildDist() {
  const { files } = sources();
  // Loaded only to build: a fresh dist/ is checked with fs alone.
  const { build } = await import('esbuild');
  await build({
    entryPoints: files, outdir: path.join(ROOT, 'dist'), outbase: ROOT, format: 'esm', platform: 'node',
    target: 'node20', sourcemap: true, bundle: false, logLevel: 'error',
  });
  mkdirSync(path.dirname(STAMP), { recursive: true });
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
  return files.length;
}

const LOCK = path.join(ROOT, 'dist', '.build-lock');

/**
 * Builds unless dist/ is fresh. Concurrent callers (tests run several ztm at once) build one at a
 * time: the first takes the lock directory (mkdir is atomic), the others wait for a fresh stamp
 * (bounded: 30 s, then a lock left by a killed build is taken over).
 */
export async function ensureBuilt() {
  const deadline = Date.now() + 30_000;
  while (!isFresh()) {
    mkdirSync(path.dirname(LOCK), { recursive: true });
    try {
      mkdirSync(LOCK);
    } catch (err) {
      if (err?.code !== 'EEXIST') throw err;
      if (Date.now() > deadline) rmSync(LOCK, { recursive: true, force: true });
      else await sleep(50);
      continue;
    }
    try {
      if (!isFresh()) await buildDist();
    } finally {
      rmSync(LOCK, { recursive: true, force: true });
    }
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const started = Date.now();
  const n = await buildDist();
  process.stdout.write(`built ${n} files into dist/ in ${Date.now() - started} ms\n`);
}
