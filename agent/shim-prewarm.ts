/**
 * A warm member's warm-up: the first spawn, the first HTTP client request (undici compiles its
 * llhttp WebAssembly then) and the first TCP probe of a Node process cost milliseconds of CPU each
 * that every later one does not. Done once while the member waits, so a claim (a wake, on the
 * critical path, twenty at once in a burst) does not pay for them. Touches nothing of a tenant:
 * no workspace, no state, no agent port bound.
 */
import { spawn } from 'node:child_process';
import { request } from 'undici';
import type { Logger } from '../lib/logger.js';
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
    log.debug({ ms: Math.round(performance.now() - started) }, 'warm-up done');
  } catch (err) {
    log.debug({ err }, 'warm-up incomplete');
  }
}
