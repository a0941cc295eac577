/**
 * A warm member's warm-up: the first spawn, the first HTTP client request (undici compiles its
 * llhttp WebAssembly then), the first TCP probe and the first state restore (the download to a
 * file, gunzip, tar and the restore's checks: ~20 ms the first time, ~3 ms after, measured under
 * tsx) of a Node process cost milliseconds of CPU each that every later one does not. Done once
 * while the member waits, so a claim (a wake, on the critical path, twenty at once in a burst) does
 * not pay for them. Touches nothing of a tenant and no workspace: the restore is of a made-up state
 * (packed here, which loads better-sqlite3 for the checkpoints too), served by a loopback listener
 * on an unguessable path, checked byte for byte, into a private temporary directory removed after;
 * no agent port bound.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { request } from 'undici';
import type { Logger } from '../lib/logger.js';
import { clearStatePaths, detectStateFormat, packState, unpackState, type StatePath } from './state-archive.js';
import { downloadState } from './state-transfer.js';
import { isListening } from '../lib/util/free-port.js';
import { parentDeathSignalAvailable, withParentDeathSignal } from '../lib/util/parent-death.js';

export interface PrewarmTarget {
  /** Where the shim's own server answers (its /healthz gets the one request). */
  shimHost: string;
  shimPort: number;
  /** The agent's port: probed once as the readiness and port checks do (nothing listens there yet). */
  agentHost: string;
  agentPort: number;
}

/** Every kind of state path a profile can declare, so each one's restore code has run once. */
const PREWARM_PATHS: readonly StatePath[] = [
  { path: 'db/brain.db', kind: 'sqlite' }, { path: 'notes.md', kind: 'file' }, { path: 'dir', kind: 'dir' },
];

function url(host: string, port: number, p: string): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}${p}`;
}

/** Never throws: a warm-up that fails only means the claim pays as before. */
export async function prewarm(target: PrewarmTarget, log: Logger): Promise<void> {
  const started = performance.now();
  try {
    // Cached for the process: setpriv's presence (a spawnSync) is otherwise first asked by the claim.
    parentDeathSignalAvailable();
    await new Promise<void>((resolve) => {
      // The same kind of spawn as the agent's (setpriv-wrapped, own process group).
      const run = withParentDeathSignal('/bin/sh', ['-c', 'exit 0'], 'KILL');
      const child = spawn(run.file, run.args, { stdio: 'ignore', detached: true });
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    await isListening(target.agentHost, target.agentPort, 500);
    const res = await request(url(target.shimHost, target.shimPort, '/healthz'), { headersTimeout: 2000, bodyTimeout: 2000 });
    await res.body.dump();
    await restoreOnce();
    log.debug({ ms: Math.round(performance.now() - started) }, 'warm-up done');
  } catch (err) {
    log.debug({ err }, 'warm-up incomplete');
  }
}

/**
 * Packs a made-up state of every path kind, downloads it over loopback (as from S3) and restores it,
 * as a claim's restore does, then a fresh start's clear: all in a new private temporary directory.
 */
async function restoreOnce(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ztm-shim-warm-up-'));
  const server = http.createServer();
  server.on('error', () => undefined); // an accept failure only ends the warm-up (the download fails)
  try {
    const layout = (name: string) => ({ root: path.join(dir, name), paths: PREWARM_PATHS, scratchDir: path.join(dir, `${name}.scratch`), maxBytes: 1 << 20 });
    const from = layout('from');
    await mkdir(path.join(from.root, 'db'), { recursive: true });
    await mkdir(path.join(from.root, 'dir'), { recursive: true });
    const db = new Database(path.join(from.root, 'db/brain.db'));
    try {
      db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
    } finally {
      db.close();
    }
    await writeFile(path.join(from.root, 'notes.md'), 'warm-up');
    await writeFile(path.join(from.root, 'dir/a'), 'warm-up');
    const archive = await readFile((await packState(from)).file);
    // Anyone on loopback may connect (local agents share the host's network): they get a 404 unless
    // they know the path, and the download is one attempt (no retry against a port another process
    // could bind once this one closed) whose bytes are compared with the archive before the unpack.
    const secretPath = `/${randomBytes(16).toString('hex')}`;
    server.on('request', (req, res) => {
      if (req.url !== secretPath) {
        res.writeHead(404).end();
        return;
      }
      server.close();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': archive.length });
      res.end(archive);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    const to = layout('to');
    await mkdir(to.scratchDir, { recursive: true });
    const staged = path.join(to.scratchDir, 'state.download');
    await downloadState(`http://127.0.0.1:${(server.address() as { port: number }).port}${secretPath}`, staged, { timeoutMs: 2000, attempts: 1 });
    if (!(await readFile(staged)).equals(archive) || (await detectStateFormat(staged)) !== 'archive') throw new Error('the warm-up download is not the archive served');
    await unpackState(staged, to);
    await clearStatePaths(to.root, PREWARM_PATHS);
  } finally {
    server.close();
    server.closeAllConnections();
    await rm(dir, { recursive: true, force: true });
  }
}
