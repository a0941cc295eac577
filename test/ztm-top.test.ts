/**
 * `ztm top` against a real redis-server with real figures: queued and active jobs (a wake held
 * active by a real worker: a wake in flight), tenants awake, the warm pool report, a dead letter.
 * --once prints one frame of them; without a TTY the real binary prints one plain frame per interval
 * (no escape codes) and exits after --count frames, on SIGTERM, or on q from stdin; --json prints
 * NDJSON; on a terminal each frame is drawn in place and the terminal is restored on q.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Queue, Worker } from 'bullmq';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { activityKey } from '../lib/keys.js';
import { DEAD_LETTER_INDEX } from '../lib/delivery/dead-letters.js';
import { reportWarmPool, type PlatformStatus } from '../lib/ops/queue-stats.js';
import { createRedis, closeRedis, type RedisClient } from '../lib/redis.js';
import { runTop, type TopTerminal } from '../cli/top.js';
import { ROOT, spawnZtm, startTestPlatform, type TestPlatform } from './support/platform.js';
import { waitUntil } from './support/wait.js';

let p: TestPlatform;
let admin: Queue;
let wake: Queue;
let worker: Worker;
let workerRedis: RedisClient;
let release!: () => void;

const ANSI = /\x1b\[/;
const TITLE = /^ztm top · redis:\/\/127\.0\.0\.1:\d+ · \d\d:\d\d:\d\d UTC( · every [\d.]+s)?$/m;

t.before(async () => {
  // No janitor: the admin jobs stay queued.
  p = await startTestPlatform({ withoutJanitor: true });
  admin = new Queue(QUEUES.admin, { connection: p.clients.bull, prefix: QUEUE_PREFIX });
  await admin.add('tenant.list', {});
  await admin.add('tenant.list', {}, { delay: 3_600_000 });
  // A wake in flight: a real worker holds the job active until the end.
  wake = new Queue(QUEUES.wake, { connection: p.clients.bull, prefix: QUEUE_PREFIX });
  workerRedis = createRedis({ url: p.redis.url, blocking: true });
  const held = new Promise<void>((r) => (release = r));
  worker = new Worker(QUEUES.wake, () => held, { connection: workerRedis, prefix: QUEUE_PREFIX });
  await wake.add('wake', { t: 'alice' }, { jobId: 'top-wake' });
  await waitUntil('the wake to be active', async () => (await wake.getActiveCount()) === 1);
  await p.clients.redis.zadd(activityKey, Date.now(), 'alice', Date.now(), 'bob', Date.now(), 'carol');
  const letter = { id: 'ghost.7.1', tenant_id: 'ghost', chat_id: '7', update_id: 1, failed_at: new Date().toISOString(), attempts: 8, reason: 'unknown tenant', envelope: '1|0|{"update_id":1}' };
  await p.clients.redis.multi().zadd(DEAD_LETTER_INDEX, Date.now(), letter.id).hset('{mbox}:dead:data', letter.id, JSON.stringify(letter)).exec();
  await reportWarmPool(p.clients.redis, { ready: 2, members: 3, target: 3 });
});
t.teardown(async () => {
  release?.();
  await worker?.close();
  await closeRedis(workerRedis);
  await admin?.obliterate({ force: true }).catch(() => undefined);
  await admin?.close();
  await wake?.obliterate({ force: true }).catch(() => undefined);
  await wake?.close();
  await p?.close();
});

t.test('ztm top --once: one frame of the real figures', async (t) => {
  const r = await p.ztm('top', '--once');
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stdout, ANSI, 'plain text off a terminal');
  t.match(r.stdout, TITLE, 'a title with the Redis and the time');
  t.match(r.stdout, /^wakes in flight 1 {2}\(queued 0, retrying 0\)$/m, 'the wake held active');
  t.match(r.stdout, /^QUEUE\s+WAITING\s+DELAYED\s+ACTIVE\s+FAILED\s+PAUSED\s+WORKERS$/m, "ztm status's table");
  t.match(r.stdout, /^admin\s+1\s+1\s+0\s+0\s+0\s+0$/m);
  t.match(r.stdout, /^wake\s+0\s+0\s+1\s+0\s+0\s+1$/m, 'the wake queue: one active, one worker');
  t.match(r.stdout, /^tenants awake\s+3$/m);
  t.match(r.stdout, /^warm pool\s+2 ready \(target 3, 1 starting/m);
  t.match(r.stdout, /^dead letters\s+1\s/m);
  t.equal(r.stdout.match(/^ztm top/gm)?.length, 1, 'one frame');
  t.notMatch(r.stdout, /every \d/, 'no interval on a single frame');
});

t.test('without a TTY: the real ztm prints a frame per interval and exits after --count', async (t) => {
  const r = await p.ztmProcess(['top', '--interval', '0.3', '--count', '2']);
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stdout, ANSI, 'no escape codes in a pipe');
  const frames = r.stdout.trimEnd().split(/\n\n(?=ztm top)/);
  t.equal(frames.length, 2, 'two frames');
  for (const f of frames) {
    t.match(f, TITLE);
    t.match(f, /· every 0\.3s$/m);
    t.match(f, /^tenants awake\s+3$/m);
    t.match(f, /^wakes in flight 1 /m);
  }
});

t.test('without --count: SIGTERM after two frames ends it cleanly; so does q on stdin', async (t) => {
  const child = spawn(process.execPath, [path.join(ROOT, 'cli/ztm.js'), 'top', '--interval', '0.2'], {
    cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ZTM_REDIS_URL: p.redis.url }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitUntil('two frames', () => (out.match(/^ztm top/gm)?.length ?? 0) >= 2, 30_000);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 on SIGTERM');
  const q = await spawnZtm(['top', '--interval', '0.2'], { ZTM_REDIS_URL: p.redis.url }, 'q\n', 30_000);
  t.equal(q.code, 0, q.stderr);
  t.match(q.stdout, TITLE, 'a frame, then q quit');
});

t.test('--json: one line of ztm status --json per frame', async (t) => {
  const r = await p.ztmProcess(['top', '--json', '--interval', '0.2', '--count', '2']);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.length, 2);
  for (const l of lines) {
    const s = JSON.parse(l) as PlatformStatus;
    t.equal(s.tenants_awake, 3);
    t.equal(s.dead_letters, 1);
    t.equal(s.queues.find((q) => q.queue === 'wake')?.active, 1);
  }
});

t.test('on a terminal: the alternate screen, each frame from the top, restored on q', async (t) => {
  const writes: string[] = [];
  const term: TopTerminal = { write: (s) => void writes.push(s), columns: 100, rows: 40, onResize: () => () => undefined };
  const keys = new PassThrough() as unknown as NodeJS.ReadStream;
  const lines: string[] = [];
  const running = runTop({ intervalS: 0.2, count: undefined }, p.redis.url, { json: false, out: (l) => lines.push(l), err: (l) => lines.push(l) }, undefined, { term, keys });
  await waitUntil('two frames drawn', () => writes.filter((w) => w.startsWith('\x1b[H')).length >= 2, 20_000);
  (keys as unknown as PassThrough).write('q');
  t.equal(await running, 0);
  t.equal(writes[0], '\x1b[?1049h\x1b[?25l', 'enters the alternate screen, hides the cursor');
  t.equal(writes.at(-1), '\x1b[?25h\x1b[?1049l', 'restores the cursor and the screen');
  const frame = writes.find((w) => w.startsWith('\x1b[H')) ?? '';
  t.match(frame, /ztm top · .* · q to quit\x1b\[K\r\n/, 'each line cleared to its end');
  t.match(frame, /tenants awake\s+3\x1b\[K/);
  t.ok(frame.endsWith('\x1b[J'), 'the rest of the screen cleared');
  t.ok(frame.split('\r\n').every((l) => l.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').length <= 100), 'cut to the width');
  t.same(lines, [], 'nothing printed around the screen');
});

t.test('bad options: one line, exit 2; listed in the completion', async (t) => {
  for (const [argv, msg] of [[['top', '--interval', '0'], /invalid --interval "0"/], [['top', '--once', '--count', '3'], /--once and --count/], [['top', '--count', 'x'], /invalid --count/]] as const) {
    const r = await p.ztm(...argv);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.stderr, msg);
    t.equal(r.stderr.split('\n').length, 1);
  }
  const c = await p.ztm('completion', 'bash');
  t.match(c.stdout, /words="[^"]*\btop\b/, 'top among the commands');
  t.match(c.stdout, /top\) \[\[ "\$cur" == -\* \]\] && words="--interval --once --count/, 'and its options');
});
