/**
 * `ztm logs <id> [-f] [--tail N]`: the tenant agent's output. Locally (`npm start`) it is the file the
 * shim and its agent write (`DATA_DIR/tenants/<id>/agent.log`, or the warm member's it was claimed
 * from); on Kubernetes it is the tenant pod's log through the API (`kubectl logs -l tenant=<id>` in
 * the tenants namespace, `<ZTM_NAMESPACE>-agents` unless ZTM_TENANTS_NAMESPACE says otherwise).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CliConfig } from '../lib/config.js';
import { NotFoundError, ValidationError } from '../lib/errors.js';
import { localPlatform, type CliTarget } from './target.js';
import { printFailure, type Printer } from './output.js';

export interface LogsInvocation {
  tenantId: string;
  follow: boolean;
  /** Last lines to show; undefined: all. */
  tail: number | undefined;
}

export function tailOption(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v);
  if (!/^[0-9]{1,7}$/.test(s)) throw new ValidationError(`invalid --tail ${JSON.stringify(s.slice(0, 20))}: a whole number of lines`);
  return Number(s);
}

/** The local log files that may hold the tenant's agent output, newest first. */
export function localLogFiles(dataDir: string, tenantId: string, podName?: string): string[] {
  const candidates = [path.join(dataDir, 'tenants', tenantId, 'agent.log')];
  if (podName && /^[a-z0-9-]{1,63}$/.test(podName)) candidates.push(path.join(dataDir, 'warm', podName, 'agent.log'));
  return candidates.filter((f) => existsSync(f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
}

/** The last `n` lines of `text` (all when n is undefined). */
export function lastLines(text: string, n: number | undefined): string {
  if (n === undefined) return text;
  if (n === 0) return '';
  const lines = text.split('\n');
  const trailing = lines[lines.length - 1] === '' ? 1 : 0;
  return lines.slice(Math.max(0, lines.length - trailing - n)).join('\n');
}

function readFrom(file: string, offset: number): { text: string; size: number } {
  const size = statSync(file).size;
  if (size <= offset) return { text: '', size };
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(Math.min(size - offset, 8 * 2 ** 20));
    const n = readSync(fd, buf, 0, buf.length, offset);
    return { text: buf.subarray(0, n).toString('utf8'), size: offset + n };
  } finally {
    closeSync(fd);
  }
}

async function followFile(file: string, inv: LogsInvocation, write: (s: string) => void, signal: AbortSignal): Promise<void> {
  let { text, size } = readFrom(file, Math.max(0, statSync(file).size - 8 * 2 ** 20));
  write(lastLines(text, inv.tail));
  while (inv.follow && !signal.aborted) {
    await sleep(250, undefined, { signal }).catch(() => undefined);
    if (!existsSync(file)) return; // the workspace was removed (the tenant slept)
    if (statSync(file).size < size) size = 0; // truncated or replaced
    ({ text, size } = readFrom(file, size));
    if (text) write(text);
  }
}

export interface LogsIo {
  write: (s: string) => void;
  /** The tenant's pod name as the registry knows it (a warm member's), when a janitor answers. */
  podName?: () => Promise<string | undefined>;
  signal?: AbortSignal;
}

export async function runLogs(inv: LogsInvocation, config: CliConfig, target: CliTarget, p: Printer, io: LogsIo): Promise<number> {
  if (target.kind === 'kubectl') {
    const ns = config.tenantsNamespace;
    const ctx = target.args.slice(0, 2); // ['--context', <context>]
    const args = [...ctx, '-n', ns, 'logs', '-l', `tenant=${inv.tenantId}`, '--all-containers', '--prefix=false', ...(inv.tail === undefined ? [] : [`--tail=${inv.tail}`]), ...(inv.follow ? ['-f'] : [])];
    return new Promise((resolve) => {
      const child = spawn('kubectl', args, { stdio: ['ignore', 'inherit', 'inherit'] });
      child.once('error', () => resolve(127));
      child.once('exit', (code) => resolve(code ?? 1));
    });
  }
  try {
    if (!localPlatform(config.dataDir) && !existsSync(path.join(config.dataDir, 'tenants'))) {
      throw new NotFoundError(`no local platform in ${config.dataDir} (set DATA_DIR), and no Kubernetes context (ZTM_KUBE_CONTEXT) to read pod logs from`);
    }
    const podName = await io.podName?.().catch(() => undefined);
    const [file] = localLogFiles(config.dataDir, inv.tenantId, podName);
    if (!file) throw new NotFoundError(`no log for tenant ${inv.tenantId} in ${config.dataDir}: it has not been woken on this platform, or its warm workspace was removed after it slept`);
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    process.once('SIGINT', stop);
    try {
      await followFile(file, inv, io.write, io.signal ?? controller.signal);
    } finally {
      process.off('SIGINT', stop);
    }
    return 0;
  } catch (err) {
    printFailure(p, err);
    return 1;
  }
}
