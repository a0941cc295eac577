/**
 * The admin HTTP API against real parts: redis-server, dynalite, the Telegram emulator and the
 * janitor's admin worker (test/support/platform.ts), the API on a loopback port, tokens made with
 * `ztm api-token create`. Auth, scopes, validation, 404/405/409/413/415, rate limits, pagination,
 * redaction in answers and logs, tokens hashed at rest, revocation.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { startTestPlatform, type TestPlatform } from './support/platform.js';
import { rawExchange } from './support/raw-http.js';
import { buildAdminApi, type BuiltAdminApi } from '../services/admin-api/build.js';
import { startOrClose } from '../lib/platform/service-parts.js';
import { AdminApiServer } from '../lib/admin-api/admin-api-server.js';
import { ApiTokenStore } from '../lib/admin-api/api-tokens.js';
import { RateLimiter } from '../lib/admin-api/rate-limiter.js';
import { OPENAPI_DOCUMENT } from '../lib/admin-api/openapi.js';

const BOT = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const BOT_SECRET = BOT.split(':')[1] as string;
const NEW_BOT = '987654321:BBHnewtokenAAAAAAAAAAAAAAAAAAAAAAAA2';
const PUBLIC_URL = 'https://bots.example.test';

let p: TestPlatform;
let api: BuiltAdminApi;
const answers: string[] = [];

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: any; text: string }

async function call(method: string, path: string, o: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (o.body !== undefined || o.raw !== undefined) headers['content-type'] ??= 'application/json';
  const res = await request(`${api.url}${path}`, {
    method: method as 'GET', headers, headersTimeout: 30_000, bodyTimeout: 30_000,
    ...(o.raw !== undefined ? { body: o.raw } : o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
  });
  const text = await res.body.text();
  answers.push(text);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.statusCode, headers: res.headers, body, text };
}

async function newToken(...flags: string[]): Promise<string> {
  const r = await p.ztm('api-token', 'create', ...flags);
  if (r.code !== 0) throw new Error(`api-token create failed: ${r.stderr}`);
  return r.stdout.trim();
}

let admin: string;

t.before(async () => {
  p = await startTestPlatform({ env: { ROUTER_PUBLIC_URL: PUBLIC_URL } });
  p.emulator.addBot(BOT, { username: 'alice_bot' });
  p.emulator.addBot(NEW_BOT, { username: 'alice2_bot' });
  api = await startOrClose(await buildAdminApi({
    config: { ...p.config, adminApiRatePerMin: 6000, adminApiBurst: 1000 }, log: p.logs.logger('admin-api'),
    redis: p.clients.redis, redisUrl: p.redis.url, port: 0, host: '127.0.0.1', pickupTimeoutMs: 1500,
  }));
  admin = await newToken('--name', 'tests');
});
t.teardown(async () => {
  await api?.close();
  await p?.close();
});

t.test('ztm api-token create prints the token once; Redis holds only its SHA-256', async (t) => {
  const r = await p.ztm('api-token', 'create', '--name', 'signup-flow', '--scope', 'tenants:read,tenants:write');
  t.equal(r.code, 0, r.stderr);
  const token = r.stdout.trim();
  t.match(token, /^ztm_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/, 'stdout is the token alone');
  t.match(r.stderr, /shown once/);
  t.notOk(r.stderr.includes(token.slice(17)), 'the secret is not repeated on stderr');
  const j = await p.ztm('api-token', 'create', '--name', 'json', '--json');
  const created = JSON.parse(j.stdout) as { token: string; id: string; scopes: string[] };
  t.match(created.token, /^ztm_/);
  t.same(created.scopes, ['tenants:read', 'tenants:write', 'tenants:operate', 'dead-letters'], 'every scope by default');
  // Everything in Redis, every type: no token, only hashes of them.
  const dump: string[] = [];
  for (const key of await p.clients.redis.keys('*')) {
    const type = await p.clients.redis.type(key);
    if (type === 'string') dump.push(key, String(await p.clients.redis.get(key)));
    else if (type === 'hash') dump.push(key, JSON.stringify(await p.clients.redis.hgetall(key)));
    else if (type === 'zset') dump.push(key, JSON.stringify(await p.clients.redis.zrange(key, 0, -1)));
    else if (type === 'set') dump.push(key, JSON.stringify(await p.clients.redis.smembers(key)));
    else if (type === 'list') dump.push(key, JSON.stringify(await p.clients.redis.lrange(key, 0, -1)));
    else dump.push(key);
  }
  const all = dump.join('\n');
  for (const tok of [token, created.token, admin]) {
    t.notOk(all.includes(tok.slice(18)), 'no secret part of a token in Redis');
    t.ok(all.includes(createHash('sha256').update(tok).digest('hex')), 'its SHA-256 is');
  }
  const bad = await p.ztm('api-token', 'create', '--name', 'x', '--scope', 'root');
  t.equal(bad.code, 2);
  t.match(bad.stderr, /invalid scope "root"/);
  t.equal((await p.ztm('api-token', 'create')).code, 2, 'a name is required');
});

t.test('auth: missing, malformed, wrong and revoked tokens are 401 with one code, and say nothing of the token', async (t) => {
  const none = await call('GET', '/v1/tenants');
  t.equal(none.status, 401);
  t.equal(none.body.error.code, 'E_UNAUTHORIZED');
  t.match(String(none.headers['www-authenticate']), /^Bearer/);
  const wrongSecret = `${admin.slice(0, 17)}${'A'.repeat(43)}`;
  for (const token of ['nonsense', `${admin}x`, wrongSecret]) {
    const r = await call('GET', '/v1/tenants', { token });
    t.equal(r.status, 401, 'refused');
    t.same(r.body, { error: { code: 'E_UNAUTHORIZED', message: 'invalid or revoked API token' } });
  }
  t.equal((await call('GET', '/v1/tenants', { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } })).status, 401, 'only Bearer');
  const doomed = await newToken('--name', 'doomed');
  t.equal((await call('GET', '/v1/tenants', { token: doomed })).status, 200, 'works before revocation');
  const id = doomed.slice(4, 16);
  const listed = JSON.parse((await p.ztm('api-token', 'list', '--json')).stdout) as Array<Record<string, unknown>>;
  const mine = listed.find((r) => r.id === id);
  t.equal(mine?.name, 'doomed');
  t.ok(mine?.last_used_at, 'list shows its last use');
  t.notOk(JSON.stringify(listed).includes(doomed.slice(17)), 'list never shows a token');
  t.notOk(JSON.stringify(listed).includes('sha256'), 'nor a hash');
  const table = await p.ztm('api-token', 'list');
  t.match(table.stdout.split('\n')[0] ?? '', /^ID\s+NAME\s+SCOPES\s+RATE\s+CREATED_AT\s+LAST_USED_AT/);
  const rv = await p.ztm('api-token', 'revoke', id);
  t.equal(rv.code, 0, rv.stderr);
  const after = await call('GET', '/v1/tenants', { token: doomed });
  t.equal(after.status, 401, 'refused from the next request on');
  t.equal(after.body.error.code, 'E_UNAUTHORIZED');
  const again = await p.ztm('api-token', 'revoke', id);
  t.equal(again.code, 1);
  t.match(again.stderr, new RegExp(`^ztm: api token ${id} not found`));
  t.equal((await p.ztm('api-token', 'revoke', 'zz')).code, 2, 'a malformed id is a usage error');
});

t.test('scopes: a read-only token reads and may not write', async (t) => {
  const reader = await newToken('--name', 'reader', '--scope', 'tenants:read');
  t.equal((await call('GET', '/v1/tenants', { token: reader })).status, 200);
  const w = await call('POST', '/v1/tenants', { token: reader, body: { tenant_id: 'nope', bot_token: BOT } });
  t.equal(w.status, 403);
  t.equal(w.body.error.code, 'E_FORBIDDEN');
  t.match(w.body.error.message, /tenants:write/);
  t.equal(await p.clients.registry.get('nope'), undefined, 'nothing created');
});

t.test('create, get, update, delete with ztm\'s semantics; bot tokens never answered', async (t) => {
  const c = await call('POST', '/v1/tenants', { token: admin, body: { tenant_id: 'alice', bot_token: BOT, idle_timeout_s: 600 } });
  t.equal(c.status, 201, c.text);
  t.equal(c.headers.location, '/v1/tenants/alice');
  t.equal(c.body.tenant.tenant_id, 'alice');
  t.equal(c.body.tenant.bot_token, '123456789:[REDACTED]');
  t.equal(c.body.tenant.idle_timeout_s, 600);
  t.same(c.body.webhook, { registered: true, url: `${PUBLIC_URL}/tg/alice` });
  t.equal(p.emulator.webhookOf(BOT)?.url, `${PUBLIC_URL}/tg/alice`, 'the webhook is registered as ztm does');
  const dup = await call('POST', '/v1/tenants', { token: admin, body: { tenant_id: 'alice', bot_token: BOT } });
  t.equal(dup.status, 409);
  t.equal(dup.body.error.code, 'E_EXISTS');
  const g = await call('GET', '/v1/tenants/alice', { token: admin });
  t.equal(g.status, 200);
  t.equal(g.body.status, 'idle');
  t.equal((await call('GET', '/v1/tenants/nobody', { token: admin })).body.error.code, 'E_NOT_FOUND');
  t.equal((await call('GET', '/v1/tenants/nobody', { token: admin })).status, 404);
  const u = await call('PATCH', '/v1/tenants/alice', { token: admin, body: { idle_timeout_s: 1800 } });
  t.equal(u.status, 200, u.text);
  t.equal(u.body.tenant.idle_timeout_s, 1800);
  const rot = await call('PATCH', '/v1/tenants/alice', { token: admin, body: { bot_token: NEW_BOT } });
  t.equal(rot.status, 200, rot.text);
  t.equal(rot.body.tenant.bot_token, '987654321:[REDACTED]');
  t.equal(rot.body.webhook.registered, true, 'a new token re-registers the webhook');
  t.equal(p.emulator.callsTo('deleteWebhook', BOT).length, 1, 'and drops the old one');
  const hook = await call('GET', '/v1/tenants/alice/webhook', { token: admin });
  t.equal(hook.body.url, `${PUBLIC_URL}/tg/alice`);
  const reg = await call('POST', '/v1/tenants/alice/webhook:register', { token: admin });
  t.same(reg.body, { registered: true, url: `${PUBLIC_URL}/tg/alice` });
  const d = await call('DELETE', '/v1/tenants/alice', { token: admin });
  t.equal(d.status, 200, d.text);
  t.equal(d.body.deleted, true);
  t.ok(d.body.steps.includes('record deleted'));
  t.equal((await call('GET', '/v1/tenants/alice', { token: admin })).status, 404);
  t.equal((await call('DELETE', '/v1/tenants/alice', { token: admin })).status, 404, 'a second delete: not found');
});

t.test('validation: 400/405/404/413/415 with stable codes, the bad token never echoed', async (t) => {
  const cases: Array<[string, string, Parameters<typeof call>[2], number, string, RegExp?]> = [
    ['POST', '/v1/tenants', { body: { tenant_id: 'Alice', bot_token: BOT } }, 400, 'E_VALIDATION', /invalid tenant id "Alice"/],
    ['POST', '/v1/tenants', { body: { tenant_id: 'carol', bot_token: `${BOT}!` } }, 400, 'E_VALIDATION', /invalid bot token/],
    ['POST', '/v1/tenants', { body: { tenant_id: 'carol', bot_token: BOT, idle_timeout_s: 0 } }, 400, 'E_VALIDATION', /invalid idle timeout/],
    ['POST', '/v1/tenants', { body: { tenant_id: 'carol', bot_token: BOT, idle: 5 } }, 400, 'E_VALIDATION', /unknown field "idle"/],
    ['POST', '/v1/tenants', { raw: `{"tenant_id":"carol","bot_token":"${BOT}"` }, 400, 'E_VALIDATION', /not valid JSON/],
    ['POST', '/v1/tenants', { raw: '[1]' }, 400, 'E_VALIDATION', /JSON object/],
    ['POST', '/v1/tenants', { raw: JSON.stringify({ tenant_id: 'carol', bot_token: BOT }), headers: { 'content-type': 'text/plain' } }, 415, 'E_UNSUPPORTED_MEDIA_TYPE'],
    ['POST', '/v1/tenants', { raw: JSON.stringify({ tenant_id: 'carol', bot_token: BOT, pad: 'x'.repeat(70_000) }) }, 413, 'E_PAYLOAD_TOO_LARGE'],
    ['PATCH', '/v1/tenants/carol', { body: {} }, 400, 'E_VALIDATION', /nothing to update/],
    ['GET', '/v1/tenants?limit=0', {}, 400, 'E_VALIDATION', /limit must be a whole number from 1 to 1000/],
    ['GET', '/v1/tenants?limit=abc', {}, 400, 'E_VALIDATION', /limit/],
    ['GET', '/v1/tenants?cursor=%25%25', {}, 400, 'E_VALIDATION', /invalid cursor/],
    ['GET', '/v1/tenants?page=2', {}, 400, 'E_VALIDATION', /unknown query parameter "page"/],
    ['DELETE', '/v1/tenants/carol?purge_state=yes', {}, 400, 'E_VALIDATION', /purge_state must be true or false/],
    ['GET', '/v1/tenants/Bad_Id', {}, 400, 'E_VALIDATION', /invalid tenant id/],
    ['PUT', '/v1/tenants/carol', { body: {} }, 405, 'E_METHOD_NOT_ALLOWED'],
    ['GET', '/v1/nothing', {}, 404, 'E_NOT_FOUND', /no such route/],
    ['GET', `/v1/tenants/${encodeURIComponent(BOT)}`, {}, 400, 'E_VALIDATION'],
  ];
  for (const [method, path, o, status, code, message] of cases) {
    const r = await call(method, path, { token: admin, ...o });
    t.equal(r.status, status, `${method} ${path.slice(0, 50)}: ${status}`);
    t.equal(r.body?.error?.code, code, `${method} ${path.slice(0, 50)}: ${code}`);
    if (message) t.match(r.body.error.message, message);
    t.notOk(r.text.includes(BOT_SECRET), 'the bot token is not echoed');
  }
  // A chunked body (no Content-Length) is cut off at the limit as it streams in.
  const chunked = await request(`${api.url}/v1/tenants`, {
    method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: Readable.from((function* () {
      yield `{"tenant_id":"carol","bot_token":"${BOT}","pad":"`;
      for (let i = 0; i < 40; i++) yield 'x'.repeat(4096);
      yield '"}';
    })()),
  }).then(async (r) => ({ status: r.statusCode, body: (await r.body.json()) as { error: { code: string } } }), (err: Error) => ({ status: 0, body: { error: { code: err.message } } }));
  t.equal(chunked.status, 413, 'a streamed body over the limit');
  t.equal(chunked.body.error.code, 'E_PAYLOAD_TOO_LARGE');
  // Request targets no client library sends: answered (or refused by Node's parser), the server stays up.
  const port = Number(new URL(api.url).port);
  for (const target of ['http://[', '//v1//tenants', '*', '/v1/tenants/%E0%A4%A']) {
    const raw = await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${admin}\r\nConnection: close\r\n\r\n`, { waitMs: 3000 });
    t.ok(raw.status !== undefined && raw.status >= 400 && raw.status < 500, `GET ${target}: ${raw.status}`);
  }
  t.equal((await call('GET', '/healthz')).status, 200, 'still serving');
  const put = await call('PUT', '/v1/tenants/carol', { token: admin, body: {} });
  t.equal(put.headers.allow, 'GET, PATCH, DELETE');
  t.equal(await p.clients.registry.get('carol'), undefined, 'nothing was created by any of them');
});

t.test('pagination: pages of at most limit, a cursor to the end, every tenant once', async (t) => {
  for (let i = 0; i < 5; i++) {
    t.equal((await call('POST', '/v1/tenants', { token: admin, body: { tenant_id: `page-${i}`, bot_token: BOT } })).status, 201);
  }
  const seen: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const r = await call('GET', `/v1/tenants?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: admin });
    t.equal(r.status, 200, r.text);
    t.ok(r.body.items.length <= 2, 'a page holds at most limit items');
    seen.push(...r.body.items.map((i: { tenant_id: string }) => i.tenant_id));
    cursor = r.body.next_cursor;
    pages++;
  } while (cursor && pages < 20);
  t.same(seen.sort(), ['page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
  t.ok(pages >= 3, `${pages} pages for 5 tenants at 2 per page`);
  const all = await call('GET', '/v1/tenants?limit=100', { token: admin });
  t.equal(all.body.items.length, 5);
  t.notOk('next_cursor' in all.body, 'no cursor after the last page');
});

t.test('rate limit: per token, 429 with Retry-After once its burst is spent', async (t) => {
  const slow = await newToken('--name', 'slow', '--rate-per-min', '1', '--burst', '2');
  t.equal((await call('GET', '/v1/tenants?limit=1', { token: slow })).status, 200);
  t.equal((await call('GET', '/v1/tenants?limit=1', { token: slow })).status, 200);
  const over = await call('GET', '/v1/tenants?limit=1', { token: slow });
  t.equal(over.status, 429);
  t.equal(over.body.error.code, 'E_RATE_LIMITED');
  const retry = Number(over.headers['retry-after']);
  t.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `Retry-After ${retry} s: one request back at 1/min`);
  t.equal((await call('GET', '/v1/tenants?limit=1', { token: admin })).status, 200, 'another token has its own bucket');
  const fresh = await newToken('--name', 'default-limits');
  t.equal((await call('GET', '/v1/tenants?limit=1', { token: fresh })).headers['ratelimit-remaining'], '999', 'the defaults apply to a token without its own');
});

t.test('rate limit: the bucket refills at its rate (60/min: one request back within about a second)', async (t) => {
  const tick = await newToken('--name', 'tick', '--rate-per-min', '60', '--burst', '1');
  t.equal((await call('GET', '/v1/tenants?limit=1', { token: tick })).status, 200);
  const over = await call('GET', '/v1/tenants?limit=1', { token: tick });
  t.equal(over.status, 429);
  t.equal(over.headers['retry-after'], '1');
  let back = 0;
  for (let i = 0; i < 20 && back !== 200; i++) {
    await new Promise((r) => setTimeout(r, 250));
    back = (await call('GET', '/v1/tenants?limit=1', { token: tick })).status;
  }
  t.equal(back, 200, 'allowed again once a token was added back');
});

t.test('concurrency: 30 requests at once all answer, in turn, without an emitter warning', async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));
  const all = await Promise.all(Array.from({ length: 30 }, () => call('GET', '/v1/tenants/page-1', { token: admin })));
  t.same([...new Set(all.map((r) => r.status))], [200]);
  await new Promise((r) => setImmediate(r));
  t.same(warnings.filter((w) => w === 'MaxListenersExceededWarning'), []);
});

t.test('lanes: long commands (wake, stop, delete) hold up neither each other\'s lane past its bound nor quick reads', async (t) => {
  // Stand-ins for the janitor (the real one cannot be told to take minutes): the long lane's never
  // answers until released, the quick lane's at once.
  const released: Array<() => void> = [];
  const longCalls: string[] = [];
  const quickCalls: string[] = [];
  const server = new AdminApiServer({
    backend: { run: async (command) => (quickCalls.push(command), { tenant_id: 'x', ok: true }) },
    longBackend: { run: (command) => (longCalls.push(command), new Promise((r) => released.push(() => r({ tenant_id: 'x', address: '127.0.0.1:1', ms: 1 })))) },
    tokens: new ApiTokenStore(p.clients.redis), limiter: new RateLimiter(p.clients.redis), log: p.logs.logger('admin-api-lanes'),
    defaultLimit: { perMin: 6000, burst: 1000 }, openapi: OPENAPI_DOCUMENT, concurrency: 2,
  });
  const url = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  const ask = (method: string, path: string) => request(`${url}${path}`, { method: method as 'GET', headers: { authorization: `Bearer ${admin}` } }).then(async (r) => (await r.body.text(), r.statusCode));
  const wakes = [ask('POST', '/v1/tenants/a:wake'), ask('POST', '/v1/tenants/b:stop'), ask('POST', '/v1/tenants/c:wake')];
  for (let i = 0; i < 100 && longCalls.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  t.same(longCalls, ['tenant.wake', 'tenant.sleep'], 'two long commands run, the third waits for a slot');
  t.equal(await ask('GET', '/v1/tenants/a'), 200, 'a read is answered meanwhile');
  t.same(quickCalls, ['tenant.get'], 'by the quick lane');
  released.shift()?.();
  for (let i = 0; i < 100 && longCalls.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(longCalls.length, 3, 'a finished long command hands its slot to the waiting one');
  while (released.length) released.shift()?.();
  t.same(await Promise.all(wakes), [200, 200, 200]);
});

t.test('logs: one line per request from a child logger; no bearer or bot token anywhere', async (t) => {
  const lines = p.logs.find('request').filter((e) => e.service === 'admin-api');
  t.ok(lines.length >= 20, `${lines.length} request lines`);
  const created = lines.find((e) => e.op === 'createTenant' && e.status === 201);
  t.ok(created, 'a create is logged with its operation and status');
  t.match(String(created?.req), /^[0-9a-f]{16}$/, 'and its request id');
  t.match(String(created?.api_token_id), /^[0-9a-f]{12}$/, 'and the token id (public), not the token');
  const text = p.logs.text();
  t.notOk(text.includes(BOT_SECRET), 'no bot token in the logs');
  t.notOk(text.includes(admin.slice(17)), 'no bearer token in the logs');
  t.notOk(answers.join('\n').includes(BOT_SECRET), 'no bot token in any answer');
  const r = await call('GET', '/v1/tenants/page-0', { token: admin, headers: { 'x-request-id': 'trace-42' } });
  t.equal(r.headers['x-request-id'], 'trace-42', 'a caller\'s request id is kept');
});

t.test('no admin worker: 503 E_NO_WORKER with Retry-After, nothing left queued', async (t) => {
  await p.janitor.close();
  const r = await call('GET', '/v1/tenants/page-0', { token: admin });
  t.equal(r.status, 503);
  t.equal(r.body.error.code, 'E_NO_WORKER');
  t.equal(r.headers['retry-after'], '5');
});
