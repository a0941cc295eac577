/**
 * The dashboard attacked from a browser on another site and from the network: clickjacking (every
 * answer refuses to be framed), cross-site requests that change queues (a form POST carries the
 * browser's cached basic auth), DNS rebinding of a board served without auth on loopback, guessing
 * the password (cut off per address), cache headers on authenticated pages. A real redis-server and
 * the real board (Bull Board and the tenants view) on a loopback port.
 */
import t from 'tap';
import { request } from 'undici';
import { startRedis, type TestRedis } from './support/redis.js';
import { createRedis, closeRedis, type RedisClient } from '../lib/redis.js';
import { serveDashboard, type ServedDashboard } from '../lib/ops/dashboard.js';
import { QueueStats } from '../lib/ops/queue-stats.js';

const USER = 'ops';
const PASSWORD = 'correct-horse-battery';
const AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

let redis: TestRedis;
let client: RedisClient;

t.before(async () => {
  redis = await startRedis();
  client = createRedis({ url: redis.url, name: 'dashboard-hardening' });
});
t.teardown(async () => {
  await closeRedis(client);
  await redis?.close();
});

async function board(o: { auth?: boolean } = {}): Promise<ServedDashboard> {
  const served = await serveDashboard({ redis: client, port: 0, ...(o.auth === false ? {} : { auth: { user: USER, password: PASSWORD } }) });
  t.teardown(() => served.close());
  return served;
}

async function ask(url: string, o: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const res = await request(url, { method: (o.method ?? 'GET') as 'GET', headers: o.headers ?? {}, ...(o.body !== undefined ? { body: o.body } : {}) });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

/** A queue the board may change (not read-only), by its name on the board's API. */
async function writableQueue(url: string): Promise<string> {
  const r = await ask(`${url}api/queues`, { headers: { authorization: AUTH } });
  const queues = (JSON.parse(r.text) as { queues: Array<{ name: string; readOnlyMode: boolean }> }).queues;
  const q = queues.find((x) => !x.readOnlyMode && /forward|wake/.test(x.name));
  if (!q) throw new Error(`no writable queue on the board: ${queues.map((x) => x.name).join(', ')}`);
  return q.name;
}

async function jobsIn(): Promise<number> {
  const stats = new QueueStats(client);
  try {
    let n = 0;
    for (const { queue } of [...stats.bullQueues, ...stats.shardQueues]) {
      const c = await queue.getJobCounts();
      n += Object.values(c).reduce((a, b) => a + b, 0);
    }
    return n;
  } finally {
    await stats.close();
  }
}

t.test('every answer refuses to be framed; authenticated answers are not stored', async (t) => {
  const served = await board();
  for (const path of ['', 'api/queues', 'tenants', 'tenants.json', 'no-such-page']) {
    const r = await ask(`${served.url}${path}`, { headers: { authorization: AUTH } });
    t.equal(r.headers['x-frame-options'], 'DENY', `${path || '/'}: X-Frame-Options`);
    t.match(String(r.headers['content-security-policy']), /frame-ancestors 'none'/, `${path || '/'}: frame-ancestors`);
    t.match(String(r.headers['cache-control']), /no-store/, `${path || '/'}: Cache-Control`);
  }
  const refused = await ask(served.url);
  t.equal(refused.status, 401);
  t.equal(refused.headers['x-frame-options'], 'DENY', 'the login challenge too');
});

t.test('a cross-site request cannot change a queue, with the browser\'s basic auth or without any', async (t) => {
  for (const auth of [true, false]) {
    const served = await board({ auth });
    const queue = await writableQueue(served.url);
    const before = await jobsIn();
    const headers = { ...(auth ? { authorization: AUTH } : {}), 'content-type': 'text/plain' };
    // What an HTML form on another site sends (no preflight): Origin and Sec-Fetch-Site say where from.
    const forms = [
      { ...headers, origin: 'https://evil.example' },
      { ...headers, 'sec-fetch-site': 'cross-site' },
      { ...headers, origin: 'null' },
    ];
    for (const h of forms) {
      const r = await ask(`${served.url}api/queues/${encodeURIComponent(queue)}/add`, { method: 'POST', headers: h, body: '{"name":"x","data":{}}' });
      t.equal(r.status, 403, `auth=${auth} ${JSON.stringify(h)}: ${r.status} ${r.text.slice(0, 80)}`);
    }
    t.equal(await jobsIn(), before, `auth=${auth}: no job added`);
    // The board's own page (same origin) still may.
    const same = await ask(`${served.url}api/queues/${encodeURIComponent(queue)}/pause`, { method: 'PUT', headers: { ...(auth ? { authorization: AUTH } : {}), origin: new URL(served.url).origin, 'sec-fetch-site': 'same-origin' } });
    t.equal(same.status, 200, `auth=${auth}: a same-origin change is allowed: ${same.text.slice(0, 80)}`);
    await ask(`${served.url}api/queues/${encodeURIComponent(queue)}/resume`, { method: 'PUT', headers: auth ? { authorization: AUTH } : {} });
  }
});

t.test('without auth the board answers only loopback and IP hosts (no DNS rebinding)', async (t) => {
  const served = await board({ auth: false });
  const port = new URL(served.url).port;
  for (const host of [`rebind.evil.example:${port}`, 'attacker.test', `127.0.0.1.nip.io:${port}`]) {
    const r = await ask(`${served.url}api/queues`, { headers: { host } });
    t.equal(r.status, 421, `Host ${host}: ${r.status}`);
    t.notOk(r.text.includes('"queues"'), 'no queue data');
  }
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `10.1.2.3:${port}`]) {
    t.equal((await ask(`${served.url}api/queues`, { headers: { host } })).status, 200, `Host ${host}`);
  }
  t.equal((await ask(`${served.url.replace(/\/$/, '')}/healthz`, { headers: { host: 'anything.example' } })).status, 200, 'probes answer any host');
});

t.test('guessing the password is cut off per address; a missing header is not a guess', async (t) => {
  const served = await board();
  for (let i = 0; i < 5; i++) t.equal((await ask(served.url)).status, 401, 'no header: 401, not counted');
  const wrong = `Basic ${Buffer.from(`${USER}:guess`).toString('base64')}`;
  const statuses: number[] = [];
  for (let i = 0; i < 35; i++) statuses.push((await ask(`${served.url}api/queues`, { headers: { authorization: wrong } })).status);
  t.same(statuses.slice(0, 30), Array(30).fill(401), 'thirty guesses are answered 401');
  t.same(statuses.slice(30), Array(5).fill(429), 'then 429');
  const r = await ask(`${served.url}api/queues`, { headers: { authorization: AUTH } });
  t.equal(r.status, 429, 'the address waits, whatever it sends');
  t.match(r.headers['retry-after'], /^[0-9]+$/);
});
