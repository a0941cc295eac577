/**
 * closeWorker (lib/platform/close-worker.ts) against a real redis-server and real BullMQ: a worker
 * whose job never ends is closed within the bound, and the process can then exit. The control shows
 * why the helper exists: a worker only disconnected after its close() timed out keeps BullMQ's lock
 * renewal timer alive, so the process never exits (what made test files hang after their last
 * subtest in CI).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, type TestRedis } from './support/redis.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let server: TestRedis;
t.before(async () => { server = await startRedis(); });
t.teardown(() => server.close());

/** Runs the child; resolves with its output and whether it exited on its own within `ms`. */
function runChild(mode: string, ms: number): Promise<{ exited: boolean; code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/support/close-worker-child.ts'), server.url, mode], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += String(d); });
    child.stderr.on('data', (d: Buffer) => { out += String(d); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ exited: signal === null, code, out });
    });
  });
}

t.test('a worker whose job never ends closes within the bound, and the process exits', async (t) => {
  const r = await runChild('closeWorker', 20_000);
  t.match(r.out, /closed false/, 'the job was abandoned to stall recovery');
  t.ok(r.exited, `the process exited on its own (output: ${r.out.trim().slice(0, 200)})`);
  t.equal(r.code, 0);
});

t.test('control: disconnect alone leaves the lock renewal running and the process alive', async (t) => {
  const r = await runChild('disconnect-only', 8_000);
  t.match(r.out, /closed false/);
  t.notOk(r.exited, 'still alive after 8 s: killed (if BullMQ now stops its lock renewal on disconnect, closeWorker\'s workaround can go)');
});
