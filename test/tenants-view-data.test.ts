/**
 * The tenants view's data (lib/ops/tenants-view.ts, lib/tenants/tenant-stats.ts) against a real
 * redis-server and the registry on dynalite: rows carry the registry's status and pod and what Redis
 * holds (activity, idle deadline, wake times, today's messages, dead letters); pages follow the
 * registry's cursor, one Scan page per view (a search: bounded calls, never more rows than asked);
 * the query is validated; no secret field reaches a row.
 */
import t from 'tap';
import { TenantRegistry } from '../lib/registry/tenant-registry.js';
import { closeRedis, createRedis, type RedisClient } from '../lib/redis.js';
import { activityKey, IDLE_DEADLINE_KEY, messagesDayKey, wakeTimesKey } from '../lib/keys.js';
import { DEAD_LETTER_INDEX } from '../lib/delivery/dead-letters.js';
import { Activity } from '../lib/tenants/activity.js';
import { countMessage, MESSAGES_DAY_TTL_S, messagesDayKeyOf, messagesToday, percentile, recordWake, utcDay, WAKE_TIMES_KEPT } from '../lib/tenants/tenant-stats.js';
import { assembleRows, countDeadLetters, parseTenantsQuery, SCAN_CALLS_MAX, TenantsView, type ListTenants } from '../lib/ops/tenants-view.js';
import { registryTenantLister } from '../lib/ops/tenants-view-source.js';
import { escapeHtml, formatDuration, renderTenantsPage, TENANT_COLUMNS } from '../lib/ops/tenants-view-page.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { startDynamo, uniqueTableName, type TestDynamo } from './support/dynamo.js';

const SECRET = 'AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const token = (n: number) => `${100000 + n}:${SECRET}`;

let redis: TestRedis;
let client: RedisClient;
let dyn: TestDynamo;
let registry: TenantRegistry;
/** Registry calls the view made (to prove the bound). */
let calls = 0;
let lister: ListTenants;

t.before(async () => {
  redis = await startRedis();
  client = createRedis({ url: redis.url });
  dyn = await startDynamo();
  registry = new TenantRegistry({ client: dyn.client, table: uniqueTableName() });
  await registry.ensureTable();
  // 12 tenants: acme-0..acme-4, beta-0..beta-6; acme-1 and beta-2 awake.
  for (let i = 0; i < 5; i++) await registry.create({ tenant_id: `acme-${i}`, bot_token: token(i), idle_timeout_s: 300 });
  for (let i = 0; i < 7; i++) await registry.create({ tenant_id: `beta-${i}`, bot_token: token(10 + i), idle_timeout_s: 60 });
  for (const id of ['acme-1', 'beta-2']) {
    await registry.transition(id, 'provisioning');
    await registry.transition(id, 'running', { pod_name: `zeroclaw-${id}`, pod_ip: '10.0.0.7' });
  }
  const inner = registryTenantLister(registry);
  lister = (args) => {
    calls++;
    return inner(args);
  };
});
t.teardown(async () => {
  await closeRedis(client);
  await redis?.close();
  await dyn?.close();
});

t.test('tenant stats: wake times capped at 50, newest first; messages counted per UTC day with a TTL', async (t) => {
  for (let i = 1; i <= WAKE_TIMES_KEPT + 5; i++) await recordWake(client, 'acme-1', i * 10);
  const kept = (await client.lrange(wakeTimesKey('acme-1'), 0, -1)).map(Number);
  t.equal(kept.length, WAKE_TIMES_KEPT, 'bounded');
  t.equal(kept[0], (WAKE_TIMES_KEPT + 5) * 10, 'newest first');
  t.ok((await client.ttl(wakeTimesKey('acme-1'))) > 0, 'expires');
  const now = Date.parse('2026-03-04T23:59:59.000Z');
  await countMessage(client, 'acme-1', now);
  await countMessage(client, 'acme-1', now);
  await countMessage(client, 'acme-1', now + 2000); // the next UTC day
  t.equal(await client.hget(messagesDayKeyOf('acme-1', '2026-03-04'), 'acme-1'), '2');
  t.equal(await client.hget(messagesDayKeyOf('acme-1', '2026-03-05'), 'acme-1'), '1');
  t.match(messagesDayKeyOf('acme-1', '2026-03-04'), /^\{mbox:\d+\.\d+\}:messages:2026-03-04$/, "in the tenant's delivery shard");
  const ttl = await client.ttl(messagesDayKeyOf('acme-1', '2026-03-04'));
  t.ok(ttl > MESSAGES_DAY_TTL_S - 10 && ttl <= MESSAGES_DAY_TTL_S, 'the day hash expires');
  // The day of an upgrade: counts an earlier version wrote to the one hash add to the shard's.
  await client.hset(messagesDayKey('2026-03-04'), 'acme-1', '5');
  await client.persist(messagesDayKeyOf('acme-1', '2026-03-04'));
  t.same(await messagesToday(client, ['acme-1', 'nobody', 'acme-1'], now), [7, 0, 7], 'shard count + the earlier single hash; 0 for none');
  t.ok((await client.ttl(messagesDayKeyOf('acme-1', '2026-03-04'))) > 0, 'a hash a lost EXPIRE left without a TTL gets one back');
  t.equal(utcDay(now), '2026-03-04');
  t.equal(percentile([5, 1, 3, 2, 4], 50), 3);
  t.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 100], 99), 100);
  t.equal(percentile([], 50), undefined);
});

t.test('assembleRows: registry fields and Redis facts, the deadline only while awake', async (t) => {
  const rows = assembleRows([
    { tenant_id: 'a', status: 'running', pod_name: 'p-a', idle_timeout_s: 60, last_active_at: '2026-01-01T00:00:00.000Z' },
    { tenant_id: 'b', status: 'idle', idle_timeout_s: 300, last_active_at: '2026-01-01T00:00:00.000Z' },
    { tenant_id: 'c', status: 'running', idle_timeout_s: 10 },
  ], {
    lastActivityMs: [Date.parse('2026-01-02T00:00:00.000Z'), null, 1000],
    idleDeadlineMs: [Date.parse('2026-01-02T00:01:00.000Z'), null, null],
    wakeTimes: [[100, 300, 200], [], [50]],
    messagesToday: [4, 0, 1],
    deadLetters: countDeadLetters(['a.1.2', 'a.1.3', 'c.9.9', 'zed.1.1']),
  });
  t.match(rows[0], { tenant_id: 'a', status: 'running', pod: 'p-a', last_activity: '2026-01-02T00:00:00.000Z', idle_deadline: '2026-01-02T00:01:00.000Z', wakes: { count: 3, p50_ms: 200, p99_ms: 300 }, messages_today: 4, dead_letters: 2 });
  t.match(rows[1], { pod: null, last_activity: '2026-01-01T00:00:00.000Z', idle_deadline: null, wakes: { count: 0, p50_ms: null }, dead_letters: 0 }, 'asleep: the stored last activity, no deadline');
  t.equal(rows[2]?.idle_deadline, new Date(1000 + 10_000).toISOString(), 'no deadline indexed: activity + idle timeout');
  t.same(Object.keys(rows[0] ?? {}).sort(), ['dead_letters', 'idle_deadline', 'idle_timeout_s', 'last_activity', 'messages_today', 'pod', 'status', 'tenant_id', 'wakes']);
});

t.test('a page: real values from the registry and Redis, no secret field', async (t) => {
  const now = Date.now();
  await new Activity(client).touch('acme-1', 300, now - 5000);
  await client.del(wakeTimesKey('acme-1'));
  for (const ms of [800, 1200, 30_000]) await recordWake(client, 'acme-1', ms);
  for (let i = 0; i < 3; i++) await countMessage(client, 'acme-1', now);
  await client.zadd(DEAD_LETTER_INDEX, now, 'acme-1.77.5', now, 'acme-1.77.6', now, 'beta-3.1.1');
  const view = new TenantsView({ redis: client, list: lister });
  const page = await view.page(parseTenantsQuery({ q: 'acme-1' }), now);
  t.equal(page.rows.length, 1);
  t.match(page.rows[0], {
    tenant_id: 'acme-1', status: 'running', pod: 'zeroclaw-acme-1',
    last_activity: new Date(now - 5000).toISOString(), idle_deadline: new Date(now - 5000 + 300_000).toISOString(),
    wakes: { count: 3, p50_ms: 1200, p99_ms: 30_000 }, messages_today: 3, dead_letters: 2,
  });
  const json = JSON.stringify(page);
  t.notOk(json.includes(SECRET), 'no token');
  t.notOk(/bot_token|incarnation|pod_ip|10\.0\.0\.7/.test(json), 'no token field, incarnation or address');
  await client.del(activityKey, IDLE_DEADLINE_KEY, DEAD_LETTER_INDEX);
});

t.test('pages follow the registry cursor: every tenant once, one registry call per page', async (t) => {
  const view = new TenantsView({ redis: client, list: lister });
  const seen: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const before = calls;
    const page = await view.page(parseTenantsQuery({ limit: '5', ...(cursor ? { cursor } : {}) }));
    t.equal(calls - before, 1, 'one Scan page per view, whatever the table size');
    t.ok(page.rows.length <= 5);
    seen.push(...page.rows.map((r) => r.tenant_id));
    cursor = page.next_cursor;
  } while (cursor && ++pages < 10);
  t.equal(seen.length, 12);
  t.equal(new Set(seen).size, 12, 'each tenant once');
});

t.test('a search filters scanned pages: bounded calls, exact page size, a cursor to go on', async (t) => {
  const view = new TenantsView({ redis: client, list: lister });
  const running = await view.page(parseTenantsQuery({ status: 'running', limit: '1' }));
  t.equal(running.rows.length, 1);
  t.equal(running.rows[0]?.status, 'running');
  t.ok(running.next_cursor, 'more to search');
  const found: string[] = running.rows.map((r) => r.tenant_id);
  let cursor = running.next_cursor;
  for (let i = 0; cursor && i < 20; i++) {
    const before = calls;
    const p = await view.page(parseTenantsQuery({ status: 'running', limit: '1', cursor }));
    t.ok(calls - before <= SCAN_CALLS_MAX, 'at most SCAN_CALLS_MAX registry calls per view');
    found.push(...p.rows.map((r) => r.tenant_id));
    cursor = p.next_cursor;
  }
  t.same(found.sort(), ['acme-1', 'beta-2']);
  const betas = await view.page(parseTenantsQuery({ q: 'beta', limit: '200' }));
  t.same(betas.rows.map((r) => r.tenant_id).sort(), ['beta-0', 'beta-1', 'beta-2', 'beta-3', 'beta-4', 'beta-5', 'beta-6']);
  t.equal(betas.scanned, 12, 'the whole (small) table was read for a page of 200');
  const none = await view.page(parseTenantsQuery({ q: 'zzz' }));
  t.same(none.rows, []);
});

t.test('the query is validated: one clear line per bad value', async (t) => {
  t.throws(() => parseTenantsQuery({ q: 'Bad Id!' }), { code: 'E_VALIDATION', message: /invalid q/ });
  t.throws(() => parseTenantsQuery({ status: 'asleep' }), { code: 'E_VALIDATION', message: /invalid status: one of idle\|provisioning/ });
  t.throws(() => parseTenantsQuery({ limit: '0' }), { message: /invalid limit/ });
  t.throws(() => parseTenantsQuery({ limit: '1e2' }), { message: /invalid limit/ });
  t.throws(() => parseTenantsQuery({ cursor: 'a b' }), { message: /invalid cursor/ });
  t.throws(() => parseTenantsQuery({ q: ['a', 'b'] }), { message: /invalid q: give it once/ });
  t.match(parseTenantsQuery({ q: ' ACME ' }), { prefix: 'acme', status: undefined, limit: 25 });
});

t.test('the page escapes what it shows and has the columns in order', async (t) => {
  const html = renderTenantsPage({ form: { q: '"><script>', status: '' }, error: 'bad <b>' });
  t.notOk(html.includes('<script>'), 'no markup from the query');
  t.ok(html.includes('bad &lt;b&gt;'));
  t.notOk(/<script|\sstyle=|\son[a-z]+=/i.test(html), 'no script, no inline style or handler (CSP default-src none)');
  t.equal(escapeHtml(`<&"'>`), '&lt;&amp;&quot;&#39;&gt;');
  t.same(TENANT_COLUMNS, ['Tenant', 'Status', 'Pod', 'Last activity', 'Idle deadline', 'Wake p50', 'Wake p99', 'Wakes', 'Messages today', 'Dead letters']);
  t.equal(formatDuration(850), '850 ms');
  t.equal(formatDuration(12_340), '12.3 s');
  t.equal(formatDuration(125_000), '2m 05s');
});

t.test('over HTTP: a bad query is 400, no janitor is 503, one line each; the board still answers', async (t) => {
  const { serveDashboard } = await import('../lib/ops/dashboard.js');
  const { request } = await import('undici');
  // The admin queue's Redis with no janitor consuming it: tenant.list is never picked up.
  const board = await serveDashboard({ redis: client, port: 0, tenants: { redisUrl: redis.url } });
  try {
    const bad = await request(`${board.url}tenants.json?status=asleep`);
    t.equal(bad.statusCode, 400);
    t.same(await bad.body.json(), { error: { code: 'E_VALIDATION', message: 'invalid status: one of idle|provisioning|running|stopping|terminated' } });
    const down = await request(`${board.url}tenants.json`);
    t.equal(down.statusCode, 503);
    const body = (await down.body.json()) as { error: { code: string; message: string } };
    t.equal(body.error.code, 'E_NO_WORKER');
    t.match(body.error.message, /^no admin worker picked up the command within 5s/);
    const page = await request(`${board.url}tenants`);
    t.equal(page.statusCode, 503);
    t.match(String(page.headers['content-security-policy']), /^default-src 'none'/);
    t.match(await page.body.text(), /<p class="error" role="alert">no admin worker picked up/);
    const css = await request(`${board.url}tenants.css`);
    t.equal(css.statusCode, 200);
    t.match(String(css.headers['content-type']), /^text\/css/);
    await css.body.dump();
    const queues = await request(`${board.url}api/queues`);
    t.equal(queues.statusCode, 200, 'Bull Board is unaffected');
    await queues.body.dump();
  } finally {
    await board.close();
  }
  const direct = await serveDashboard({ redis: client, port: 0, tenants: registryTenantLister(registry) });
  try {
    const ok = await request(`${direct.url}tenants.json?q=beta&limit=3`);
    t.equal(ok.statusCode, 200, 'a process holding the registry reads it directly');
    t.equal(((await ok.body.json()) as { rows: unknown[] }).rows.length, 3);
  } finally {
    await direct.close();
  }
});
