/**
 * The whole-state archive (agent/state-archive.ts) on real files and real SQLite in WAL mode, the
 * pack side: the layout setting, format detection, the round trip, consistent copies of databases
 * another process writes during the pack, a content hash that ignores mtimes, a hostile tree (links
 * out, hard links, sockets, FIFOs, a process swapping a directory for a symlink while packing), the
 * pack's size and entry bounds, and streaming of a large file. The restore side:
 * test/state-restore.test.ts.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync, existsSync, linkSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { ConfigError, ValidationError } from '../lib/errors.js';
import {
  StateTooLargeError, clearStatePaths, detectStateFormat, packState, parseStatePaths, unpackState, type StatePath,
} from '../agent/state-archive.js';
import { MiB, entriesOf, makeDb, put, rejectsWith, rowsOf, snapshot, startWriter, stateDirs } from './support/state-archive.js';

const { fresh } = stateDirs(t, 'state-archive');

t.test('parseStatePaths: kinds from the prefix or the ending', async (t) => {
  t.same(parseStatePaths(' data/memory/brain.db, workspace/ ,file:config.toml,dir:agents,sqlite:state/queue,x.sqlite3,notes.txt', 'AGENT_STATE_PATHS'), [
    { path: 'data/memory/brain.db', kind: 'sqlite' },
    { path: 'workspace', kind: 'dir' },
    { path: 'config.toml', kind: 'file' },
    { path: 'agents', kind: 'dir' },
    { path: 'state/queue', kind: 'sqlite' },
    { path: 'x.sqlite3', kind: 'sqlite' },
    { path: 'notes.txt', kind: 'file' },
  ]);
  t.same(parseStatePaths('dir:workspace/', 'X'), [{ path: 'workspace', kind: 'dir' }]);
});

t.test('parseStatePaths: a one-line ConfigError naming the setting', async (t) => {
  const cases: [string, RegExp][] = [
    ['../other/brain.db', /'\.\.'/],
    ['memory/../../x', /'\.\.'/],
    ['/etc/passwd', /absolute/],
    ['a,,b', /empty entry/],
    ['a,', /empty entry/],
    ['', /no paths/],
    ['memory/brain.db,memory/brain.db', /listed twice/],
    ['workspace/,workspace/notes.md', /inside 'workspace'/],
    ['./x', /plain relative/],
    ['a//b', /plain relative/],
  ];
  for (const [spec, why] of cases) {
    let caught: unknown;
    try {
      parseStatePaths(spec, 'AGENT_STATE_PATHS');
    } catch (err) {
      caught = err;
    }
    t.type(caught, ConfigError, `${JSON.stringify(spec)} is refused`);
    const e = caught as ConfigError;
    t.equal(e.variable, 'AGENT_STATE_PATHS');
    t.match(e.message, /^AGENT_STATE_PATHS: /);
    t.match(e.message, why, `${JSON.stringify(spec)}: ${e.message}`);
    t.notMatch(e.message, /\n/);
  }
});

t.test('pack, unpack and clear refuse a bad layout with a one-line ValidationError', async (t) => {
  const { root, scratch } = fresh('layout');
  const opts = (paths: StatePath[], excludes: string[] = [], scratchDir = scratch) => ({ root, paths, excludes, scratchDir, maxBytes: MiB });
  const cases: [string, ReturnType<typeof opts>, RegExp][] = [
    ['overlap', opts([{ path: 'data', kind: 'dir' }, { path: 'data/memory/brain.db', kind: 'sqlite' }]), /inside 'data'/],
    ['dot-dot', opts([{ path: 'a/../../b', kind: 'file' }]), /'\.\.'/],
    ['exclude covering a path', opts([{ path: 'data/memory/brain.db', kind: 'sqlite' }], ['data/']), /covers the state path/],
    ['scratch inside a path', opts([{ path: 'work', kind: 'dir' }], [], path.join(root, 'work/.shim')), /inside the state path 'work'/],
  ];
  for (const [what, o, why] of cases) {
    const err = await rejectsWith(t, packState(o), ValidationError, `pack: ${what}`);
    t.match(err?.message ?? '', why);
  }
  await rejectsWith(t, clearStatePaths(root, [{ path: '/etc', kind: 'dir' }]), ValidationError, 'clear: absolute');
  // A profile may write a directory with its trailing '/'; a scratch dir beside the paths is fine.
  put(root, 'state/x.json', '{}');
  const packed = await packState(opts([{ path: 'state/', kind: 'dir' }], ['tmp/'], path.join(root, '.shim')));
  t.same((await entriesOf(packed.file)).map((e) => e.path), ['state/', 'state/x.json']);
});

t.test('detectStateFormat: archive, the older bare brain.db, empty, anything else', async (t) => {
  const { root, scratch } = fresh('detect');
  makeDb(path.join(root, 'brain.db'), ['x']);
  put(root, 'empty', '');
  put(root, 'text', 'hello world, not a state');
  const packed = await packState({ root, paths: [{ path: 'brain.db', kind: 'sqlite' }], scratchDir: scratch, maxBytes: MiB });
  t.equal(await detectStateFormat(packed.file), 'archive');
  t.equal(await detectStateFormat(path.join(root, 'brain.db')), 'sqlite');
  t.equal(await detectStateFormat(path.join(root, 'empty')), 'empty');
  t.equal(await detectStateFormat(path.join(root, 'text')), 'unknown');
});

t.test('round trip: files, modes, mtimes, empty dirs, declared and discovered databases; no -wal/-shm; caches out', async (t) => {
  const { dir, root, scratch } = fresh('roundtrip');
  makeDb(path.join(root, 'data/memory/brain.db'), ['first', 'second']);
  // Kept by the agent where no profile knows: found by its header, not its name.
  makeDb(path.join(root, 'agents/main/agent/index.bin'), ['deep']);
  put(root, 'agents/main/workspace/SOUL.md', '# soul');
  put(root, 'agents/main/run.sh', '#!/bin/sh\necho hi\n', 0o755);
  put(root, 'agents/main/secret.key', 'k', 0o600);
  mkdirSync(path.join(root, 'agents/main/empty'), { recursive: true });
  put(root, 'agents/main/cache/blob.bin', 'regenerable');
  put(root, 'agents/notes-journal', 'a journal of my own, not SQLite\'s'); // no database "notes" beside it
  put(root, 'config.toml', 'a = 1\n');
  put(root, 'logs/today.log', 'not state');
  utimesSync(path.join(root, 'config.toml'), new Date('2024-01-02T03:04:05Z'), new Date('2024-01-02T03:04:05Z'));
  // An open connection keeps the -wal and -shm on disk, as a running agent does.
  const live = new Database(path.join(root, 'data/memory/brain.db'));
  live.pragma('wal_autocheckpoint = 0');
  live.prepare('INSERT INTO memories (text) VALUES (?)').run('only in the wal');
  t.ok(statSync(path.join(root, 'data/memory/brain.db-wal')).size > 0, 'the last row is only in the -wal');
  const paths: StatePath[] = [
    { path: 'data/memory/brain.db', kind: 'sqlite' },
    { path: 'agents/', kind: 'dir' },
    { path: 'config.toml', kind: 'file' },
    { path: 'data/missing.db', kind: 'sqlite' },
    { path: 'nowhere/', kind: 'dir' },
  ];
  const packed = await packState({ root, paths, excludes: ['agents/main/cache/', 'logs/'], scratchDir: scratch, maxBytes: 4 * MiB });
  live.close();
  t.same(packed.skipped, [], 'nothing skipped, missing declared paths are fine');
  const entries = await entriesOf(packed.file);
  t.same(entries.map((e) => e.path), [
    'agents/', 'agents/main/', 'agents/main/agent/', 'agents/main/agent/index.bin', 'agents/main/empty/',
    'agents/main/run.sh', 'agents/main/secret.key', 'agents/main/workspace/', 'agents/main/workspace/SOUL.md',
    'agents/notes-journal', 'config.toml', 'data/memory/brain.db',
  ], 'sorted; no -wal, -shm or cache; the declared database without its parents');
  t.equal(packed.entries, entries.length);
  t.equal(entries.find((e) => e.path === 'agents/main/run.sh')?.mode, 0o755);
  t.equal(entries.find((e) => e.path === 'agents/main/secret.key')?.mode, 0o600);
  t.same(readdirSync(scratch), [path.basename(packed.file)], 'only the archive is left in scratch');

  const restored = path.join(dir, 'restored');
  const got = await unpackState(packed.file, { root: restored, paths, scratchDir: scratch, maxBytes: 4 * MiB });
  t.same(got, { entries: packed.entries, rawBytes: packed.rawBytes });
  t.same(rowsOf(path.join(restored, 'data/memory/brain.db')), ['first', 'second', 'only in the wal'], 'read through the WAL');
  t.same(rowsOf(path.join(restored, 'agents/main/agent/index.bin')), ['deep']);
  const snap = snapshot(restored);
  t.equal(snap['agents/main/workspace/SOUL.md'], '# soul');
  t.equal(snap['agents/main/empty'], 'dir');
  t.notOk('agents/main/cache' in snap, 'the cache is not restored');
  t.equal(statSync(path.join(restored, 'agents/main/run.sh')).mode & 0o777, 0o755);
  t.equal(statSync(path.join(restored, 'agents/main/secret.key')).mode & 0o777, 0o600);
  t.equal(statSync(path.join(restored, 'config.toml')).mtime.toISOString(), '2024-01-02T03:04:05.000Z');
  t.same(readdirSync(scratch), [path.basename(packed.file)], 'the restore staging is gone');
});

t.test('databases written by another process during the pack restore consistent', async (t) => {
  const { dir, root, scratch } = fresh('wal-writer');
  const paths: StatePath[] = [{ path: 'memory/brain.db', kind: 'sqlite' }, { path: 'state/', kind: 'dir' }];
  const brain = path.join(root, 'memory/brain.db');
  const queue = path.join(root, 'state/queue.sqlite');
  mkdirSync(path.dirname(brain), { recursive: true });
  mkdirSync(path.dirname(queue), { recursive: true });
  const writer = await startWriter([brain, queue]);
  let previous = 0;
  try {
    for (let i = 0; i < 6; i++) {
      const committed = rowsOf(brain).length;
      t.ok(statSync(`${brain}-wal`).size > 0 && existsSync(`${queue}-wal`), `pack ${i}: the writer is mid-WAL`);
      const packed = await packState({ root, paths, scratchDir: scratch, maxBytes: 256 * MiB });
      const names = (await entriesOf(packed.file)).map((e) => e.path);
      t.notOk(names.some((n) => /-(wal|shm|journal)$/.test(n)), `pack ${i}: no -wal/-shm/-journal in ${names.join(' ')}`);
      const restored = path.join(dir, `restored-${i}`);
      await unpackState(packed.file, { root: restored, paths, scratchDir: scratch, maxBytes: 256 * MiB });
      for (const rel of ['memory/brain.db', 'state/queue.sqlite']) {
        const db = new Database(path.join(restored, rel), { fileMustExist: true });
        t.equal(db.pragma('integrity_check', { simple: true }), 'ok', `pack ${i}: ${rel} passes integrity_check`);
        const rows = (db.prepare('SELECT count(*) AS n FROM memories').get() as { n: number }).n;
        const tally = (db.prepare('SELECT n FROM tally').get() as { n: number }).n;
        t.equal(rows, tally, `pack ${i}: ${rel} holds whole transactions only (${rows} rows)`);
        if (rel === 'memory/brain.db') {
          t.ok(rows >= committed && rows > previous, `pack ${i}: the copy has what was committed before it (${rows} >= ${committed})`);
          previous = rows;
        }
        db.close();
      }
      rmSync(packed.file);
    }
  } finally {
    await writer.stop();
  }
});

t.test('contentSha256 ignores mtimes and follows content and mode', async (t) => {
  const { root, scratch } = fresh('sha');
  makeDb(path.join(root, 'memory/brain.db'), ['a']);
  put(root, 'workspace/a.md', 'alpha');
  put(root, 'workspace/b/c.md', 'gamma');
  const paths: StatePath[] = [{ path: 'memory/brain.db', kind: 'sqlite' }, { path: 'workspace/', kind: 'dir' }];
  const pack = () => packState({ root, paths, scratchDir: scratch, maxBytes: MiB });
  const first = await pack();
  for (const rel of ['workspace/a.md', 'workspace/b/c.md', 'workspace/b', 'workspace', 'memory/brain.db']) {
    utimesSync(path.join(root, rel), new Date('2030-01-01'), new Date('2030-01-01'));
  }
  const touched = await pack();
  t.equal(touched.contentSha256, first.contentSha256, 'same state, new mtimes: same hash');
  put(root, 'workspace/a.md', 'alphb');
  const edited = await pack();
  t.not(edited.contentSha256, first.contentSha256, 'one byte changed: new hash');
  chmodSync(path.join(root, 'workspace/b/c.md'), 0o755);
  const chmodded = await pack();
  t.not(chmodded.contentSha256, edited.contentSha256, 'mode changed: new hash');
  const db = new Database(path.join(root, 'memory/brain.db'));
  db.prepare('INSERT INTO memories (text) VALUES (?)').run('b');
  db.close();
  t.not((await pack()).contentSha256, chmodded.contentSha256, 'a database row added: new hash');
});

t.test('pack never follows a link out of the tree; skips hard links, sockets and FIFOs', async (t) => {
  const { dir, root, scratch } = fresh('hostile');
  const other = path.join(dir, 'other-tenant');
  put(other, 'secret.txt', 'SECRET-OF-ANOTHER-TENANT');
  put(other, 'data/x.txt', 'SECRET-OF-ANOTHER-TENANT');
  makeDb(path.join(other, 'brain.db'), ['SECRET-OF-ANOTHER-TENANT']);
  makeDb(path.join(other, 'memory/brain.db'), ['SECRET-OF-ANOTHER-TENANT']);
  put(root, 'workspace/ok.txt', 'mine');
  symlinkSync(path.join(other, 'secret.txt'), path.join(root, 'workspace/to-file'));
  symlinkSync('/proc/self/environ', path.join(root, 'workspace/environ'));
  symlinkSync('../../other-tenant', path.join(root, 'workspace/up'));
  symlinkSync(path.join(other, 'brain.db'), path.join(root, 'workspace/to-db'));
  linkSync(path.join(other, 'secret.txt'), path.join(root, 'workspace/hard'));
  t.equal(spawnSync('mkfifo', [path.join(root, 'workspace/fifo')]).status, 0, 'mkfifo');
  const sock: Server = createServer();
  await new Promise<void>((r) => sock.listen(path.join(root, 'workspace/sock'), r));
  t.teardown(() => sock.close());
  // Declared paths whose own components are links.
  symlinkSync(path.join(other, 'data'), path.join(root, 'data'));
  symlinkSync(path.join(other, 'memory'), path.join(root, 'memory'));
  symlinkSync(path.join(other, 'brain.db'), path.join(root, 'top.db'));
  const paths: StatePath[] = [
    { path: 'workspace/', kind: 'dir' }, { path: 'data/', kind: 'dir' }, { path: 'memory/brain.db', kind: 'sqlite' },
    { path: 'top.db', kind: 'sqlite' }, { path: 'gone/', kind: 'dir' },
  ];
  const packed = await packState({ root, paths, scratchDir: scratch, maxBytes: MiB });
  t.same([...packed.skipped].sort((a, b) => a.path.localeCompare(b.path)), [
    { path: 'data', reason: 'symlink' },
    { path: 'memory', reason: 'symlink' },
    { path: 'top.db', reason: 'symlink' },
    { path: 'workspace/environ', reason: 'symlink' },
    { path: 'workspace/fifo', reason: 'not-regular' },
    { path: 'workspace/hard', reason: 'hardlink' },
    { path: 'workspace/sock', reason: 'not-regular' },
    { path: 'workspace/to-db', reason: 'symlink' },
    { path: 'workspace/to-file', reason: 'symlink' },
    { path: 'workspace/up', reason: 'symlink' },
  ], 'each one reported, the missing declared path not');
  t.same((await entriesOf(packed.file)).map((e) => e.path), ['workspace/', 'workspace/ok.txt']);
  t.notMatch(gunzipSync(readFileSync(packed.file)).toString('latin1'), /SECRET-OF-ANOTHER-TENANT|PATH=/, 'nothing from outside in the bytes');
});

t.test('pack under a process swapping a directory for a symlink never archives what is outside', async (t) => {
  const { dir, root, scratch } = fresh('race');
  const other = path.join(dir, 'other-tenant');
  for (let i = 0; i < 20; i++) put(other, `data/note-${i}.txt`, 'SECRET-OF-ANOTHER-TENANT');
  makeDb(path.join(other, 'data/brain.db'), ['SECRET-OF-ANOTHER-TENANT']);
  for (let i = 0; i < 20; i++) put(root, `data/note-${i}.txt`, 'mine');
  makeDb(path.join(root, 'data/brain.db'), ['mine']);
  const script = `
    const fs = require('fs');
    const [root, other] = process.argv.slice(1);
    const link = root + '/data', real = root + '/data.real';
    process.stdout.write('ready\\n');
    for (;;) {
      try { fs.renameSync(link, real); fs.symlinkSync(other + '/data', link); fs.unlinkSync(link); fs.renameSync(real, link); } catch {}
    }
  `;
  const racer = spawn(process.execPath, ['-e', script, root, other], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r) => racer.stdout.once('data', () => r()));
  let packs = 0;
  let failures = 0;
  let leaks = 0;
  const outcomes = new Map<string, number>();
  try {
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      try {
        const packed = await packState({ root, paths: [{ path: 'data/', kind: 'dir' }], scratchDir: scratch, maxBytes: MiB });
        packs++;
        const outcome = packed.skipped.length > 0 ? packed.skipped.map((s) => s.reason).join(',') : `${packed.entries} entries`;
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        if (gunzipSync(readFileSync(packed.file)).toString('latin1').includes('SECRET-OF-ANOTHER-TENANT')) leaks++;
        rmSync(packed.file);
      } catch (err) {
        failures++; // the agent broke its own checkpoint: allowed, as long as nothing leaks
        if (String(err).includes('SECRET')) leaks++;
      }
    }
  } finally {
    const exited = new Promise((r) => racer.once('exit', r));
    racer.kill('SIGKILL');
    await exited;
  }
  t.equal(leaks, 0, 'no archive (and no error) holds anything of the other tenant');
  t.comment(`${packs} packs, ${failures} failed; outcomes: ${JSON.stringify([...outcomes])}`);
  t.ok(packs > 10, 'packs ran while the directory was being swapped');
});

t.test('pack stops above maxBytes with the measured size and the bound, and above maxEntries', async (t) => {
  const { root, scratch } = fresh('too-big');
  for (let i = 0; i < 3; i++) put(root, `workspace/f${i}.bin`, Buffer.alloc(400 * 1024, i));
  makeDb(path.join(root, 'workspace/db.sqlite'), ['x']);
  const paths: StatePath[] = [{ path: 'workspace/', kind: 'dir' }];
  const err = await rejectsWith(t, packState({ root, paths, scratchDir: scratch, maxBytes: MiB }), StateTooLargeError, 'above 1 MiB');
  t.equal(err?.code, 'E_RUNTIME');
  t.equal(err?.limit, MiB);
  t.equal(err?.unit, 'bytes');
  t.ok((err?.measured ?? 0) >= 3 * 400 * 1024, `measured the whole state (${err?.measured})`);
  t.match(err?.message ?? '', /^state is 1\.2 MiB, above the 1\.0 MiB bound \(STATE_MAX_BYTES\)$/);
  t.same(readdirSync(scratch), [], 'no staging, no partial archive left');
  const many = await rejectsWith(t, packState({ root, paths, scratchDir: scratch, maxBytes: 8 * MiB, maxEntries: 3 }), StateTooLargeError, 'above 3 entries');
  t.equal(many?.unit, 'entries');
  t.match(many?.message ?? '', /more than 3 entries/);
  t.ok((await packState({ root, paths, scratchDir: scratch, maxBytes: 8 * MiB, maxEntries: 5 })).entries === 5, 'exactly at the bound is fine');
});

t.test('a large file streams through pack and unpack', async (t) => {
  const { dir, root, scratch } = fresh('stream');
  // Resident memory here settles at ~50-70 MiB whatever the file's size (96, 256 and 512 MiB measured
  // in fresh processes): stream buffers and the allocator's slack, not the file. So the file is made
  // large enough that the bound, half of it, sits well above that plateau and well below what holding
  // the file in memory would take.
  const size = 256 * MiB;
  mkdirSync(path.join(root, 'workspace'), { recursive: true });
  writeFileSync(path.join(root, 'workspace/big.bin'), '');
  truncateSync(path.join(root, 'workspace/big.bin'), size);
  const paths: StatePath[] = [{ path: 'workspace/', kind: 'dir' }];
  const baseline = process.memoryUsage.rss();
  let peak = baseline;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()); }, 5);
  try {
    const packed = await packState({ root, paths, scratchDir: scratch, maxBytes: 512 * MiB });
    t.equal(packed.rawBytes, size);
    await unpackState(packed.file, { root: path.join(dir, 'restored'), paths, scratchDir: scratch, maxBytes: 512 * MiB });
  } finally {
    clearInterval(sampler);
  }
  t.equal(statSync(path.join(dir, 'restored/workspace/big.bin')).size, size);
  t.ok(peak - baseline < size / 2, `resident memory grew by ${Math.round((peak - baseline) / MiB)} MiB for a ${size / MiB} MiB file`);
});
