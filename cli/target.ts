/**
 * Where `ztm` sends its commands: ZTM_REDIS_URL / REDIS_URL; else the Redis of a platform started
 * with `npm start` from this directory (DATA_DIR/platform.json); else, when kubectl is available
 * and ZTM_KUBE_CONTEXT is set, itself inside the cluster through `kubectl exec`; else the local
 * default redis://127.0.0.1:6379.
 */
import { spawnSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { CliConfig } from '../lib/config.js';
import { TOKEN_ENV } from './token-input.js';

export type CliTarget = { kind: 'redis'; url: string; source: string } | { kind: 'kubectl'; args: string[] };

/** Deployment that runs the admin worker and has `ztm` in its image (see charts/). */
export const KUBECTL_EXEC_TARGET = 'deployment/janitor';

/** What a running `npm start` wrote to DATA_DIR/platform.json (services/platform/main.ts). */
export interface LocalPlatform {
  pid: number;
  redisUrl: string;
  ingressUrl?: string;
  /** Set when it runs the local Bot API sandbox (TELEGRAM_API_BASE=sandbox). */
  sandboxUrl?: string;
}

/** The platform `npm start` runs with this DATA_DIR, if its process is still alive. */
export function localPlatform(dataDir: string): LocalPlatform | undefined {
  try {
    const info = JSON.parse(readFileSync(path.join(dataDir, 'platform.json'), 'utf8')) as Record<string, unknown>;
    if (typeof info.redisUrl !== 'string' || typeof info.pid !== 'number') return undefined;
    process.kill(info.pid, 0); // throws when that platform is no longer running
    return {
      pid: info.pid,
      redisUrl: info.redisUrl,
      ...(typeof info.ingressUrl === 'string' ? { ingressUrl: info.ingressUrl } : {}),
      ...(typeof info.sandboxUrl === 'string' ? { sandboxUrl: info.sandboxUrl } : {}),
    };
  } catch {
    return undefined;
  }
}

export function localPlatformRedis(dataDir: string): string | undefined {
  return localPlatform(dataDir)?.redisUrl;
}

function hasKubectl(): boolean {
  return spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
}

export function resolveTarget(config: CliConfig): CliTarget {
  if (config.redisUrl) return { kind: 'redis', url: config.redisUrl, source: 'ZTM_REDIS_URL/REDIS_URL' };
  const local = localPlatformRedis(config.dataDir);
  if (local) return { kind: 'redis', url: local, source: `${config.dataDir}/platform.json` };
  if (config.kubeContext && hasKubectl()) {
    return { kind: 'kubectl', args: ['--context', config.kubeContext, '-n', config.namespace, 'exec', '-i', KUBECTL_EXEC_TARGET, '--', 'ztm'] };
  }
  return { kind: 'redis', url: 'redis://127.0.0.1:6379', source: 'default' };
}

/**
 * The in-cluster ztm's argv for a command whose bot token travels on stdin: rebuilt from the
 * validated arguments, so no token (positional, `--bot-token <t>`) can slip into the exec URL.
 */
export function kubectlTokenArgv(
  inv: { command: 'tenant.create' | 'tenant.update'; args: { tenant_id: string; idle_timeout_s?: number } },
  globals: { json: boolean; timeout?: string | undefined },
): string[] {
  return [
    'tenant', inv.command === 'tenant.create' ? 'create' : 'update', inv.args.tenant_id, '--bot-token', '-',
    ...(inv.args.idle_timeout_s !== undefined ? ['--idle-timeout', String(inv.args.idle_timeout_s)] : []),
    ...(globals.json ? ['--json'] : []),
    ...(globals.timeout !== undefined ? ['--timeout', globals.timeout] : []),
  ];
}

/**
 * Runs the same ztm command inside the cluster; stdout, stderr and the exit code pass through.
 * `input` (a bot token) is written to the exec's stdin instead of the terminal's.
 */
export async function runThroughKubectl(target: { args: string[] }, argv: string[], input?: string): Promise<number> {
  return new Promise((resolve) => {
    // kubectl never needs the token's variable: keep it out of its environment too.
    const env = { ...process.env };
    delete env[TOKEN_ENV];
    const child = spawn('kubectl', [...target.args, ...argv], { stdio: [input === undefined ? 'inherit' : 'pipe', 'inherit', 'inherit'], env });
    // kubectl exiting before it read its stdin (no such context) is reported by its exit code.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
    child.once('error', () => resolve(127));
    child.once('exit', (code) => resolve(code ?? 1));
  });
}
