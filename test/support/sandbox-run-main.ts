/**
 * For test/agent-sandbox.test.ts, run as an unprivileged user (setpriv): the sandbox's probe, then
 * one command in the sandbox (a user namespace, since this process is not root) that reports on
 * stdout what it could do. Argument: JSON { dir } (a scratch dir with workspace/, workspace/.shim/keep
 * (the shim's scratch) and secret inside).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { probeSandbox, sandboxCommand } from '../../agent/agent-sandbox.js';

const { dir } = JSON.parse(process.argv[2] ?? '{}') as { dir: string };
const workspace = path.join(dir, 'workspace');
const probe = probeSandbox({ uid: 65_534, gid: 65_534 });
const script = [
  'echo "uid=$(id -u)"',
  `if cat "$1" >/dev/null 2>&1; then echo secret=read; else echo secret=hidden; fi`,
  'if echo x > "$2/wrote"; then echo workspace=written; fi',
  'if touch /usr/sandbox-test 2>/dev/null; then echo host=written; else echo host=read-only; fi',
  'if [ -e "$2/.shim/keep" ]; then echo scratch=visible; else echo scratch=hidden; fi',
  'if mv "$2/.shim" "$2/moved" 2>/dev/null; then echo scratch=moved; else echo scratch=pinned; fi',
  'grep -E "^(CapEff|CapBnd|NoNewPrivs):" /proc/self/status',
].join('; ');
const run = sandboxCommand({ hide: [dir], uid: 65_534, gid: 65_534 }, { workspace, reads: [], shimOwn: [path.join(workspace, '.shim')] }, {
  file: '/bin/sh', args: ['-c', script, 'sh', path.join(dir, 'secret'), workspace],
});
const out = spawnSync(run.file, run.args, { cwd: '/', encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
process.stdout.write(`${JSON.stringify({ probe, status: out.status, stdout: out.stdout, stderr: out.stderr, unshare: run.args.slice(0, 2) })}\n`);
