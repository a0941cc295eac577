/**
 * A warm member's warm-up: the first spawn, the first HTTP client request (undici compiles its
 * llhttp WebAssembly then), the first TCP probe and the first state restore (tar, gunzip, the
 * download to a file, better-sqlite3's native module: ~20 ms the first time, ~3 ms after, measured
 * under tsx) of a Node process cost milliseconds of CPU each that every later one does not. Done
 * once while the member waits, so a claim (a wake, on the critical path, twenty at once in a burst)
 * does not pay for them. Touches nothing of a tenant: the restore is of a made-up state, served by
 * a one-request loopback server, into a directory of the shim's scratch that is removed after; no
 * agent port bound.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
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
  /** The shim's scratch directory (on the workspace's filesystem, never the agent's): the made-up restore goes below it. */
  scratchDir: string;
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
    await restoreOnce(target.scratchDir);
    log.debug({ ms: Math.round(performance.now() - started) }, 'warm-up done');
  } catch (err) {
    log.debug({ err }, 'warm-up incomplete');
  }
}

/**
 * Packs a made-up state of every path kind, downloads it over loopback (as from S3) and restores it,
 * as a claim's restore does, then a fresh start's clear: all below a temporary directory of `scratchDir`.
 */
async function restoreOnce(scratchDir: string): Promise<void> {
  await mkdir(scratchDir, { recursive: true });
  const dir = await mkdtemp(path.join(scratchDir, 'prewarm-'));
  const server = http.createServer();
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
    // One answer, from memory: the listener is gone as soon as a request came (anyone else on
    // loopback gets a refused connection or this made-up archive, nothing of the shim).
    server.once('request', (_req, res) => {
      server.close();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': archive.length });
      res.end(archive);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    const to = layout('to');
    await mkdir(to.scratchDir, { recursive: true });
    const staged = path.join(to.scratchDir, 'state.download');
    await downloadState(`http://127.0.0.1:${(server.address() as { port: number }).port}/state`, staged, { timeoutMs: 2000 });
    if ((await detectStateFormat(staged)) === 'archive') await unpackState(staged, to);
    await clearStatePaths(to.root, PREWARM_PATHS);
  } finally {
    server.close();
    server.closeAllConnections();
    await rm(dir, { recursive: true, force: true });
  }
}
