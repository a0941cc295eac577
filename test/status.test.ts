/**
 * `ztm status` and the cluster-wide gauges every service exports, against a real redis-server:
 * jobs per queue and state (prioritized counted as waiting, delayed apart), workers, tenants awake,
 * the warm pool as the pool-keeper reported it, dead letters; NaN rather than zeros when Redis is gone.
 */
import t from 'tap';
import { Queue } from 'bullmq';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { activityKey } from '../lib/keys.js';
import { DEAD_LETTER_INDEX } from '../lib/delivery/dead-letters.js';
import { reportWarmPool, type PlatformStatus } from '../lib/ops/queue-stats.js';
import { createMetrics } from '../lib/metrics.js';
import { instrumentQueueMetrics } from '../lib/ops/queue-metrics.js';
import { createRedis, closeRedis } from '../lib/redis.js';
import { startTestPlatform, type TestPlatform } from './support/platform.js';

let p: TestPlatform;
let admin: Queue;

t.before(async () => {
  // No janitor: nothing consumes the admin queue, so the jobs stay where they are put.
  p = await startTestPlatform({ withoutJanitor: true });
  admin = new Queue(QUEUES.admin, { connection: p.clients.bull, prefix: QUEUE_PREFIX });
  await admin.add('tenant.list', {});
  await admin.add('tenant.list', {});
  await admin.add('tenant.list', {}, { priority: 5 });
  await admin.add('tenant.list', {}, { delay: 3_600_000 });
  await p.clients.redis.zadd(activityKey, Date.now(), 'alice', Date.now(), 'bob');
  const letter = { id: 'ghost.7.1', tenant_id: 'ghost', chat_id: '7', update_id: 1, failed_at: new Date().toISOString(), attempts: 8, reason: 'unknown tenant', envelope: '1|0|{"update_id":1}' };
  await p.clients.redis.multi().zadd(DEAD_LETTER_INDEX, Date.now(), letter.id).hset('{mbox}:dead:data', letter.id, JSON.stringify(letter)).exec();
  await reportWarmPool(p.clients.redis, { ready: 3, members: 4, target: 4 });
});
t.teardown(async () => {
  await admin.obliterate({ force: true }).catch(() => undefined);
  await admin.close();
  await p.close();
});

t.test('ztm status --json: every queue, state and figure', async (t) => {
  const r = await p.ztm('status', '--json');
  t.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as PlatformStatus;
  t.same(s.queues.map((q) => q.queue), ['forward', 'wake', 'admin', 'lifecycle']);
  const a = s.queues.find((q) => q.queue === 'admin');
  t.match(a, { key: 'ztm:{admin}', waiting: 2, prioritized: 1, delayed: 1, active: 0, failed: 0, workers: 0 });
  t.equal(s.tenants_awake, 2);
  t.equal(s.dead_letters, 1);
  t.match(s.warm_pool, { size: 3, members: 4, target: 4, stale: false });
});

t.test('ztm status: a table an operator reads (waiting includes prioritized)', async (t) => {
  const r = await p.ztm('status');
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.match(lines[0], /^QUEUE\s+WAITING\s+DELAYED\s+ACTIVE\s+FAILED\s+PAUSED\s+WORKERS$/);
  t.match(r.stdout, /^admin\s+3\s+1\s+0\s+0\s+0\s+0$/m);
  t.match(r.stdout, /^forward\s+0\s+0\s+0\s+0\s+0\s+0$/m);
  t.match(r.stdout, /^tenants awake\s+2$/m);
  t.match(r.stdout, /^warm pool\s+3 ready \(target 4, 1 starting, counted \d+s ago\)$/m);
  t.match(r.stdout, /^dead letters\s+1\s+\(ztm dead list/m);
});

t.test('a warm pool report older than a minute is shown as stale', async (t) => {
  await reportWarmPool(p.clients.redis, { ready: 1, members: 1, target: 2 }, Date.now() - 300_000);
  const r = await p.ztm('status');
  t.match(r.stdout, /^warm pool\s+1 ready \(target 2, counted 5m ago\): STALE, is the pool-keeper running\?$/m);
  await reportWarmPool(p.clients.redis, { ready: 3, members: 4, target: 4 });
});

t.test('ztm status needs no admin worker, and fails in one line without Redis', async (t) => {
  const r = await p.ztmProcess(['status'], { ZTM_REDIS_URL: 'redis://127.0.0.1:1' });
  t.equal(r.code, 1);
  t.match(r.stderr, /^ztm: cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  t.equal(r.stderr.trim().split('\n').length, 1);
  const ok = await p.ztmProcess(['status', '--json']);
  t.equal(ok.code, 0, ok.stderr);
  t.equal((JSON.parse(ok.stdout) as PlatformStatus).dead_letters, 1);
});

t.test('metrics: the gauges are read from Redis on scrape', async (t) => {
  const metrics = createMetrics({ service: 'test', defaultMetrics: false });
  const qm = instrumentQueueMetrics(metrics, p.clients.redis);
  t.teardown(() => qm.close());
  let text = await metrics.registry.metrics();
  t.match(text, /^ztm_queue_jobs\{queue="admin",state="waiting",service="test"\} 2$/m);
  t.match(text, /^ztm_queue_jobs\{queue="admin",state="prioritized",service="test"\} 1$/m);
  t.match(text, /^ztm_queue_jobs\{queue="admin",state="delayed",service="test"\} 1$/m);
  t.match(text, /^ztm_queue_jobs\{queue="forward",state="active",service="test"\} 0$/m);
  t.match(text, /^ztm_dead_letters\{service="test"\} 1$/m);
  t.match(text, /^ztm_warm_pool_size\{service="test"\} 3$/m);
  t.match(text, /^ztm_tenants_awake\{service="test"\} 2$/m);
  await admin.add('tenant.list', {});
  text = await metrics.registry.metrics();
  t.match(text, /^ztm_queue_jobs\{queue="admin",state="waiting",service="test"\} 3$/m, 'a new scrape sees a new job');
  await admin.getJobs(['waiting']).then((jobs) => jobs[0]?.remove());
});

t.test('metrics without Redis: no queue samples and NaN, never zeros', async (t) => {
  const dead = createRedis({ url: 'redis://127.0.0.1:1', failFast: true });
  dead.on('error', () => undefined);
  const metrics = createMetrics({ service: 'test', defaultMetrics: false });
  const qm = instrumentQueueMetrics(metrics, dead);
  t.teardown(async () => {
    await qm.close();
    await closeRedis(dead);
  });
  const text = await metrics.registry.metrics();
  t.notMatch(text, /^ztm_queue_jobs\{/m);
  t.match(text, /^ztm_dead_letters\{service="test"\} NaN$/im);
  t.match(text, /^ztm_warm_pool_size\{service="test"\} NaN$/im);
});
