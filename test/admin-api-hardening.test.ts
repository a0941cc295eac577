/**
 * The admin API attacked from outside: a flood of made-up tokens (cut off per address before it
 * costs Redis reads), a low-scope token (its refusals spend its budget; path tricks never reach a
 * command it may not run), prototype pollution in bodies, the request counter (no secret in its
 * labels). A real redis-server; the janitor is a stand-in backend that records what it is asked to
 * run (what reaches it is the point of these tests).
 */
import t from 'tap';
import { request } from 'undici';
import { startRedis, type TestRedis } from './support/redis.js';
import { rawExchange } from './support/raw-http.js';
import { LogCapture } from './support/log-capture.js';
import { createRedis, closeRedis, type RedisClient } from '../lib/redis.js';
import { createMetrics } from '../lib/metrics.js';
import { AdminApiServer } from '../lib/admin-api/admin-api-server.js';
import { ApiTokenStore } from '../lib/admin-api/api-tokens.js';
import { RateLimiter } from '../lib/admin-api/rate-limiter.js';
import { FailedAuthLimiter, clientKey } from '../lib/admin-api/failed-auth-limiter.js';
import { OPENAPI_DOCUMENT } from '../lib/admin-api/openapi.js';

let redis: TestRedis;
let client: RedisClient;
const logs = new LogCapture();

t.before(async () => {
  redis = await startRedis();
  client = createRedis({ url: redis.url, name: 'admin-api-hardening' });
});
t.teardown(async () => {
  await closeRedis(client);
  await redis?.close();
});

async function serve(o: { failedAuth?: FailedAuthLimiter; burst?: number; metrics?: ReturnType<typeof createMetrics> } = {}) {
  const calls: string[] = [];
  const server = new AdminApiServer({
    backend: { run: async (command) => (calls.push(command), { items: [], tenant_id: 'a' }) },
    tokens: new ApiTokenStore(client), limiter: new RateLimiter(client), log: logs.logger('admin-api'),
    defaultLimit: { perMin: 60, burst: o.burst ?? 1000 }, openapi: OPENAPI_DOCUMENT,
    ...(o.failedAuth ? { failedAuth: o.failedAuth } : {}), ...(o.metrics ? { metrics: o.metrics } : {}),
  });
  const url = await server.listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  return { url, port: Number(new URL(url).port), calls };
}

async function ask(url: string, method: string, path: string, headers: Record<string, string> = {}, body?: string) {
  const res = await request(`${url}${path}`, { method: method as 'GET', headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

async function hgetallCalls(): Promise<number> {
  const info = await client.info('commandstats');
  return Number(/cmdstat_hgetall:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

const fakeToken = (i: number) => `ztm_${i.toString(16).padStart(12, '0')}_${'A'.repeat(43)}`;

t.test('a flood of made-up tokens from one address is cut off after the burst, before it costs Redis reads', async (t) => {
  const api = await serve({ failedAuth: new FailedAuthLimiter({ burst: 5, perMin: 1 }) });
  const before = await hgetallCalls();
  const statuses: number[] = [];
  for (let i = 0; i < 40; i++) statuses.push((await ask(api.url, 'GET', '/v1/tenants', { authorization: `Bearer ${fakeToken(i)}` })).status);
  t.same(statuses.slice(0, 5), [401, 401, 401, 401, 401], 'the first failures are answered 401');
  t.ok(statuses.slice(5).every((s) => s === 429), `then 429: ${statuses.slice(5).join(',')}`);
  const reads = (await hgetallCalls()) - before;
  t.ok(reads <= 5, `${reads} token reads in Redis for 40 made-up tokens`);
  const refused = await ask(api.url, 'GET', '/v1/tenants', { authorization: `Bearer ${fakeToken(99)}` });
  t.equal(refused.status, 429);
  t.match(refused.headers['retry-after'], /^[0-9]+$/, 'with Retry-After');
  t.match(JSON.parse(refused.text), { error: { code: 'E_RATE_LIMITED' } });
  t.same(api.calls, [], 'nothing ran');
});

t.test('failed-auth memory is bounded and forgets an address once it is whole again', async (t) => {
  let now = 0;
  const l = new FailedAuthLimiter({ burst: 2, perMin: 60, maxClients: 3, now: () => now });
  for (const a of ['a', 'b', 'c', 'd', 'e']) l.fail(a);
  t.equal(l.size, 3, 'at most maxClients addresses');
  l.fail('e');
  t.ok(l.blockedFor('e') >= 1, 'two failures of a burst of two: blocked');
  now += 2000;
  t.equal(l.blockedFor('e'), 0, 'refilled at 1/s: allowed again');
  t.equal(l.size, 2, 'a whole bucket is forgotten');
});

t.test('failures are counted per IPv4 address and per IPv6 /64', async (t) => {
  t.equal(clientKey('203.0.113.7'), '203.0.113.7');
  t.equal(clientKey('::ffff:203.0.113.7'), '203.0.113.7', 'IPv4-mapped');
  t.equal(clientKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  t.equal(clientKey('2001:0db8:0001:0002::1'), '2001:db8:1:2::/64', 'another address of the same /64');
  t.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  t.equal(clientKey('::1'), '0:0:0:0::/64');
  t.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64', 'zone id dropped');
  t.equal(clientKey(undefined), 'unknown');
});

t.test('a token without the scope spends its budget on refusals too', async (t) => {
  const api = await serve({ burst: 3 });
  const { token } = await new ApiTokenStore(client).create({ name: 'reader', scopes: ['tenants:read'] });
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) {
    statuses.push((await ask(api.url, 'POST', '/v1/tenants', { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, '{"tenant_id":"x","bot_token":"1:a"}')).status);
  }
  t.same(statuses, [403, 403, 403, 429, 429]);
  t.same(api.calls, []);
});

t.test('path tricks with a read-only token never run a write or operate command', async (t) => {
  const api = await serve();
  const { token } = await new ApiTokenStore(client).create({ name: 'reader2', scopes: ['tenants:read'] });
  const auth = `Authorization: Bearer ${token}\r\n`;
  const paths = [
    '/v1/tenants/a%3Awake', '/v1/tenants/a%3astop', '/v1/tenants/a:wake/', '/v1/tenants/a/../b:wake', '/v1/tenants/a%2F..%2Fb:wake',
    '/v1/tenants/a/..%2F..%2Fdead-letters:retry-all', '/V1/tenants/a:wake', '/v1/tenants/a:WAKE', '/v1/tenants/a:wake;x', '/v1/tenants/a:wake%00',
    '/v1/dead-letters%3Aretry-all', '/v1//tenants/a:wake', '//v1/tenants/a:wake', '/healthz/../v1/tenants/a:wake', '/v1/openapi.json/../tenants/a:wake',
  ];
  const seen: Record<string, number | undefined> = {};
  for (const path of paths) {
    for (const method of ['POST', 'PATCH', 'DELETE', 'PUT']) {
      const r = await rawExchange(api.port, `${method} ${path} HTTP/1.1\r\nHost: x\r\n${auth}X-HTTP-Method-Override: POST\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`, { waitMs: 2000, untilClose: true });
      seen[`${method} ${path}`] = r.status;
    }
  }
  t.same(api.calls.filter((c) => c !== 'tenant.get'), [], 'no command but reads ran');
  t.ok(Object.values(seen).every((s) => s !== undefined && s >= 400), JSON.stringify(seen));
  // Without a token, the same tricks on reads and the plain paths: nothing runs at all.
  const before = api.calls.length;
  for (const path of ['/v1/tenants', '/v1/tenants/', '/v1/Tenants', '/v1/openapi.json/../tenants', '/healthz/../v1/tenants', '/v1/tenants%2F', '/v1/openapi.json%2F..%2Ftenants']) {
    for (const method of ['GET', 'HEAD', 'OPTIONS']) {
      const r = await rawExchange(api.port, `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { waitMs: 2000, untilClose: true });
      t.ok(r.status !== undefined && r.status >= 400, `${method} ${path} without a token: ${r.status}`);
    }
  }
  t.equal(api.calls.length, before, 'nothing ran without a token');
});

t.test('smuggling and oversized headers are refused by the parser before any route', async (t) => {
  const api = await serve();
  const { token } = await new ApiTokenStore(client).create({ name: 'smuggler', scopes: ['tenants:read'] });
  const both = await rawExchange(api.port, `POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`, { waitMs: 2000, untilClose: true });
  t.equal(both.status, 400, 'Content-Length with Transfer-Encoding: 400');
  const huge = await rawExchange(api.port, `GET /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`, { waitMs: 2000, untilClose: true });
  t.equal(huge.status, 431, 'headers over 16 KiB: 431');
  t.same(api.calls, [], 'nothing ran, not even the smuggled read');
});

t.test('a __proto__ or constructor field in a body is refused and pollutes nothing', async (t) => {
  const api = await serve();
  const { token } = await new ApiTokenStore(client).create({ name: 'writer', scopes: ['tenants:write'] });
  for (const raw of ['{"__proto__":{"polluted":true},"tenant_id":"a","bot_token":"1:a"}', '{"constructor":{"prototype":{"polluted":true}},"tenant_id":"a"}']) {
    const r = await ask(api.url, 'POST', '/v1/tenants', { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, raw);
    t.equal(r.status, 400, r.text);
    t.match(JSON.parse(r.text), { error: { code: 'E_VALIDATION' } });
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined);
  t.same(api.calls, []);
});

t.test('ztm_admin_api_requests_total counts by operation and status, with no secret in it', async (t) => {
  const metrics = createMetrics({ service: 'admin-api', defaultMetrics: false });
  const api = await serve({ metrics });
  const { token } = await new ApiTokenStore(client).create({ name: 'metrics', scopes: ['tenants:read'] });
  await ask(api.url, 'GET', '/v1/tenants', { authorization: `Bearer ${token}` });
  await ask(api.url, 'GET', '/v1/tenants/alice', { authorization: `Bearer ${token}` });
  await ask(api.url, 'GET', '/v1/tenants', { authorization: `Bearer ${fakeToken(7)}` });
  await ask(api.url, 'POST', `/v1/tenants/alice:wake`, { authorization: `Bearer ${token}` });
  await ask(api.url, 'GET', `/nowhere/${token}`);
  await ask(api.url, 'GET', '/healthz');
  const text = await metrics.registry.metrics();
  t.match(text, /ztm_admin_api_requests_total\{operation="listTenants",status="200",service="admin-api"\} 1/);
  t.match(text, /ztm_admin_api_requests_total\{operation="getTenant",status="200",service="admin-api"\} 1/);
  t.match(text, /ztm_admin_api_requests_total\{operation="listTenants",status="401",service="admin-api"\} 1/);
  t.match(text, /ztm_admin_api_requests_total\{operation="wakeTenant",status="403",service="admin-api"\} 1/);
  t.match(text, /ztm_admin_api_requests_total\{operation="none",status="404",service="admin-api"\} 1/);
  t.match(text, /ztm_admin_api_requests_total\{operation="plain",status="200",service="admin-api"\} 1/);
  t.notOk(text.includes(token.slice(17)), 'no token secret in the metrics');
  t.notOk(logs.text().includes(token.slice(17)), 'nor in the logs');
});
