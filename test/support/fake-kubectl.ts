/**
 * A `kubectl` stand-in on PATH for ztm's kubectl mode. Each `exec` records what a real kubectl
 * would put in the exec URL (its own /proc/<pid>/cmdline), what it would stream to the pod (its
 * stdin) and its environment, then runs the ztm after `--` as the janitor pod would: against the
 * test Redis, with a clean environment, stdin from what was recorded.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './platform.js';

export interface KubectlExec {
  /** argv as /proc/<kubectl pid>/cmdline shows it, without the interpreter and script path. */
  argv: string[];
  stdin: string;
  environ: string[];
}

export interface FakeKubectl {
  /** Environment for the local ztm: PATH with the stand-in first, no Redis URL, a context set. */
  env: Record<string, string>;
  /** The exec calls since the last `reset()`, oldest first. */
  execs(): KubectlExec[];
  reset(): void;
  close(): void;
}

const nul = (s: string): string[] => s.split('\0').filter((x, i, all) => i < all.length - 1 || x !== '');

export function fakeKubectl(redisUrl: string): FakeKubectl {
  const bin = mkdtempSync(path.join(os.tmpdir(), 'ztm-kubectl-'));
  const record = path.join(bin, 'record');
  const empty = path.join(bin, 'data'); // a DATA_DIR with no platform.json: no local platform found
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  writeFileSync(path.join(bin, 'kubectl'), [
    '#!/bin/sh',
    'if [ "$1" = version ]; then exit 0; fi',
    `r=${q(record)}/$$`,
    'mkdir -p "$(dirname "$r")"',
    'cat /proc/$$/cmdline > "$r.cmdline"',
    'cat /proc/$$/environ > "$r.environ"',
    'cat > "$r.stdin"',
    'while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done',
    'shift; [ "$1" = ztm ] && shift',
    `exec env -i PATH="$PATH" HOME="$HOME" ZTM_REDIS_URL=${q(redisUrl)} ${q(process.execPath)} ${q(path.join(ROOT, 'cli/ztm.js'))} "$@" < "$r.stdin"`,
    '',
  ].join('\n'));
  chmodSync(path.join(bin, 'kubectl'), 0o755);
  return {
    env: { PATH: `${bin}:${process.env.PATH ?? ''}`, DATA_DIR: empty, ZTM_KUBE_CONTEXT: 'stand-in' },
    execs() {
      let names: string[];
      try {
        names = readdirSync(record).filter((n) => n.endsWith('.cmdline'));
      } catch {
        return [];
      }
      return names
        .map((n) => n.split('.')[0] as string)
        .sort((a, b) => statSync(path.join(record, `${a}.cmdline`)).mtimeMs - statSync(path.join(record, `${b}.cmdline`)).mtimeMs)
        .map((pid) => {
          const file = (ext: string): string => readFileSync(path.join(record, `${pid}.${ext}`), 'utf8');
          return { argv: nul(file('cmdline')).slice(2), stdin: file('stdin'), environ: nul(file('environ')) };
        });
    },
    reset() {
      rmSync(record, { recursive: true, force: true });
    },
    close() {
      rmSync(bin, { recursive: true, force: true });
    },
  };
}
