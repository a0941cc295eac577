/**
 * `ztm` from a checkout runs the compiled JavaScript in dist/, rebuilt by its first run after a
 * source changed; several ztm started at once (as tests and scripts do) build once and all answer.
 * Its start-up time is measured by bench/ztm-startup.ts, not asserted here.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './support/platform.js';
import { isFresh, STAMP } from '../scripts/build.mjs';

function ztm(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'cli/ztm.js'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('exit', (code) => (clearTimeout(timer), resolve({ code, out, err })));
  });
}

t.test('a stale dist/ is rebuilt once by concurrent runs, which all answer from it', async (t) => {
  rmSync(STAMP, { force: true });
  t.equal(isFresh(), false, 'no stamp: dist/ counts as stale');
  const runs = await Promise.all([ztm(['--help']), ztm(['--help']), ztm(['--help'])]);
  for (const r of runs) {
    t.equal(r.code, 0, r.err);
    t.match(r.out, /Usage:\s+\$ ztm <command>/);
    t.notMatch(r.err, /running from the TypeScript sources/, 'the build did not fail');
  }
  t.ok(isFresh(), 'the stamp is newer than every source');
  t.ok(existsSync(path.join(ROOT, 'dist/cli/main.js')), 'the CLI was compiled');
  const stamped = statSync(STAMP).mtimeMs;
  const again = await ztm(['--help']);
  t.equal(again.code, 0);
  t.equal(statSync(STAMP).mtimeMs, stamped, 'a fresh dist/ is not rebuilt');
});

t.test('a usage error from the compiled CLI is one line and exit 2', async (t) => {
  const r = await ztm(['tenant', 'create']);
  t.equal(r.code, 2);
  t.equal(r.err.trim().split('\n').length, 1, r.err);
});
