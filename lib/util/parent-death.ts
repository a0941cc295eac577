/**
 * A child that must not outlive its parent: started through util-linux `setpriv --pdeathsig`, the
 * kernel signals it the moment its parent dies, however the parent died (SIGKILL, OOM kill, a
 * crash), where a child left behind would keep its port, its memory and its tenant's workspace.
 * Where setpriv is missing (macOS, a minimal image) the command runs as given: `available()` says so.
 */
import { spawnSync } from 'node:child_process';

let cached: boolean | undefined;

export function parentDeathSignalAvailable(): boolean {
  cached ??= process.platform === 'linux' && spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
  return cached;
}

/** `[file, args]` wrapped so the process receives `signal` when its parent dies (setpriv execs it: same pid). */
export function withParentDeathSignal(file: string, args: readonly string[], signal: 'KILL' | 'TERM'): { file: string; args: string[] } {
  if (!parentDeathSignalAvailable()) return { file, args: [...args] };
  return { file: 'setpriv', args: [`--pdeathsig=${signal}`, '--', file, ...args] };
}
