/**
 * Which processes talk to the platform: every process (but this test process) holding a TCP
 * connection to the test Redis, seen through `ss`, with its argv as /proc/<pid>/cmdline shows it
 * to any user of the machine. Sampled until stopped, so a short-lived ztm is caught while it waits.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Talkers {
  /** Stops sampling; the argv of each process seen, by pid. */
  stop(): Promise<Map<number, string[]>>;
}

export function watchRedisTalkers(redisUrl: string, intervalMs = 20): Talkers {
  const port = new URL(redisUrl).port;
  const seen = new Map<number, string[]>();
  let running = true;
  const sample = async (): Promise<void> => {
    const { stdout } = await run('ss', ['-tnpH', 'state', 'established', `( dport = :${port} )`]);
    for (const m of stdout.matchAll(/pid=(\d+)/g)) {
      const pid = Number(m[1]);
      if (pid === process.pid || seen.has(pid)) continue;
      try {
        seen.set(pid, readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1));
      } catch {
        // gone between ss and the read: the next sample (or none) decides
      }
    }
  };
  const loop = (async () => {
    while (running) {
      await sample();
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return seen;
    },
  };
}
