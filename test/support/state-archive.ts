/**
 * Helpers of the state archive's tests (test/state-archive.test.ts, test/state-restore.test.ts):
 * fresh state roots on one filesystem, files and WAL databases, reading an archive's entries, a
 * snapshot of a tree, hand-made archives holding what packState never writes, and a process that
 * writes to databases as an agent does.
 */
import { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { Header, list } from 'tar';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MiB = 1 << 20;

/** A temporary directory for one test file, removed at its end; `fresh` makes state roots in it. */
export function stateDirs(t: Test, name: string): { base: string; fresh(name: string): { root: string; scratch: string; dir: string } } {
  const base = mkdtempSync(path.join(tmpdir(), `ztm-${name}-`));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  let seq = 0;
  return {
    base,
    /** A fresh state root and a scratch dir beside it (same filesystem). */
    fresh(what: string) {
      const dir = path.join(base, `${++seq}-${what}`);
      mkdirSync(path.join(dir, 'root'), { recursive: true });
      return { dir, root: path.join(dir, 'root'), scratch: path.join(dir, 'scratch') };
    },
  };
}

export function put(root: string, rel: string, content: string | Buffer, mode?: number): void {
  const file = path.join(root, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
  if (mode !== undefined) chmodSync(file, mode);
}

/** A WAL database with a `memories` table; the connection is closed (the agent is stopped). */
export function makeDb(file: string, rows: readonly string[]): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE IF NOT EXISTS memories (text TEXT)');
  for (const r of rows) db.prepare('INSERT INTO memories (text) VALUES (?)').run(r);
  db.close();
}

export function rowsOf(file: string): string[] {
  const db = new Database(file, { fileMustExist: true });
  try {
    return (db.prepare('SELECT text FROM memories ORDER BY rowid').all() as { text: string }[]).map((r) => r.text);
  } finally {
    db.close();
  }
}

export async function entriesOf(file: string): Promise<{ path: string; type: string; mode: number }[]> {
  const out: { path: string; type: string; mode: number }[] = [];
  await list({ file, onReadEntry: (e) => out.push({ path: e.path, type: e.type, mode: e.mode ?? 0 }) });
  return out;
}

/** Every path under `root`: 'dir', 'link -> target', or the file's text. */
export function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const abs = path.join(dir, name);
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(abs);
      if (st.isSymbolicLink()) out[r] = `link -> ${readlinkSync(abs)}`;
      else if (st.isDirectory()) {
        out[r] = 'dir';
        walk(abs, r);
      } else out[r] = readFileSync(abs, 'latin1');
    }
  };
  walk(root, '');
  return out;
}

export async function rejectsWith<T extends Error>(t: Test, p: Promise<unknown>, cls: new (...args: never[]) => T, what: string): Promise<T | undefined> {
  try {
    await p;
  } catch (err) {
    t.type(err, cls, `${what}: ${cls.name}`);
    t.notMatch((err as Error).message, /\n/, `${what}: one-line message (${(err as Error).message})`);
    return err instanceof cls ? err : undefined;
  }
  t.fail(`${what}: expected a ${cls.name}, it resolved`);
  return undefined;
}

/** A tar.gz made by hand, so it can hold what packState never writes. */
export function rawArchive(entries: readonly { path: string; type?: string; body?: Buffer; size?: number; linkpath?: string }[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = e.body ?? Buffer.alloc(0);
    const h = new Header({
      path: e.path, type: (e.type ?? 'File') as never, size: e.size ?? body.length, mode: 0o644,
      mtime: new Date(1_700_000_000_000), uid: 0, gid: 0, ...(e.linkpath === undefined ? {} : { linkpath: e.linkpath }),
    });
    h.encode();
    blocks.push(h.block!, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

/** A process that writes to WAL databases as an agent does, until killed. */
export async function startWriter(files: readonly string[]): Promise<{ stop(): Promise<void> }> {
  // The first database never checkpoints (all its commits stay in the -wal), the second does.
  const script = `
    const Database = require('better-sqlite3');
    const steps = process.argv.slice(1).map((file, i) => {
      const db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      if (i === 0) db.pragma('wal_autocheckpoint = 0');
      db.exec('CREATE TABLE IF NOT EXISTS memories (text TEXT); CREATE TABLE IF NOT EXISTS tally (n INTEGER); INSERT INTO tally SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM tally)');
      const add = db.prepare("INSERT INTO memories (text) VALUES (hex(randomblob(300)))");
      const bump = db.prepare('UPDATE tally SET n = n + 1');
      return db.transaction(() => { add.run(); bump.run(); });
    });
    let ticks = 0;
    setInterval(() => {
      for (let k = 0; k < 10; k++) for (const step of steps) step();
      if (++ticks === 5) process.stdout.write('ready\\n');
    }, 2);
  `;
  const child: ChildProcess = spawn(process.execPath, ['-e', script, ...files], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
    child.on('exit', (code) => reject(new Error(`writer exited early (${code})`)));
  });
  return {
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}
