/**
 * The webhook ingress against a real redis-server and a real BullMQ queue: what each answer means
 * for durability (200 only once the mailbox holds the update and one drain job is responsible),
 * what bad input costs (nothing enqueued), and what a Redis outage looks like to Telegram (503).
 */
import t, { type Test } from 'tap';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { Queue } from 'bullmq';
import { createRedis, closeRedis } from '../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { Mailbox, type DrainJobData } from '../lib/delivery/mailbox.js';
import { decodeEnvelope } from '../lib/delivery/update.js';
import { mailboxKey, readyKey } from '../lib/keys.js';
import { RUN_JOB_NAME, parseReadyEntry } from '../lib/delivery/drain-contract.js';
import { createMetrics } from '../lib/metrics.js';
import { deriveWebhookSecret } from '../lib/webhook-secret.js';
import { createIngress, type IngressOptions } from '../services/ingress/ingress.js';
import { startRedis } from './support/redis.js';
import { LogCapture } from './support/log-capture.js';

const MASTER = 'ingress-test-master-secret-0123456789';
const CONFIG = { ingressHost: '127.0.0.1', ingressPort: 0, ingressBodyLimit: 1_048_576 };

const tr = await startRedis();
const redis = createRedis({ url: tr.url, autoPipelining: true, failFast: true });
const bull = createRedis({ url: tr.url, blocking: false });
redis.on('error', () => undefined);
bull.on('error', () => undefined);
const queue = new Queue(QUEUES.forward, { connection: bull, prefix: QUEUE_PREFIX });
queue.on('error', () => undefined);
const mailbox = new Mailbox({ redis, forwardQueue: queue });
const metrics = createMetrics({ service: 'ingress', defaultMetrics: false });
const capture = new LogCapture();
const log = capture.logger('ingress', 'debug');
const base: IngressOptions = { config: CONFIG, log, redis, mailbox, webhookSecret: MASTER, metrics };
// The fail-fast client refuses commands until connected: start taking webhooks once it is.
if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
const ingress = await createIngress(base);
const url = `http://127.0.0.1:${ingress.port}`;
const agent = new Agent({ connections: 600 });

t.teardown(async () => {
  await ingress.close();
  await agent.close();
  await queue.close();
  await closeRedis(bull);
  await closeRedis(redis);
  await tr.close();
});

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; text: string }

async function call(path: string, init: { method?: 'GET' | 'POST' | 'PUT'; body?: string | Buffer | Readable; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await request(`${url}${path}`, { method: init.method ?? 'GET', body: init.body, headers: init.headers, dispatcher: agent });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

const secretOf = (tenant: string): string => deriveWebhookSecret(MASTER, { tenant_id: tenant });
const update = (id: number, chat: number | string, text = `hello ${id}`): string =>
  JSON.stringify({ update_id: id, message: { message_id: id, date: 1, chat: { id: chat, type: 'private' }, text } });

/** `secret: null` sends no secret header at all. */
function post(tenant: string, body: string | Buffer | Readable, secret: string | null = secretOf(tenant)): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (secret !== null) headers['x-telegram-bot-api-secret-token'] = secret;
  return call(`/tg/${tenant}`, { method: 'POST', body, headers });
}

async function mailboxOf(tenant: string, chat: string | number): Promise<number[]> {
  return (await redis.lrange(mailboxKey(tenant, String(chat)), 0, -1)).map((e) => decodeEnvelope(e).updateId);
}

/** The tenant's drains: chats on its shard's ready list (a runner takes them) and drain jobs of its own. */
async function drainJobs(tenant: string): Promise<DrainJobData[]> {
  const ready = (await redis.lrange(readyKey(mailbox.layout.shardOf(tenant).tag), 0, -1)).map(parseReadyEntry)
    .filter((d) => d?.tenantId === tenant).map((d) => ({ t: d!.tenantId, c: d!.chatId }));
  const jobs = await mailbox.queueOf(tenant).getJobs(['waiting', 'delayed', 'active', 'prioritized', 'paused', 'failed', 'completed']);
  return [...ready, ...jobs.filter((j) => (j.data as DrainJobData).t === tenant).map((j) => j.data as DrainJobData)];
}

/** Nothing of the tenant reached Redis: no mailbox, no dedup marker, no drain job. */
async function nothingEnqueued(t: Test, tenant: string): Promise<void> {
  t.same(await redis.keys(`{mbox*:${tenant}*`), [], `no mailbox keys for ${tenant}`);
  t.same(await drainJobs(tenant), [], `no drain job for ${tenant}`);
}

async function eventually<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch((err: unknown) => err as T);
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: last ${String(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const twoMiB = (): Buffer => Buffer.alloc(2 * 1_048_576, 0x61);
/** A body with no Content-Length: undici sends a Readable with Transfer-Encoding: chunked. */
function chunked(total: number, size = 64 * 1024): Readable {
  return Readable.from((function* () {
    for (let sent = 0; sent < total; sent += size) yield Buffer.alloc(Math.min(size, total - sent), 0x61);
  })());
}

t.test('options are checked at construction', async (t) => {
  const bad: Array<Partial<Record<keyof IngressOptions, unknown>>> = [
    { config: undefined }, { config: { ...CONFIG, ingressPort: -1 } }, { config: { ...CONFIG, ingressPort: 1.5 } },
    { config: { ...CONFIG, ingressHost: '' } }, { config: { ...CONFIG, ingressBodyLimit: 0 } },
    { log: undefined }, { redis: undefined }, { mailbox: {} }, { webhookSecret: '' }, { metrics: {} }, { redisTimeoutMs: 0 },
  ];
  for (const b of bad) await t.rejects(createIngress({ ...base, ...b } as IngressOptions), TypeError, JSON.stringify(Object.keys(b)));
  t.ok(ingress.port > 0, 'port 0 reports the real port');
});

t.test('a valid update is durable before the 200, with one drain', async (t) => {
  const r = await post('alice', update(1000, 42));
  t.equal(r.status, 200);
  t.same(JSON.parse(r.text), { ok: true });
  t.match(r.headers['content-type'], /application\/json/);
  t.same(await mailboxOf('alice', 42), [1000], 'the envelope is in the mailbox list when the 200 arrives');
  const raw = await redis.lindex(mailboxKey('alice', '42'), 0);
  t.equal(decodeEnvelope(raw ?? '').raw, update(1000, 42), 'the raw body is kept verbatim');
  t.same(await drainJobs('alice'), [{ t: 'alice', c: '42' }], 'exactly one drain: the chat on its shard\'s ready list');
  const waiting = await mailbox.queueOf('alice').getJobs(['waiting']);
  t.same(waiting.map((j) => j.name), [RUN_JOB_NAME], 'and a runner to take it');

  const dup = await post('alice', update(1000, 42));
  t.equal(dup.status, 200, 'a retried update_id is acknowledged');
  t.same(await mailboxOf('alice', 42), [1000], 'and not enqueued twice');

  t.equal((await post('alice', update(1001, 42))).status, 200);
  t.same(await mailboxOf('alice', 42), [1000, 1001]);
  t.equal((await drainJobs('alice')).length, 1, 'a second update of the chat finds the drain responsible');

  const text = (await call('/metrics')).text;
  t.match(text, /ztm_ingress_updates_total\{duplicate="true",service="ingress"\} 1/);
  t.match(text, /ztm_ingress_updates_total\{duplicate="false",service="ingress"\} 2/);
});

t.test('a wrong, missing or foreign secret is 401 and enqueues nothing', async (t) => {
  for (const [name, secret] of [['wrong', 'x'.repeat(43)], ['missing', null], ['empty', ''], ['other tenant', secretOf('alice')]] as const) {
    const r = await post('bob', update(1, 7), secret);
    t.equal(r.status, 401, name);
    t.match(JSON.parse(r.text), { ok: false });
  }
  const big = await post('bob', twoMiB(), 'nope');
  t.equal(big.status, 401, 'the secret is checked before the body is read, even a large one');
  await nothingEnqueued(t, 'bob');
});

t.test('a body that is not a Telegram Update is 400 and enqueues nothing', async (t) => {
  const bodies = ['not json', '[1,2]', '{"message":{"text":"hi"}}', '{"update_id":"12"}', '{"update_id":-1}', '{"update_id":1.5}', '', 'null', '"str"'];
  for (const body of bodies) {
    const r = await post('carol', body);
    t.equal(r.status, 400, JSON.stringify(body));
    t.match(JSON.parse(r.text), { ok: false, error: /update_id/ });
  }
  await nothingEnqueued(t, 'carol');
});

t.test('bodies above the limit are 413, announced or streamed, and the process stays healthy', async (t) => {
  const announced = await post('dave', twoMiB());
  t.equal(announced.status, 413, 'Content-Length above the limit');
  const streamed = await post('dave', chunked(2 * 1_048_576));
  t.equal(streamed.status, 413, 'chunked body crossing the limit');
  t.equal((await post('dave', chunked(1_048_576 + 1))).status, 413, 'one byte over');
  const atLimit = JSON.stringify({ update_id: 5, message: { chat: { id: 1 }, text: '' } });
  const padded = atLimit.replace('""', `"${'a'.repeat(1_048_576 - atLimit.length)}"`);
  t.equal(Buffer.byteLength(padded), 1_048_576);
  t.equal((await post('erin', padded)).status, 200, 'exactly at the limit is accepted');
  await nothingEnqueued(t, 'dave');
  t.equal((await call('/healthz')).status, 200);
});

t.test('routing: 404 for other paths and bad tenant ids, 405 with Allow for wrong methods', async (t) => {
  for (const path of ['/', '/nope', '/tg', '/tg/', '/tg/Alice', '/tg/1abc', `/tg/${'a'.repeat(41)}`, '/tg/alice/extra', '/tg/al%20ice']) {
    const r = await call(path, { method: 'POST', body: update(1, 1), headers: { 'x-telegram-bot-api-secret-token': secretOf('alice') } });
    t.equal(r.status, 404, `POST ${path}`);
  }
  const get = await call('/tg/alice');
  t.equal(get.status, 405);
  t.equal(get.headers.allow, 'POST');
  for (const path of ['/healthz', '/readyz', '/metrics']) {
    const r = await call(path, { method: 'POST', body: 'x' });
    t.equal(r.status, 405, `POST ${path}`);
    t.equal(r.headers.allow, 'GET');
  }
  t.equal((await call('/healthz')).text, 'ok');
  t.equal((await call('/readyz')).status, 200);
  const m = await call('/metrics');
  t.equal(m.status, 200);
  t.match(m.headers['content-type'], /^text\/plain/);
  t.match(m.text, /ztm_ingress_requests_total\{status="401",service="ingress"\}/);
  t.match(m.text, /ztm_ingress_requests_total\{status="413",service="ingress"\}/);
});

t.test('after bad input a valid update is still accepted quickly', async (t) => {
  const started = Date.now();
  t.equal((await post('frank', update(77, 3))).status, 200);
  t.ok(Date.now() - started < 1000, `answered in ${Date.now() - started} ms`);
  t.same(await mailboxOf('frank', 3), [77]);
});

t.test('500 concurrent updates across 50 chats: all 200, one drain per chat', async (t) => {
  const sent = Array.from({ length: 500 }, (_, i) => ({ id: 10_000 + i, chat: 500 + (i % 50) }));
  const answers = await Promise.all(sent.map((u) => post('grace', update(u.id, u.chat))));
  t.same([...new Set(answers.map((a) => a.status))], [200], 'every request got 200');
  for (let c = 0; c < 50; c++) {
    const want = sent.filter((u) => u.chat === 500 + c).map((u) => u.id);
    const got = await mailboxOf('grace', 500 + c);
    if (got.length !== want.length || [...got].sort().join() !== want.join()) t.fail(`chat ${500 + c}: ${got.join()} != ${want.join()}`);
  }
  const jobs = await drainJobs('grace');
  t.equal(jobs.length, 50, 'one drain per chat');
  t.equal(new Set(jobs.map((j) => j.c)).size, 50);
});

t.test('logs never carry the secret header or the body', async (t) => {
  t.equal((await post('heidi', update(9, 9, 'private-marker-text'))).status, 200);
  const text = capture.text();
  t.notOk(text.includes(MASTER), 'master secret');
  t.notOk(text.includes(secretOf('heidi')), 'tenant secret');
  t.notOk(text.includes('private-marker-text'), 'update body');
  t.ok(capture.find('webhook answered').length > 0, 'per-request lines exist at debug');
});

t.test('close() lets in-flight writes answer, then refuses connections; a hung write cannot stall it', async (t) => {
  // Each stub says when the write reached it, so close() starts with the write surely in flight.
  let reachedSlow!: () => void;
  const slowReached = new Promise<void>((r) => { reachedSlow = r; });
  const slow = await createIngress({
    ...base, log: new LogCapture().logger('ingress'),
    mailbox: { accept: () => { reachedSlow(); return new Promise((resolve) => setTimeout(() => resolve({ duplicate: false }), 300)); } },
  });
  const inflight = request(`http://127.0.0.1:${slow.port}/tg/ivan`, {
    method: 'POST', body: update(1, 1), headers: { 'x-telegram-bot-api-secret-token': secretOf('ivan') },
  });
  await slowReached;
  await slow.close();
  const res = await inflight;
  t.equal(res.statusCode, 200, 'the write in flight at close() was answered');
  await res.body.text();
  await t.rejects(request(`http://127.0.0.1:${slow.port}/healthz`), 'closed ingress refuses connections');

  let reachedStuck!: () => void;
  const stuckReached = new Promise<void>((r) => { reachedStuck = r; });
  const stuck = await createIngress({
    ...base, log: new LogCapture().logger('ingress'), mailbox: { accept: () => { reachedStuck(); return new Promise(() => undefined); } }, redisTimeoutMs: 60_000, closeGraceMs: 200,
  });
  const pending = request(`http://127.0.0.1:${stuck.port}/tg/ivan`, {
    method: 'POST', body: update(1, 1), headers: { 'x-telegram-bot-api-secret-token': secretOf('ivan') },
  }).catch((err: unknown) => err);
  await stuckReached;
  const started = Date.now();
  await stuck.close();
  t.ok(Date.now() - started < 1000, `close() gave up waiting after ${Date.now() - started} ms`);
  t.type(await pending, Error, 'the stuck request is cut, so Telegram retries it');
});

t.test('a hung Redis write answers 503 within the bound', async (t) => {
  const own = new LogCapture();
  const hung = await createIngress({
    ...base, log: own.logger('ingress'), mailbox: { accept: () => new Promise(() => undefined) }, redisTimeoutMs: 300, closeGraceMs: 200,
  });
  const started = Date.now();
  const res = await request(`http://127.0.0.1:${hung.port}/tg/ivan`, {
    method: 'POST', body: update(1, 1), headers: { 'x-telegram-bot-api-secret-token': secretOf('ivan') },
  });
  t.equal(res.statusCode, 503);
  t.equal(res.headers['retry-after'], '5');
  await res.body.text();
  t.ok(Date.now() - started < 2000, `503 after ${Date.now() - started} ms`);
  t.match(own.find('redis unavailable')[0], { level: 40, reason: /within 300 ms/ });
  await hung.close();
  await t.rejects(request(`http://127.0.0.1:${hung.port}/healthz`), 'closed ingress refuses connections');
});

t.test('Redis down: 503 with Retry-After and /readyz 503; back: ready and accepting again', async (t) => {
  await tr.server.stop();
  const down = await eventually('503 on POST', () => post('judy', update(1, 1)), (a) => a.status === 503, 5000);
  t.equal(down.headers['retry-after'], '5');
  t.equal((await eventually('/readyz 503', () => call('/readyz'), (a) => a.status === 503, 5000)).status, 503);
  for (let i = 0; i < 5; i++) t.equal((await post('judy', update(2 + i, 1))).status, 503, 'keeps answering 503 quickly');
  t.equal((await call('/healthz')).status, 200, 'liveness is not tied to Redis');
  t.equal(capture.find('redis unavailable').length, 1, 'one warning per outage');

  await tr.server.spawn();
  await eventually('/readyz 200', () => call('/readyz'), (a) => a.status === 200);
  await eventually('POST accepted', () => post('judy', update(100, 1)), (a) => a.status === 200);
  t.same(await mailboxOf('judy', 1), [100]);
  t.equal((await drainJobs('judy')).length, 1);
  t.equal(capture.find('redis available again').length, 1);
});
