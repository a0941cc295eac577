/**
 * The whole-state archive's restore (agent/state-archive.ts unpackState, clearStatePaths) on real
 * files: hostile and damaged archives refused with the root untouched, the unpack's bounds, the
 * restore replacing the whole state while leaving caches alone, and a fresh start's clear. The pack
 * side: test/state-archive.test.ts.
 */
import t from 'tap';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ValidationError } from '../lib/errors.js';
import { StateTooLargeError, clearStatePaths, packState, unpackState, type StatePath } from '../agent/state-archive.js';
import { lstatOf } from '../agent/state-archive-walk.js';
import { removeForeignRoot } from '../agent/state-root.js';
import { MiB, makeDb, put, rawArchive, rejectsWith, rowsOf, snapshot, stateDirs } from './support/state-archive.js';

const { base, fresh } = stateDirs(t, 'state-restore');

t.test('unpack refuses absolute, .., link, device and undeclared entries, leaving the root untouched', async (t) => {
  const { dir, root, scratch } = fresh('refuse');
  put(root, 'workspace/keep.txt', 'before');
  makeDb(path.join(root, 'memory/brain.db'), ['before']);
  const before = snapshot(root);
  const paths: StatePath[] = [{ path: 'workspace/', kind: 'dir' }, { path: 'memory/brain.db', kind: 'sqlite' }];
  const ok = { path: 'workspace/new.txt', body: Buffer.from('new') };
  const cases: [string, Parameters<typeof rawArchive>[0], RegExp][] = [
    ['absolute', [ok, { path: '/etc/cron.d/x', body: Buffer.from('x') }], /absolute/],
    ['dot-dot', [ok, { path: 'workspace/../../escape.txt', body: Buffer.from('x') }], /'\.\.'/],
    ['symlink', [ok, { path: 'workspace/l', type: 'SymbolicLink', linkpath: '/etc/passwd' }], /SymbolicLink/],
    ['hard link', [ok, { path: 'workspace/h', type: 'Link', linkpath: 'workspace/new.txt' }], /Link/],
    ['char device', [ok, { path: 'workspace/tty', type: 'CharacterDevice' }], /CharacterDevice/],
    ['fifo', [ok, { path: 'workspace/p', type: 'FIFO' }], /FIFO/],
    ['undeclared', [ok, { path: 'other/x.txt', body: Buffer.from('x') }], /outside the state paths/],
    ['below a file path', [ok, { path: 'memory/brain.db/x', body: Buffer.from('x') }], /outside the state paths/],
    ['dir where a file is declared', [ok, { path: 'memory/brain.db/', type: 'Directory' }], /not a file/],
    ['twice', [ok, ok], /clashes with another entry/],
  ];
  for (const [what, entries, why] of cases) {
    const file = path.join(dir, `${what}.tar.gz`);
    writeFileSync(file, rawArchive(entries));
    const err = await rejectsWith(t, unpackState(file, { root, paths, scratchDir: scratch, maxBytes: MiB }), ValidationError, what);
    t.match(err?.message ?? '', why, `${what}: says why`);
    t.same(snapshot(root), before, `${what}: root untouched`);
    t.same(readdirSync(scratch), [], `${what}: staging removed`);
  }
  t.notOk(existsSync(path.join(dir, 'escape.txt')) || existsSync(path.join(base, 'escape.txt')), 'nothing written outside');
});

t.test('unpack bounds what it extracts and refuses a damaged archive', async (t) => {
  const { dir, root, scratch } = fresh('bounds');
  put(root, 'workspace/keep.txt', 'before');
  const before = snapshot(root);
  const paths: StatePath[] = [{ path: 'workspace/', kind: 'dir' }];
  const bomb = path.join(dir, 'bomb.tar.gz');
  writeFileSync(bomb, rawArchive([{ path: 'workspace/zeros', body: Buffer.alloc(64 * MiB) }]));
  t.ok(statSync(bomb).size < 200 * 1024, `64 MiB of zeros in ${statSync(bomb).size} bytes`);
  const big = await rejectsWith(t, unpackState(bomb, { root, paths, scratchDir: scratch, maxBytes: MiB }), StateTooLargeError, 'gzip bomb');
  t.equal(big?.unit, 'bytes');
  t.match(big?.message ?? '', /above the 1\.0 MiB bound/);
  t.same(readdirSync(scratch), [], 'bomb: nothing left in scratch (nothing was written)');

  // Small entries, then 64 MiB of zeros after the end of the archive: refused while inflating.
  const padded = path.join(dir, 'padded.tar.gz');
  const tarPart = gunzipSync(rawArchive([{ path: 'workspace/a', body: Buffer.from('a') }]));
  writeFileSync(padded, gzipSync(Buffer.concat([tarPart, Buffer.alloc(64 * MiB)])));
  const inflating = await rejectsWith(t, unpackState(padded, { root, paths, scratchDir: scratch, maxBytes: MiB }), ValidationError, 'padding bomb');
  t.match(inflating?.message ?? '', /decompression bomb/);

  const many = path.join(dir, 'many.tar.gz');
  writeFileSync(many, rawArchive(Array.from({ length: 50 }, (_, i) => ({ path: `workspace/f${i}`, body: Buffer.from('x') }))));
  const err = await rejectsWith(t, unpackState(many, { root, paths, scratchDir: scratch, maxBytes: MiB, maxEntries: 10 }), StateTooLargeError, 'too many entries');
  t.equal(err?.unit, 'entries');

  // A real archive cut short (an interrupted download that passed for whole).
  put(root, 'workspace/big.bin', Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251)));
  const packed = await packState({ root, paths, scratchDir: scratch, maxBytes: MiB });
  rmSync(path.join(root, 'workspace/big.bin'));
  const cut = path.join(dir, 'cut.tar.gz');
  writeFileSync(cut, readFileSync(packed.file).subarray(0, Math.floor(statSync(packed.file).size / 2)));
  await rejectsWith(t, unpackState(cut, { root, paths, scratchDir: scratch, maxBytes: MiB }), ValidationError, 'truncated');
  const notArchive = path.join(dir, 'plain.txt');
  writeFileSync(notArchive, 'plain text');
  await rejectsWith(t, unpackState(notArchive, { root, paths, scratchDir: scratch, maxBytes: MiB }), ValidationError, 'not an archive');
  t.same(snapshot(root), before, 'root untouched by all of them');
  t.same(readdirSync(scratch), [path.basename(packed.file)], 'no staging left');
});

t.test('restore replaces the whole state: leftovers and stale -wal/-shm go, caches stay, links in the way are replaced', async (t) => {
  const { dir, root, scratch } = fresh('replace');
  const paths: StatePath[] = [
    { path: 'memory/brain.db', kind: 'sqlite' }, { path: 'workspace/', kind: 'dir' },
    { path: 'config.toml', kind: 'file' }, { path: 'data/state/', kind: 'dir' },
  ];
  const excludes = ['workspace/cache/', 'tmp/'];
  makeDb(path.join(root, 'memory/brain.db'), ['saved']);
  put(root, 'workspace/notes.md', 'saved notes');
  put(root, 'data/state/costs.jsonl', '{"saved":1}\n');
  const packed = await packState({ root, paths, excludes, scratchDir: scratch, maxBytes: MiB });

  // What a later (or earlier) run left behind.
  const target = path.join(dir, 'target');
  const other = path.join(dir, 'other-tenant');
  put(other, 'state/costs.jsonl', 'OTHER TENANT');
  makeDb(path.join(target, 'memory/brain.db'), ['newer, never saved']);
  put(target, 'memory/brain.db-wal', 'stale wal');
  put(target, 'memory/brain.db-shm', 'stale shm');
  put(target, 'workspace/notes.md', 'newer notes');
  put(target, 'workspace/leftover.md', 'not in the archive');
  put(target, 'workspace/cache/big.bin', 'cache');
  put(target, 'config.toml', 'not in the archive either');
  put(target, 'tmp/x', 'tmp');
  put(target, 'unrelated.txt', 'not a state path');
  symlinkSync(other, path.join(target, 'data')); // a parent of a declared path, pointing at another tenant

  const got = await unpackState(packed.file, { root: target, paths, excludes, scratchDir: scratch, maxBytes: MiB });
  t.equal(got.entries, packed.entries);
  t.same(rowsOf(path.join(target, 'memory/brain.db')), ['saved']);
  const snap = snapshot(target);
  t.same(Object.keys(snap).sort(), [
    'data', 'data/state', 'data/state/costs.jsonl', 'memory', 'memory/brain.db', 'tmp', 'tmp/x', 'unrelated.txt',
    'workspace', 'workspace/cache', 'workspace/cache/big.bin', 'workspace/notes.md',
  ], 'exactly the archive, plus caches and what is not state');
  t.equal(snap['workspace/notes.md'], 'saved notes');
  t.equal(snap['workspace/cache/big.bin'], 'cache', 'the cache inside a declared dir is kept');
  t.equal(snap['data'], 'dir', 'the symlinked parent became a real directory');
  t.equal(snap['data/state/costs.jsonl'], '{"saved":1}\n');
  t.equal(readFileSync(path.join(other, 'state/costs.jsonl'), 'utf8'), 'OTHER TENANT', 'the other tenant is untouched');
  t.same(readdirSync(scratch), [path.basename(packed.file)], 'the restore staging is gone');

  // An archive from a profile that did not exclude the cache yet: the root's cache wins.
  put(root, 'workspace/cache/big.bin', 'the archive\'s stale cache');
  const older = await packState({ root, paths, scratchDir: scratch, maxBytes: MiB });
  await unpackState(older.file, { root: target, paths, excludes, scratchDir: scratch, maxBytes: MiB });
  t.equal(readFileSync(path.join(target, 'workspace/cache/big.bin'), 'utf8'), 'cache', 'an archived cache is not extracted');

  // An empty archive (the state was deleted) empties the state paths the same way.
  const empty = fresh('empty');
  const none = await packState({ root: empty.root, paths, excludes, scratchDir: empty.scratch, maxBytes: MiB });
  t.equal(none.entries, 0);
  await unpackState(none.file, { root: target, paths, excludes, scratchDir: scratch, maxBytes: MiB });
  t.same(Object.keys(snapshot(target)).sort(), [
    'data', 'memory', 'tmp', 'tmp/x', 'unrelated.txt', 'workspace', 'workspace/cache', 'workspace/cache/big.bin',
  ], 'only caches, parents and what is not state are left');
});

t.test('clearStatePaths: a fresh start removes the state, keeps caches, follows no link', async (t) => {
  const { dir, root } = fresh('clear');
  const other = path.join(dir, 'other-tenant');
  makeDb(path.join(other, 'memory/brain.db'), ['OTHER']);
  makeDb(path.join(root, 'brain.db'), ['mine']);
  put(root, 'brain.db-wal', 'stale');
  put(root, 'workspace/a.md', 'a');
  put(root, 'workspace/cache/c', 'cache');
  put(root, 'keep.txt', 'not state');
  symlinkSync(other, path.join(root, 'agents'));
  await clearStatePaths(root, [
    { path: 'brain.db', kind: 'sqlite' }, { path: 'workspace/', kind: 'dir' }, { path: 'agents/memory/brain.db', kind: 'sqlite' },
  ], ['workspace/cache/']);
  t.same(snapshot(root), { 'keep.txt': 'not state', workspace: 'dir', 'workspace/cache': 'dir', 'workspace/cache/c': 'cache' });
  t.same(rowsOf(path.join(other, 'memory/brain.db')), ['OTHER'], 'nothing deleted through the link');
});

t.test('a state root the agent replaced by a link is never followed: restore, clear and pack', async (t) => {
  const { dir, scratch } = fresh('root-link');
  // Another tenant's state on the same disk, and this tenant's root (`<workspace>/zeroclaw`) a link to it.
  const victim = path.join(dir, 'other-tenant', 'zeroclaw');
  put(victim, 'workspace/notes.md', 'VICTIM');
  makeDb(path.join(victim, 'memory/brain.db'), ['VICTIM']);
  const before = snapshot(victim);
  const root = path.join(dir, 'workspace', 'zeroclaw');
  const link = (): void => {
    rmSync(root, { recursive: true, force: true });
    mkdirSync(path.dirname(root), { recursive: true });
    symlinkSync(victim, root);
  };
  const paths: StatePath[] = [{ path: 'workspace/', kind: 'dir' }, { path: 'memory/brain.db', kind: 'sqlite' }];

  link();
  const file = path.join(dir, 'state.tar.gz');
  writeFileSync(file, rawArchive([{ path: 'workspace/notes.md', body: Buffer.from('OWNED') }]));
  await unpackState(file, { root, paths, scratchDir: scratch, maxBytes: MiB });
  t.same(snapshot(victim), before, 'restore: nothing written through the link');
  t.notOk(lstatSync(root).isSymbolicLink(), 'restore: the root is a directory of its own now');
  t.same(snapshot(root), { memory: 'dir', workspace: 'dir', 'workspace/notes.md': 'OWNED' }, 'restore: the archive is in the root (and the parent of its database)');

  link();
  await clearStatePaths(root, paths);
  t.same(snapshot(victim), before, 'clear: nothing deleted through the link');
  t.equal(await lstatOf(root), undefined, 'clear: the link itself is gone');

  link();
  const err = await rejectsWith(t, packState({ root, paths, scratchDir: scratch, maxBytes: MiB }), ValidationError, 'pack');
  t.match(err?.message ?? '', /symbolic link/, 'pack: says why');
  t.same(snapshot(victim), before, 'pack: the target untouched');

  link();
  await removeForeignRoot(root);
  t.equal(await lstatOf(root), undefined, 'the shim removes a link left where the root goes, before the agent starts');
  t.same(snapshot(victim), before);
});

t.test('an excluded entry counts toward the bound: a cache path cannot carry a bomb', async (t) => {
  const { dir, root, scratch } = fresh('excluded-bomb');
  const paths: StatePath[] = [{ path: 'data/state/', kind: 'dir' }];
  const excludes = ['data/state/runtime-trace.jsonl'];
  const bomb = path.join(dir, 'bomb.tar.gz');
  writeFileSync(bomb, rawArchive([{ path: 'data/state/runtime-trace.jsonl', body: Buffer.alloc(8 * MiB) }]));
  const big = await rejectsWith(t, unpackState(bomb, { root, paths, excludes, scratchDir: scratch, maxBytes: MiB }), StateTooLargeError, 'excluded bomb');
  t.equal(big?.unit, 'bytes');
  const small = path.join(dir, 'small.tar.gz');
  writeFileSync(small, rawArchive([{ path: 'data/state/runtime-trace.jsonl', body: Buffer.from('trace') }, { path: 'data/state/a.md', body: Buffer.from('a') }]));
  const got = await unpackState(small, { root, paths, excludes, scratchDir: scratch, maxBytes: MiB });
  t.same(got, { entries: 1, rawBytes: 1 }, 'a small excluded entry is skipped, not counted as restored');
});
