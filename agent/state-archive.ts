/**
 * The agent's whole state as one tar.gz per tenant: every declared path under the agent's root,
 * SQLite databases copied with the backup API (consistent while the agent writes in WAL mode; their
 * -wal/-shm/-journal never archived), everything else copied as regular files, caches left out.
 * Packing stages a point-in-time copy in scratchDir, then tars it. Restoring extracts into scratchDir,
 * validates everything, and only then replaces each declared path in the root: the archive is the
 * whole state, so what it lacks is removed.
 *
 * The agent is hostile and runs while the shim packs: nothing is followed out of the tree (see
 * state-archive-walk.ts), and a restore refuses any entry that is not a plain file or directory
 * inside the declared paths. scratchDir must be the shim's alone (the agent cannot write there)
 * and on root's filesystem. A restore runs before the agent starts, so the root holds still then.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readdir, realpath, rename, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Pack, Parser, type ReadEntry } from 'tar';
import { ConfigError, RuntimeError, ValidationError, ZtmError } from '../lib/errors.js';
import {
  Packer, SIDE_SUFFIXES, SQLITE_MAGIC, StateTooLargeError, archivedMode, hasSqliteMagic, isCode, isExcluded, lstatOf,
  type SkippedEntry,
} from './state-archive-walk.js';
import { ownRoot } from './state-root.js';

export { StateTooLargeError, type SkipReason, type SkippedEntry } from './state-archive-walk.js';

export interface StatePath {
  /** Posix, relative to root: no '..', no '.', no leading or doubled '/'. */
  path: string;
  kind: 'sqlite' | 'file' | 'dir';
}

export interface StateLayout {
  root: string;
  paths: readonly StatePath[];
  /** Caches, relative to root (a directory covers what is below it): never archived, never touched by a restore. */
  excludes?: readonly string[];
  /** The shim's own (the agent cannot write there), on root's filesystem. */
  scratchDir: string;
  /** Bound on the uncompressed total; use the same bounds to pack and to restore. */
  maxBytes: number;
  /** Bound on files, directories and skipped entries; default 100k. */
  maxEntries?: number;
}

export type PackOptions = StateLayout;

export interface PackResult {
  /** The .tar.gz in scratchDir; the caller removes it once uploaded. */
  file: string;
  /** Compressed size. */
  bytes: number;
  /** Over sorted (path, type, mode, content sha256): unchanged state keeps it even when mtimes change. */
  contentSha256: string;
  entries: number;
  rawBytes: number;
  /** Symlinks, hard links, sockets, FIFOs, devices...: left out, never followed. */
  skipped: SkippedEntry[];
}

export type StateFormat = 'archive' | 'sqlite' | 'empty' | 'unknown';

const DEFAULT_MAX_ENTRIES = 100_000;
const FORMAT = 'ztm-state-archive/1';
/** The shim's setting for maxBytes (agent/shim-config.ts), named in the error an operator sees. */
const BOUND_SETTING = 'STATE_MAX_BYTES';

/** The AGENT_STATE_PATHS form: `a/brain.db,dir:workspace/,file:config.toml`; errors name `name`. */
export function parseStatePaths(spec: string, name: string): StatePath[] {
  if (spec.trim() === '') throw new ConfigError(name, 'lists no paths');
  const paths = spec.split(',').map((raw): StatePath => {
    const item = raw.trim();
    if (item === '') throw new ConfigError(name, 'has an empty entry (a stray comma?)');
    const m = /^(sqlite|file|dir):(.*)$/s.exec(item);
    const p = m?.[2] ?? item;
    const kind = (m?.[1] as StatePath['kind'] | undefined)
      ?? (p.endsWith('/') ? 'dir' : /\.(db|sqlite|sqlite3)$/i.test(p) ? 'sqlite' : 'file');
    return { path: p, kind };
  });
  return checkLayout(paths, [], (msg) => new ConfigError(name, msg)).paths;
}

/** Which form a downloaded state object has (the older form is a bare brain.db). */
export async function detectStateFormat(file: string): Promise<StateFormat> {
  const h = await open(file, 'r');
  try {
    const buf = Buffer.alloc(SQLITE_MAGIC.length);
    const { bytesRead } = await h.read(buf, 0, buf.length, 0);
    if (bytesRead === 0) return 'empty';
    if (bytesRead >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) return 'archive';
    if (bytesRead === buf.length && buf.equals(SQLITE_MAGIC)) return 'sqlite';
    return 'unknown';
  } finally {
    await h.close();
  }
}

export async function packState(o: PackOptions): Promise<PackResult> {
  const { paths, excludes } = checkLayout(o.paths, o.excludes ?? [], (msg) => new ValidationError(msg));
  await mkdir(o.scratchDir, { recursive: true });
  const scratch = await realpath(o.scratchDir);
  // Undefined: no root yet, the state is empty.
  const root = await ownRoot(o.root, 'refuse');
  if (root !== undefined) checkScratch(root, scratch, paths);
  const staging = await mkdtemp(path.join(scratch, 'pack-'));
  const file = path.join(scratch, `state-${randomBytes(6).toString('hex')}.tar.gz`);
  try {
    const packer = new Packer({
      root: root ?? '', tree: path.join(staging, 'tree'), staging, excludes,
      maxBytes: o.maxBytes, maxEntries: o.maxEntries ?? DEFAULT_MAX_ENTRIES,
    });
    await mkdir(packer.c.tree);
    if (root !== undefined) for (const sp of paths) await packer.packPath(sp);
    if (packer.over) {
      throw new StateTooLargeError(packer.rawBytes, o.maxBytes, 'bytes',
        `state is ${formatBytes(packer.rawBytes)}, above the ${formatBytes(o.maxBytes)} bound (${BOUND_SETTING})`);
    }
    const entries = packer.entries.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
    await writeTar(packer.c.tree, entries.map((e) => e.rel), file);
    const sha = createHash('sha256').update(`${FORMAT}\n`);
    for (const e of entries) sha.update(`${JSON.stringify([e.rel, e.dir ? 'dir' : 'file', e.mode, e.sha256])}\n`);
    return {
      file, bytes: (await stat(file)).size, contentSha256: sha.digest('hex'),
      entries: entries.length, rawBytes: packer.rawBytes, skipped: packer.skipped,
    };
  } catch (err) {
    await rm(file, { force: true });
    throw err;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function writeTar(cwd: string, rels: readonly string[], file: string): Promise<void> {
  const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
  try {
    await new Promise<void>((resolve, reject) => {
      // portable: no uid/gid/uname/ctime/atime, and a gzip header without mtime. noDirRecurse:
      // exactly the staged entries, in this (sorted) order.
      const pack = new Pack({ cwd, gzip: true, portable: true, noDirRecurse: true, strict: true });
      pack.on('error', reject);
      out.on('error', reject);
      out.on('close', resolve);
      pack.pipe(out);
      for (const rel of rels) pack.add(rel);
      pack.end();
    });
  } finally {
    out.destroy();
  }
}

export async function unpackState(file: string, o: StateLayout): Promise<{ entries: number; rawBytes: number }> {
  const { paths, excludes } = checkLayout(o.paths, o.excludes ?? [], (msg) => new ValidationError(msg));
  if ((await detectStateFormat(file)) !== 'archive') throw new ValidationError('state object is not a tar.gz state archive');
  await ownRoot(o.root, 'remove');
  await mkdir(o.root, { recursive: true });
  await mkdir(o.scratchDir, { recursive: true });
  const [root, scratch] = await Promise.all([ownRoot(o.root, 'refuse') as Promise<string>, realpath(o.scratchDir)]);
  checkScratch(root, scratch, paths);
  const [rootDev, scratchDev] = await Promise.all([stat(root), stat(scratch)]);
  if (rootDev.dev !== scratchDev.dev) {
    throw new RuntimeError(`state restore: scratch dir ${scratch} is not on the filesystem of ${root} (restored paths are renamed into place)`);
  }
  const staging = await mkdtemp(path.join(scratch, 'restore-'));
  try {
    const got = await extract(file, staging, paths, excludes, o.maxBytes, o.maxEntries ?? DEFAULT_MAX_ENTRIES);
    // Everything is staged and valid: from here on only removals and renames on one filesystem.
    for (const sp of paths) await swapIn(root, staging, sp, excludes);
    return got;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function extract(file: string, staging: string, paths: readonly StatePath[], excludes: readonly string[],
  maxBytes: number, maxEntries: number): Promise<{ entries: number; rawBytes: number }> {
  let entries = 0;
  let extracted = 0;
  let rawBytes = 0;
  /** Content bytes of every file entry, excluded ones too: what the bound limits. */
  let inflated = 0;
  let declared = 0;
  let decompressed = 0;
  let failure: Error | undefined;
  const dirs: { dest: string; mode: number; mtime: Date | undefined }[] = [];
  const writes: Promise<void>[] = [];
  const source = createReadStream(file);
  const gunzip = createGunzip();
  // Not strict: every warning fails the restore below, except the one an archive with no entries gets.
  let onlyZeros = true;
  const parser = new Parser({
    onwarn: (code, message) => {
      if (code === 'TAR_BAD_ARCHIVE' && message === 'Unrecognized archive format' && entries === 0 && onlyZeros) return;
      fail(new ValidationError(`state archive is damaged: ${code} ${message}`));
    },
  });
  // Stops the entry writes in flight too: an entry cut short by a failure would never end.
  const stop = new AbortController();
  const fail = (err: Error): void => {
    if (failure !== undefined) return;
    failure = err;
    stop.abort();
    parser.abort(err);
    source.destroy();
  };
  parser.on('entry', (entry: ReadEntry) => {
    try {
      entries++;
      declared += entry.size;
      if (entries > maxEntries) {
        throw new StateTooLargeError(entries, maxEntries, 'entries', `state archive has more than ${maxEntries} entries`);
      }
      const rel = checkEntry(entry, paths);
      // Counted before it is skipped: inflating an excluded entry's content is work all the same,
      // so a cache path cannot carry gigabytes past the bound.
      if (entry.type !== 'Directory') inflated += entry.size;
      if (inflated > maxBytes) {
        throw new StateTooLargeError(inflated, maxBytes, 'bytes',
          `state archive holds at least ${formatBytes(inflated)}, above the ${formatBytes(maxBytes)} bound (${BOUND_SETTING})`);
      }
      if (isExcluded(rel, excludes)) {
        entry.resume(); // a cache the archive should not have held: the root's own copy wins
        return;
      }
      if (entry.type === 'Directory') {
        const dest = path.join(staging, rel);
        dirs.push({ dest, mode: archivedMode(entry.mode ?? 0o755, true), mtime: entry.mtime });
        writes.push(mkdir(dest, { recursive: true, mode: 0o700 }).then(() => undefined, (err: unknown) => fail(clash(err, entry.path))));
        extracted++;
        entry.resume();
        return;
      }
      rawBytes += entry.size;
      extracted++;
      writes.push(writeEntry(entry, path.join(staging, rel), stop.signal).catch((err: unknown) => {
        entry.resume();
        fail(clash(err, entry.path));
      }));
    } catch (err) {
      entry.resume();
      fail(err as Error);
    }
  });
  parser.on('ignoredEntry', (entry: ReadEntry) => fail(refused(entry.path, `is of an unsupported type (${entry.type})`)));
  gunzip.on('data', (chunk: Buffer) => {
    // Headers and padding are small next to the content: an archive that inflates far beyond what
    // its entries declare is a decompression bomb.
    decompressed += chunk.length;
    if (onlyZeros && entries === 0) onlyZeros = chunk.every((b) => b === 0);
    if (decompressed > declared + (entries + 1) * 16_384 + (1 << 20)) {
      fail(new ValidationError(`state archive inflates to ${formatBytes(decompressed)}, far beyond what its entries declare (a decompression bomb?)`));
    }
  });
  try {
    await new Promise<void>((resolve, reject) => {
      parser.on('end', resolve);
      parser.on('error', reject);
      source.on('error', reject);
      gunzip.on('error', reject);
      source.pipe(gunzip).pipe(parser as unknown as NodeJS.WritableStream);
    });
  } catch (err) {
    fail(err instanceof Error ? err : new Error(String(err)));
  }
  const settled = await Promise.allSettled(writes);
  if (failure === undefined) {
    const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (rejected !== undefined) failure = rejected.reason as Error;
  }
  if (failure !== undefined) {
    if (failure instanceof ZtmError) throw failure;
    const { code } = failure as { code?: unknown };
    const message = failure.message.split('\n')[0];
    // zlib's codes (a cut or corrupt gzip, a bad CRC); anything else is this machine's (ENOSPC...).
    if (typeof code === 'string' && code.startsWith('Z_')) throw new ValidationError(`state archive is damaged: ${message}`);
    throw new RuntimeError(`state restore failed: ${message}`, { cause: failure });
  }
  // Deepest first: a directory's mtime is set after its children are in place.
  for (const d of dirs.sort((a, b) => b.dest.length - a.dest.length)) {
    await chmod(d.dest, d.mode);
    if (d.mtime !== undefined) await utimes(d.dest, d.mtime, d.mtime);
  }
  return { entries: extracted, rawBytes };
}

async function writeEntry(entry: ReadEntry, dest: string, signal: AbortSignal): Promise<void> {
  await mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
  // 'wx': a second entry for the same path is an error, never an overwrite.
  await pipeline(entry, createWriteStream(dest, { flags: 'wx', mode: 0o600 }), { signal });
  await chmod(dest, archivedMode(entry.mode ?? 0o644, false));
  if (entry.mtime !== undefined) await utimes(dest, entry.mtime, entry.mtime);
}

/** The entry's relative path, when it is a plain file or directory inside the declared paths. */
function checkEntry(entry: ReadEntry, paths: readonly StatePath[]): string {
  const raw = entry.path;
  const isDir = entry.type === 'Directory';
  if (!isDir && !['File', 'OldFile', 'ContiguousFile'].includes(entry.type)) throw refused(raw, `is a ${entry.type}`);
  if (raw.startsWith('/')) throw refused(raw, 'is absolute');
  const rel = isDir ? raw.replace(/\/+$/, '') : raw;
  const problem = pathProblem(rel);
  if (problem !== undefined) throw refused(raw, problem);
  const sp = paths.find((p) => rel === p.path || (p.kind === 'dir' && rel.startsWith(`${p.path}/`)));
  if (sp === undefined) throw refused(raw, 'is outside the state paths');
  if (rel === sp.path && (sp.kind === 'dir') !== isDir) throw refused(raw, `is not a ${sp.kind === 'dir' ? 'directory' : 'file'}`);
  return rel;
}

/** Two entries for one path (or a file where another entry needs a directory) is the archive's fault. */
function clash(err: unknown, p: string): Error {
  if (isCode(err, 'EEXIST', 'ENOTDIR', 'EISDIR')) return refused(p, 'clashes with another entry of the archive');
  return err instanceof Error ? err : new Error(String(err));
}

function refused(p: string, why: string): ValidationError {
  return new ValidationError(`state archive entry ${JSON.stringify(p.slice(0, 200))} ${why}`);
}

/** Replaces what the root has at `sp` with the staged copy (or nothing), keeping excluded caches. */
async function swapIn(root: string, staging: string, sp: StatePath, excludes: readonly string[]): Promise<void> {
  const target = path.join(root, sp.path);
  const staged = path.join(staging, sp.path);
  await realParents(root, sp.path);
  if (sp.kind === 'dir') {
    for (const e of excludes) if (e.startsWith(`${sp.path}/`)) await keepCache(root, staging, e);
    await rm(target, { recursive: true, force: true });
  } else {
    await removeWithSides(target, sp.kind === 'sqlite' || (await isSqliteFile(target)) || (await isSqliteFile(staged)));
  }
  if ((await lstatOf(staged)) !== undefined) await rename(staged, target);
}

/**
 * Removes the declared paths from root (a fresh start, or before the older single brain.db is
 * put in place), leaving excluded caches. Nothing is followed: a symlink or file standing where a
 * parent directory should be is removed itself. Runs before the agent starts.
 */
export async function clearStatePaths(root: string, paths: readonly StatePath[], excludes: readonly string[] = []): Promise<void> {
  const layout = checkLayout(paths, excludes, (msg) => new ValidationError(msg));
  const real = await ownRoot(root, 'remove');
  if (real === undefined) return;
  for (const sp of layout.paths) {
    if (!(await clearParents(real, sp.path))) continue;
    const target = path.join(real, sp.path);
    if (sp.kind === 'dir') await removeExcept(target, sp.path, layout.excludes);
    else await removeWithSides(target, sp.kind === 'sqlite' || (await isSqliteFile(target)));
  }
}

/** False when nothing can be at `rel`: a parent is missing, or was not a real directory (then removed). */
async function clearParents(root: string, rel: string): Promise<boolean> {
  let cur = root;
  for (const seg of rel.split('/').slice(0, -1)) {
    cur = path.join(cur, seg);
    const st = await lstatOf(cur);
    if (st === undefined) return false;
    if (!st.isDirectory()) {
      await rm(cur, { force: true });
      return false;
    }
  }
  return true;
}

async function removeExcept(abs: string, rel: string, excludes: readonly string[]): Promise<void> {
  const st = await lstatOf(abs);
  if (st === undefined) return;
  if (!st.isDirectory() || !excludes.some((e) => e.startsWith(`${rel}/`))) {
    await rm(abs, { recursive: true, force: true });
    return;
  }
  for (const name of await readdir(abs)) {
    const childRel = `${rel}/${name}`;
    if (!isExcluded(childRel, excludes)) await removeExcept(path.join(abs, name), childRel, excludes);
  }
}

/** A stale -wal next to a restored database would be replayed into it. */
async function removeWithSides(target: string, sqlite: boolean): Promise<void> {
  await rm(target, { recursive: true, force: true });
  if (sqlite) for (const s of SIDE_SUFFIXES) await rm(target + s, { recursive: true, force: true });
}

/** Makes every parent of `rel` a real directory: a symlink or file left in the way is removed, never followed. */
async function realParents(root: string, rel: string): Promise<void> {
  let cur = root;
  for (const seg of rel.split('/').slice(0, -1)) {
    cur = path.join(cur, seg);
    const st = await lstatOf(cur);
    if (st?.isDirectory() === true) continue;
    if (st !== undefined) await rm(cur, { force: true });
    await mkdir(cur, { mode: 0o755 });
  }
}

/** Moves an excluded cache out of the way of the swap, into the staged tree (same filesystem). */
async function keepCache(root: string, staging: string, rel: string): Promise<void> {
  let cur = root;
  for (const seg of rel.split('/').slice(0, -1)) {
    cur = path.join(cur, seg);
    if ((await lstatOf(cur))?.isDirectory() !== true) return; // not reached through real directories: not kept
  }
  const src = path.join(root, rel);
  if ((await lstatOf(src)) === undefined) return;
  const dest = path.join(staging, rel);
  try {
    await mkdir(path.dirname(dest), { recursive: true, mode: 0o755 });
    await rename(src, dest);
  } catch {
    // The archive has a file where the cache's directory was: the cache goes with the old tree.
  }
}

/** A regular file (not followed if a symlink) that starts with the SQLite header. */
async function isSqliteFile(file: string): Promise<boolean> {
  if ((await lstatOf(file))?.isFile() !== true) return false;
  const h = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
  if (h === undefined) return false;
  try {
    return await hasSqliteMagic(h);
  } finally {
    await h.close();
  }
}

/**
 * Validates declared paths and excludes; a directory may be written with a trailing '/'.
 * `fail` makes the error (ConfigError for a setting, ValidationError for a profile's list).
 */
function checkLayout(declared: readonly StatePath[], excludes: readonly string[], fail: (msg: string) => Error):
  { paths: StatePath[]; excludes: string[] } {
  const paths = declared.map((p): StatePath => {
    if (!['sqlite', 'file', 'dir'].includes(p.kind)) throw fail(`state path '${p.path}' has an unknown kind '${String(p.kind)}'`);
    const clean = p.kind === 'dir' ? p.path.replace(/(.)\/$/s, '$1') : p.path;
    const problem = pathProblem(clean);
    if (problem !== undefined) throw fail(`state path '${p.path}' ${problem}`);
    return { path: clean, kind: p.kind };
  });
  const sorted = paths.map((p) => p.path).sort();
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i + 1; j < sorted.length; j++) {
      const a = sorted[i]!;
      const b = sorted[j]!;
      if (a === b) throw fail(`state path '${a}' is listed twice`);
      if (b.startsWith(`${a}/`)) throw fail(`state path '${b}' is inside '${a}'`);
    }
  }
  const normalized = excludes.map((raw) => {
    const e = raw.replace(/(.)\/$/s, '$1');
    const problem = pathProblem(e);
    if (problem !== undefined) throw fail(`exclude '${raw}' ${problem}`);
    const covered = paths.find((p) => p.path === e || p.path.startsWith(`${e}/`));
    if (covered !== undefined) throw fail(`exclude '${raw}' covers the state path '${covered.path}'`);
    return e;
  });
  return { paths, excludes: normalized };
}

function pathProblem(p: string): string | undefined {
  if (p === '') return 'is empty';
  if (p.startsWith('/')) return 'is absolute';
  if (p.includes('\0')) return 'contains a NUL byte';
  const segs = p.split('/');
  if (segs.includes('..')) return "contains '..'";
  if (segs.some((s) => s === '' || s === '.')) return "is not a plain relative path (an empty or '.' segment)";
  return undefined;
}

/** The scratch dir may sit under root, not inside a declared path (it would archive or delete itself). */
function checkScratch(root: string, scratch: string, paths: readonly StatePath[]): void {
  const rel = path.relative(root, scratch);
  if (rel === '') throw new ValidationError('state scratch dir must not be the state root');
  if (rel.startsWith('..') || path.isAbsolute(rel)) return;
  const inside = paths.find((p) => rel === p.path || rel.startsWith(`${p.path}/`));
  if (inside !== undefined) throw new ValidationError(`state scratch dir ${scratch} is inside the state path '${inside.path}'`);
}

function formatBytes(n: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  if (n < 1024) return `${n} bytes`;
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}
