/**
 * Staging a hostile agent's files for the state archive (agent/state-archive.ts). The agent runs
 * while the shim packs, so any path can be swapped for a symlink between two calls: directories
 * are opened without following links and their children are named through the open descriptor
 * (`/proc/self/fd/<fd>/<name>`, Linux's openat), so a swapped parent changes nothing; files are
 * opened with O_NOFOLLOW and judged by fstat of what was opened. SQLite can only be handed a path,
 * so once it opened a database the descriptors it holds are checked to lie inside the root.
 * Without /proc (not Linux) the same calls fall back to plain paths: O_NOFOLLOW still guards the
 * last component, not the parents.
 */
import { createHash } from 'node:crypto';
import { constants, createWriteStream, existsSync, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, readlink, rm, stat, utimes, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import { RuntimeError } from '../lib/errors.js';
import type { StatePath } from './state-archive.js';

const PROC_FD = '/proc/self/fd';
const VIA_PROC = existsSync(PROC_FD);

/** Deeper directories are skipped: with descriptor-relative lookups PATH_MAX no longer bounds depth. */
const MAX_DEPTH = 100;
export const SIDE_SUFFIXES = ['-wal', '-shm', '-journal'] as const;
const SIDE_FILE = /^(.+)-(?:wal|shm|journal)$/s;

export const SQLITE_MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/** Why something in the tree was left out (the shim logs these; none of it is followed). */
export type SkipReason = 'symlink' | 'hardlink' | 'not-regular' | 'unreadable' | 'outside' | 'too-deep';

/** What a lookup found: an open directory or file, nothing (vanished), or a reason to skip. */
export interface SkippedEntry {
  path: string;
  reason: SkipReason;
}

type Opened<T> = { ok: T } | { skip: SkipReason } | { missing: true };

/** A directory opened with O_NOFOLLOW; children are resolved through its descriptor. */
class DirRef {
  private constructor(private readonly handle: FileHandle, readonly realPath: string) {}

  /** O_NOFOLLOW: a root swapped for a symlink after the pack checked it (state-archive.ts ownRoot) fails to open. */
  static async openRoot(realRoot: string): Promise<DirRef> {
    return new DirRef(await open(realRoot, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW), realRoot);
  }

  /** A path naming `name` inside this very directory, whatever happened to its path since. */
  child(name: string): string {
    return VIA_PROC ? `${PROC_FD}/${this.handle.fd}/${name}` : path.join(this.realPath, name);
  }

  list(): Promise<string[]> {
    return readdir(VIA_PROC ? `${PROC_FD}/${this.handle.fd}` : this.realPath);
  }

  /** O_DIRECTORY|O_NOFOLLOW: a symlink is refused, a FIFO or device never opened. */
  async openDir(name: string): Promise<Opened<DirRef>> {
    try {
      const h = await open(this.child(name), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
      return { ok: new DirRef(h, path.join(this.realPath, name)) };
    } catch (err) {
      // With O_DIRECTORY, Linux answers ENOTDIR for a symlink too.
      if (isCode(err, 'ENOTDIR')) return { skip: (await lstatOf(this.child(name)))?.isSymbolicLink() === true ? 'symlink' : 'not-regular' };
      return openFailure(err);
    }
  }

  /**
   * A regular file with one link, opened without following a symlink. A file with another link
   * may be a hard link to something outside the tree (another tenant's file on the same disk).
   */
  async openFile(name: string, st: Stats): Promise<Opened<{ handle: FileHandle; stat: Stats }>> {
    if (st.isSymbolicLink()) return { skip: 'symlink' };
    if (!st.isFile()) return { skip: 'not-regular' };
    let handle: FileHandle;
    try {
      // O_NONBLOCK: a FIFO swapped in after the lstat must not hang the open.
      handle = await open(this.child(name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      return openFailure(err);
    }
    const opened = await handle.stat();
    const skip: SkipReason | undefined = !opened.isFile() ? 'not-regular' : opened.nlink > 1 ? 'hardlink' : undefined;
    if (skip === undefined) return { ok: { handle, stat: opened } };
    await handle.close();
    return { skip };
  }

  stat(): Promise<Stats> {
    return this.handle.stat();
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export async function lstatOf(p: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch (err) {
    if (isCode(err, 'ENOENT', 'ENOTDIR')) return undefined;
    throw err;
  }
}

function openFailure(err: unknown): { skip: SkipReason } | { missing: true } {
  if (isCode(err, 'ENOENT', 'ENOTDIR')) return { missing: true };
  if (isCode(err, 'ELOOP')) return { skip: 'symlink' };
  if (isCode(err, 'ENXIO', 'EOPNOTSUPP')) return { skip: 'not-regular' }; // a socket
  if (isCode(err, 'EACCES', 'EPERM')) return { skip: 'unreadable' };
  throw err;
}

export function isCode(err: unknown, ...codes: string[]): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && codes.includes(code);
}

export async function hasSqliteMagic(handle: FileHandle): Promise<boolean> {
  const buf = Buffer.alloc(SQLITE_MAGIC.length);
  const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
  return bytesRead === buf.length && buf.equals(SQLITE_MAGIC);
}

/** Files up to this size are copied with one read and one write; larger ones are streamed. */
const SMALL_FILE = 256 * 1024;

/**
 * Copies the first `size` bytes of `handle` (its size when it was opened: a file the agent appends
 * to is copied as it was then) into a new file `dest`, hashing them. Returns the bytes copied
 * (fewer if the file shrank meanwhile).
 */
async function copyPrefix(handle: FileHandle, dest: string, size: number, mode: number): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  if (size <= SMALL_FILE) {
    const buf = Buffer.allocUnsafe(size);
    let bytes = 0;
    while (bytes < size) {
      const { bytesRead } = await handle.read(buf, bytes, size - bytes, bytes);
      if (bytesRead === 0) break; // shrank meanwhile
      bytes += bytesRead;
    }
    const out = await open(dest, 'wx', 0o600);
    try {
      await out.writeFile(buf.subarray(0, bytes));
      await out.chmod(mode);
    } finally {
      await out.close();
    }
    return { bytes, sha256: hash.update(buf.subarray(0, bytes)).digest('hex') };
  }
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(handle.createReadStream({ start: 0, end: size - 1, autoClose: false }), tap, createWriteStream(dest, { flags: 'wx', mode: 0o600 }));
  await chmod(dest, mode);
  return { bytes, sha256: hash.digest('hex') };
}

/**
 * Runs `fn` over `items`, at most `limit` at a time (many small files: the latency of each call
 * dominates). After a failure no new item starts, and it settles only when none runs any more.
 */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      try {
        await fn(items[next++]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejected = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (rejected !== undefined) throw rejected.reason;
}

class BudgetExceeded extends Error {
  constructor(readonly bytes: number) {
    super('over budget');
  }
}

/**
 * A consistent copy of a live SQLite database (the backup API reads through the WAL in one read
 * transaction, so a writer in WAL mode never blocks it and never tears it). Returns 'outside'
 * when SQLite ended up with a file outside `allowed` (a parent swapped for a symlink while it
 * resolved the path): the copy is then deleted. Throws BudgetExceeded when the database is
 * larger than `limit()` bytes.
 */
async function backupSqlite(source: string, dest: string, allowed: readonly string[], limit: () => number): Promise<'ok' | 'outside'> {
  const db = new Database(source, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    // A read first: SQLite then holds the database, its -wal and its -shm open.
    db.pragma('schema_version');
    const base = path.basename(source);
    if (!(await sqliteFdsInside(base, allowed))) return 'outside';
    const pageSize = Number(db.pragma('page_size', { simple: true }));
    await db.backup(dest, {
      progress: ({ totalPages }) => {
        if (totalPages * pageSize > limit()) throw new BudgetExceeded(totalPages * pageSize);
        // All remaining pages in one step: one read transaction, no restart under a busy writer.
        return 1 << 30;
      },
    });
    // The agent may switch the database to WAL mode meanwhile, which opens a -wal only now.
    if (!(await sqliteFdsInside(base, allowed))) return 'outside';
    return 'ok';
  } finally {
    db.close();
  }
}

/** Every descriptor of this process on `<base>`, `<base>-wal`, ... lies inside one of `allowed`. */
async function sqliteFdsInside(base: string, allowed: readonly string[]): Promise<boolean> {
  if (!VIA_PROC) return true;
  const names = new Set([base, ...SIDE_SUFFIXES.map((s) => base + s)]);
  for (const fd of await readdir(PROC_FD)) {
    let target: string;
    try {
      target = (await readlink(`${PROC_FD}/${fd}`)).replace(/ \(deleted\)$/, '');
    } catch {
      continue; // closed meanwhile (readdir's own descriptor among them)
    }
    if (!names.has(path.basename(target))) continue;
    if (!allowed.some((dir) => target.startsWith(`${dir}/`))) return false;
    const st = await stat(`${PROC_FD}/${fd}`).catch(() => undefined);
    if (st?.isFile() === true && st.nlink > 1) return false;
  }
  return true;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  const h = await open(file, 'r');
  try {
    for await (const chunk of h.createReadStream({ autoClose: false })) hash.update(chunk as Buffer);
  } finally {
    await h.close();
  }
  return hash.digest('hex');
}

/** Removes a staged copy that must not be archived (outside, over budget). */
function discard(file: string): Promise<void> {
  return rm(file, { force: true });
}

/** The state is above a bound (`unit` says which): the message names the size and the bound. */
export class StateTooLargeError extends RuntimeError {
  constructor(readonly measured: number, readonly limit: number, readonly unit: 'bytes' | 'entries', message: string) {
    super(message);
  }
}

export interface Entry {
  rel: string;
  dir: boolean;
  mode: number;
  /** Of the content; '' for a directory. */
  sha256: string;
}

interface PackerConfig {
  root: string;
  tree: string;
  staging: string;
  excludes: readonly string[];
  maxBytes: number;
  maxEntries: number;
}

/** Walks the declared paths through open directories and stages what may be archived. */
export class Packer {
  readonly entries: Entry[] = [];
  readonly skipped: SkippedEntry[] = [];
  rawBytes = 0;
  /** Above maxBytes: nothing more is copied, sizes are only added up for the error. */
  over = false;
  private backups: Promise<unknown> = Promise.resolve();

  constructor(readonly c: PackerConfig) {}

  async packPath(sp: StatePath): Promise<void> {
    const parts = sp.path.split('/');
    const open = [await DirRef.openRoot(this.c.root)];
    try {
      for (let i = 0; i < parts.length; i++) {
        const rel = parts.slice(0, i + 1).join('/');
        const parent = open[open.length - 1]!;
        const name = parts[i]!;
        if (i === parts.length - 1 && sp.kind !== 'dir') {
          const st = await lstatOf(parent.child(name));
          if (st !== undefined) await this.file(parent, name, rel, st);
          return;
        }
        const dir = await parent.openDir(name);
        if ('missing' in dir) return; // missing declared paths are fine
        if ('skip' in dir) return this.skip(rel, dir.skip);
        open.push(dir.ok);
      }
      await this.walk(open[open.length - 1]!, sp.path, parts.length);
    } finally {
      await Promise.all(open.map((d) => d.close()));
    }
  }

  private async walk(dir: DirRef, rel: string, depth: number): Promise<void> {
    await mkdir(path.join(this.c.tree, rel), { recursive: true, mode: 0o700 });
    const names = (await dir.list()).sort();
    const present = new Set(names);
    const files: { name: string; rel: string; st: Stats }[] = [];
    const dirs: string[] = [];
    for (const name of names) {
      const childRel = `${rel}/${name}`;
      if (isExcluded(childRel, this.c.excludes)) continue;
      const st = await lstatOf(dir.child(name));
      if (st === undefined) continue; // vanished
      if (st.isDirectory()) dirs.push(name);
      else {
        // A database's -wal/-shm/-journal: its backup has what they hold.
        const base = SIDE_FILE.exec(name)?.[1];
        if (base !== undefined && present.has(base) && !(await isPlainNonSqlite(dir, base))) continue;
        files.push({ name, rel: childRel, st });
      }
    }
    await eachLimited(files, 8, (f) => this.file(dir, f.name, f.rel, f.st));
    for (const name of dirs) {
      const childRel = `${rel}/${name}`;
      if (depth >= MAX_DEPTH) {
        this.skip(childRel, 'too-deep');
        continue;
      }
      const sub = await dir.openDir(name);
      if ('skip' in sub) this.skip(childRel, sub.skip);
      if (!('ok' in sub)) continue;
      try {
        await this.walk(sub.ok, childRel, depth + 1);
      } finally {
        await sub.ok.close();
      }
    }
    const st = await dir.stat();
    this.add({ rel, dir: true, mode: archivedMode(st.mode, true), sha256: '' });
    await chmod(path.join(this.c.tree, rel), archivedMode(st.mode, true));
    await utimes(path.join(this.c.tree, rel), st.atime, st.mtime);
  }

  private async file(dir: DirRef, name: string, rel: string, lst: Stats): Promise<void> {
    const opened = await dir.openFile(name, lst);
    if ('missing' in opened) return;
    if ('skip' in opened) return this.skip(rel, opened.skip);
    const { handle, stat: st } = opened.ok;
    // The header decides, not the declared kind: agents keep databases where profiles don't know.
    let sqlite: boolean;
    try {
      sqlite = await hasSqliteMagic(handle);
      if (!sqlite) await this.copy(handle, st, rel);
    } finally {
      // Closed before SQLite opens the file: closing any descriptor of a file drops all of this
      // process's POSIX locks on it, SQLite's included.
      await handle.close();
    }
    if (sqlite) await this.database(rel, st);
  }

  /** Reserves the size it had when opened, so files copied side by side never overrun the bound. */
  private async copy(handle: FileHandle, st: Stats, rel: string): Promise<void> {
    if (this.over || this.rawBytes + st.size > this.c.maxBytes) return this.measureOnly(st.size);
    this.rawBytes += st.size;
    const dest = await this.destFor(rel);
    const mode = archivedMode(st.mode, false);
    const { bytes, sha256 } = await copyPrefix(handle, dest, st.size, mode);
    this.rawBytes -= st.size - bytes;
    await utimes(dest, st.atime, st.mtime);
    this.add({ rel, dir: false, mode, sha256 });
  }

  /** One backup at a time: each holds a read transaction on the agent's database. */
  private database(rel: string, st: Stats): Promise<void> {
    const run = this.backups.then(() => this.backupOne(rel, st));
    this.backups = run.catch(() => undefined);
    return run;
  }

  private async backupOne(rel: string, st: Stats): Promise<void> {
    if (this.over) return this.measureOnly(st.size);
    const dest = await this.destFor(rel);
    const source = path.join(this.c.root, rel);
    let result: 'ok' | 'outside';
    try {
      result = await backupSqlite(source, dest, [this.c.root, this.c.staging], () => this.c.maxBytes - this.rawBytes);
    } catch (err) {
      await discard(dest);
      if (err instanceof BudgetExceeded) return this.measureOnly(err.bytes);
      if ((await lstatOf(source)) === undefined) return; // deleted meanwhile
      throw new RuntimeError(`state: cannot copy the SQLite database ${rel}: ${(err as Error).message}`, { cause: err });
    }
    if (result === 'outside') {
      await discard(dest);
      return this.skip(rel, 'outside');
    }
    const size = (await stat(dest)).size;
    if (this.rawBytes + size > this.c.maxBytes) {
      await discard(dest);
      return this.measureOnly(size);
    }
    this.rawBytes += size;
    const mode = archivedMode(st.mode, false);
    await chmod(dest, mode);
    await utimes(dest, st.atime, st.mtime);
    this.add({ rel, dir: false, mode, sha256: await sha256File(dest) });
  }

  private async destFor(rel: string): Promise<string> {
    const dest = path.join(this.c.tree, rel);
    await mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
    return dest;
  }

  /** Above the bound: nothing more is copied, sizes are only added up for the error. */
  private measureOnly(bytes: number): void {
    this.over = true;
    this.rawBytes += bytes;
  }

  private add(e: Entry): void {
    this.entries.push(e);
    this.checkEntries();
  }

  private skip(rel: string, reason: SkipReason): void {
    this.skipped.push({ path: rel, reason });
    this.checkEntries();
  }

  private checkEntries(): void {
    const n = this.entries.length + this.skipped.length;
    if (n > this.c.maxEntries) {
      throw new StateTooLargeError(n, this.c.maxEntries, 'entries', `state has more than ${this.c.maxEntries} entries`);
    }
  }
}

/** Is `name` a regular, non-empty file that is not a database (so its -wal/-shm/-journal are plain files too)? */
async function isPlainNonSqlite(dir: DirRef, name: string): Promise<boolean> {
  const st = await lstatOf(dir.child(name));
  if (st === undefined || !st.isFile() || st.size === 0) return false;
  const opened = await dir.openFile(name, st);
  if (!('ok' in opened)) return false;
  try {
    return !(await hasSqliteMagic(opened.ok.handle));
  } finally {
    await opened.ok.handle.close();
  }
}

export function isExcluded(rel: string, excludes: readonly string[]): boolean {
  return excludes.some((e) => rel === e || rel.startsWith(`${e}/`));
}

/** tar's portable mode (owner rw, no group/other write, listable dirs), without setuid/setgid/sticky. */
export function archivedMode(mode: number, dir: boolean): number {
  let m = ((mode & 0o777) | 0o600) & ~0o022;
  if (dir) m |= ((m & 0o444) >> 2);
  return m;
}

