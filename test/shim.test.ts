/**
 * The pod shim as real child processes against s3rver: presigned state URLs, cold start →
 * messages → SIGTERM → state in S3 → a new shim elsewhere continues the memory; warm pool claim
 * (auth, conflict, readiness), periodic and forced checkpoints, crash of the agent, config errors,
 * and no presigned URL or token in the pod's output.
 */
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Database from 'better-sqlite3';
import { request } from 'undici';
import * as tar from 'tar';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { freePort } from '../lib/util/free-port.js';
import { startEmbeddedS3, type EmbeddedS3 } from '../lib/state/embedded-s3.js';
import { createS3Client } from '../lib/state/s3-client.js';
import { StateStore, legacyStateKey, type PresignedState } from '../lib/state/state-store.js';
import { uploadState } from '../agent/state-transfer.js';
import { SHIM_AUTH_HEADER, signShimCall } from '../lib/runtime/shim-auth.js';

const SHIM = fileURLToPath(new URL('../agent/shim.ts', import.meta.url));
const TOKEN = `123456789:${'AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw'}`;
const SECRET = randomBytes(24).toString('hex');

let s3: EmbeddedS3;
let client: S3Client;
let store: StateStore;
const scratch = mkdtempSync(path.join(tmpdir(), 'ztm-shim-'));
const shims: Shim[] = [];
/** Every presigned URL handed to a shim: none may show up in any shim's output. */
const handedOut: PresignedState[] = [];

t.before(async () => {
  s3 = await startEmbeddedS3({ port: await freePort() });
  client = createS3Client({ endpoint: s3.endpoint, region: 'us-east-1' });
  store = new StateStore({ s3: client, bucket: 'zeroclaw-tenant-state' });
  await store.ensureBucket();
});

t.teardown(async () => {
  for (const s of shims) s.kill();
  client?.destroy();
  await s3?.close();
  rmSync(scratch, { recursive: true, force: true });
});

interface Shim {
  port: number;
  agentPort: number;
  output: () => string;
  exited: Promise<number | null>;
  waitExit(ms?: number): Promise<number | null>;
  signal(sig: NodeJS.Signals): void;
  kill(): void;
}

/** The delivery bearer the reference agent checks (it is given only the SHA-256: AGENT_TOKEN_SHA256, or a claim's agent_token_sha256). */
const BEARER = 'shim-test-bearer-0123456789abcdefghijklmnop';
const BEARER_SHA256 = createHash('sha256').update(BEARER).digest('hex');

async function startShim(env: Record<string, string>): Promise<Shim> {
  const port = await freePort();
  const agentPort = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', SHIM], {
    env: { ...process.env, SHIM_HOST: '127.0.0.1', SHIM_PORT: String(port), AGENT_PORT: String(agentPort), LOG_LEVEL: 'debug', ...(env.WARM ? {} : { AGENT_TOKEN_SHA256: BEARER_SHA256 }), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const shim: Shim = {
    port,
    agentPort,
    output: () => out,
    exited,
    async waitExit(ms = 30_000) {
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());
      const result = await Promise.race([exited, timeout]);
      if (result === 'timeout') throw new Error(`shim did not exit within ${ms}ms:\n${out}`);
      return result;
    },
    signal(sig) {
      child.kill(sig);
    },
    kill() {
      // The agent runs in its own process group: take it down too.
      for (const m of out.matchAll(/"pid":(\d+)/g)) try { process.kill(-Number(m[1]), 'SIGKILL'); } catch { /* gone */ }
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
  shims.push(shim);
  return shim;
}

/** `auth`: the control secret the call is signed with (`x-shim-auth`); `header`: that header as given. */
async function http(port: number, p: string, init: { method?: string; body?: unknown; auth?: string; header?: string } = {}) {
  const method = init.method ?? (init.body === undefined ? 'GET' : 'POST');
  const body = init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
  const auth = init.header ?? (init.auth ? signShimCall(init.auth, method, p, body ?? '') : undefined);
  const res = await request(`http://127.0.0.1:${port}${p}`, {
    method: method as 'GET',
    body,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${BEARER}`, ...(auth ? { [SHIM_AUTH_HEADER]: auth } : {}) },
    headersTimeout: 90_000,
  });
  const text = await res.body.text();
  let json: Record<string, unknown> = {};
  try { json = JSON.parse(text) as Record<string, unknown>; } catch { /* not JSON */ }
  return { status: res.statusCode, json };
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const waitReady = (s: Shim) => until('shim ready', 30_000, async () => ((await http(s.port, '/readyz')).status === 200 ? true : undefined));
const say = async (s: Shim, message: string) => (await http(s.agentPort, '/webhook', { body: { message } })).json.response;

async function presign(tenant: string): Promise<PresignedState> {
  const urls = await store.presign(tenant, { expiresInS: 600 });
  handedOut.push(urls);
  return urls;
}

/** The tenant's saved state (the archive, downloaded with the presigned GET), unpacked into a fresh directory. */
async function stateInS3(tenant: string): Promise<string> {
  const res = await request((await presign(tenant)).getUrl);
  if (res.statusCode !== 200) throw new Error(`no state for ${tenant} (HTTP ${res.statusCode})`);
  const dir = mkdtempSync(path.join(scratch, `${tenant}-state-`));
  const file = `${dir}.tar.gz`;
  writeFileSync(file, Buffer.from(await res.body.arrayBuffer()));
  await tar.x({ file, cwd: dir });
  return dir;
}

/** Memories in the tenant's brain.db as stored in S3. */
async function memoriesInS3(tenant: string): Promise<number> {
  const db = new Database(path.join(await stateInS3(tenant), 'memory', 'brain.db'), { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM memories').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

function assertNoSecrets(t: Test, s: Shim): void {
  const out = s.output();
  t.notMatch(out, /X-Amz-Signature/i, 'no signed query in the output');
  for (const u of handedOut) {
    t.notOk(out.includes(new URL(u.putUrl).search) || out.includes(new URL(u.getUrl).search), 'no presigned URL in the output');
  }
  t.notOk(out.includes(TOKEN.split(':')[1] ?? '-'), 'no bot token in the output');
  t.notOk(out.includes(SECRET), 'no claim secret in the output');
}

t.test('presigned GET and POST form against s3rver, head, purge', async (t) => {
  await store.ensureBucket(); // idempotent
  const urls = await presign('carol');
  t.equal(new URL(urls.putUrl).searchParams.get('key'), 'tenants/carol/state.tar.gz', 'a form for exactly that key');
  t.match(new URL(urls.getUrl).pathname, /\/tenants\/carol\/state\.tar\.gz$/, 'a GET of that key');
  t.match(new URL(urls.legacyGetUrl ?? '').pathname, /\/tenants\/carol\/brain\.db$/, 'and a GET of the older single brain.db');
  t.ok(Date.parse(urls.expiresAt) > Date.now() + 590_000);
  t.equal((await request(urls.getUrl).then(async (r) => (await r.body.dump(), r.statusCode))), 404, 'no state yet');
  t.equal(await store.head('carol'), undefined);
  const payload = randomBytes(6 * 1024 * 1024 + 3);
  const staged = path.join(scratch, 'carol-upload');
  writeFileSync(staged, payload);
  await uploadState(urls.putUrl, staged);
  t.pass('POST multi-MB');
  const got = Buffer.from(await (await request(urls.getUrl)).body.arrayBuffer());
  t.ok(got.equals(payload), 'byte-identical round trip');
  t.match(await store.head('carol'), { key: 'tenants/carol/state.tar.gz', bytes: payload.length });
  const other = await presign('car');
  await uploadState(other.putUrl, staged);
  t.equal(await store.purge('carol'), 1, 'purge deletes the tenant prefix only');
  t.equal(await store.head('carol'), undefined);
  t.ok(await store.head('car'), "a tenant whose id is a prefix keeps its state");
  await t.rejects(store.presign('Not_Valid'), { code: 'E_VALIDATION' });
  await t.rejects(store.presign('carol', { expiresInS: 0 }), { code: 'E_VALIDATION' });
  t.throws(() => new StateStore({ s3: client, bucket: 'X' }), { code: 'E_VALIDATION' });
});

t.test('cold start, stop, state in S3, a new shim continues the memory', async (t) => {
  const urls = await presign('alice');
  const ws1 = path.join(scratch, 'alice-1');
  const a = await startShim({ TENANT_ID: 'alice', BOT_TOKEN: TOKEN, STATE_GET_URL: urls.getUrl, STATE_PUT_URL: urls.putUrl, WORKSPACE: ws1 });
  await waitReady(a);
  t.equal(await say(a, 'one'), 'You said: one (memories: 1)');
  t.equal(await say(a, 'two'), 'You said: two (memories: 2)');
  t.equal(await say(a, 'three'), 'You said: three (memories: 3)');
  t.equal((await http(a.port, '/healthz')).status, 200);
  t.match(await http(a.port, '/checkpoint', { body: {}, auth: SECRET }), { status: 403 }, 'no control secret configured: control calls are refused, not open');
  a.signal('SIGTERM');
  t.equal(await a.waitExit(), 0, 'SIGTERM: exit 0');
  t.match(a.output(), /"msg":"checkpoint saved"/);
  t.match(a.output(), /"reason":"shutdown"[^\n]*checkpoint saved|checkpoint saved[^\n]*"reason":"shutdown"/);
  t.match(a.output(), /"tenant_id":"alice"/, 'lines carry the tenant id');
  t.ok(await store.head('alice'), 'the state is in S3');
  t.equal(await memoriesInS3('alice'), 3);
  assertNoSecrets(t, a);

  // Elsewhere (new workspace, with a stale WAL lying around): the memory continues.
  const ws2 = path.join(scratch, 'alice-2');
  mkdirSync(path.join(ws2, 'memory'), { recursive: true });
  writeFileSync(path.join(ws2, 'memory', 'brain.db-wal'), randomBytes(4096));
  const urls2 = await presign('alice');
  const b = await startShim({ TENANT_ID: 'alice', STATE_GET_URL: urls2.getUrl, STATE_PUT_URL: urls2.putUrl, WORKSPACE: ws2 });
  await waitReady(b);
  t.match(b.output(), /"msg":"state restored"/);
  t.equal(await say(b, 'four'), 'You said: four (memories: 4)', 'memory count continues');
  b.kill();
  assertNoSecrets(t, b);
});

t.test('warm pool member: claim auth, readiness, conflict, periodic and forced checkpoints', async (t) => {
  const warmTmp = path.join(scratch, 'bob-tmp');
  mkdirSync(warmTmp);
  const w = await startShim({ WARM: '1', WARM_POOL_SECRET: SECRET, CHECKPOINT_INTERVAL_S: '1', WORKSPACE: path.join(scratch, 'bob'), TMPDIR: warmTmp });
  const health = await until('shim up', 30_000, async () => {
    const h = await http(w.port, '/healthz');
    return h.status === 200 ? h : undefined;
  });
  t.match(health.json, { status: 'ok', phase: 'warm' });
  // The claim's first-time costs are paid while the member waits (agent/shim-prewarm.ts).
  await until('warm-up', 30_000, async () => (/"msg":"warm-up done"/.test(w.output()) ? true : undefined));
  t.notMatch(w.output(), /warm-up incomplete/, 'the warm-up went through');
  t.same(readdirSync(warmTmp).filter((n) => n.startsWith('ztm-shim-warm-up-')), [], "the warm-up's made-up restore left nothing in its temporary directory");
  // An unclaimed member's workspace stays without the scratch dir a claim makes: the local runtime
  // tells claimed leftovers (state maybe not in S3, kept) from unclaimed ones (removed) by it.
  t.notOk(existsSync(path.join(scratch, 'bob', '.shim')), 'nor touched the workspace');
  t.same(await http(w.port, '/readyz'), { status: 503, json: { ready: false, phase: 'warm' } }, 'not ready before a claim');
  t.equal((await http(w.port, '/checkpoint', { body: {}, auth: SECRET })).status, 409, 'nothing to checkpoint yet');
  t.equal((await http(w.port, '/state-urls', { body: { state_put_url: 'http://x/y' }, auth: SECRET })).status, 409);

  const urls = await presign('bob');
  const claim = { tenant_id: 'bob', bot_token: TOKEN, state_get_url: urls.getUrl, state_put_url: urls.putUrl, agent_token_sha256: BEARER_SHA256 };
  t.equal((await http(w.port, '/claim', { body: claim })).status, 401, 'not signed');
  t.equal((await http(w.port, '/claim', { body: claim, auth: `${SECRET}x` })).status, 401, 'signed with another secret');
  t.equal((await http(w.port, '/claim', { body: claim, header: `Bearer ${SECRET}` })).status, 401, 'the secret itself as a bearer is no signature');
  const stale = signShimCall(SECRET, 'POST', '/claim', JSON.stringify(claim), Date.now() - 5 * 60_000);
  t.match(await http(w.port, '/claim', { body: claim, header: stale }), { status: 401, json: { reason: 'expired' } }, 'an old signed call');
  const forOther = signShimCall(SECRET, 'POST', '/claim', JSON.stringify({ ...claim, tenant_id: 'mallory' }));
  t.match(await http(w.port, '/claim', { body: claim, header: forOther }), { status: 401, json: { reason: 'bad-signature' } }, 'a signature of another body');
  t.equal((await http(w.port, '/claim', { body: { ...claim, tenant_id: 'Bad!' }, auth: SECRET })).status, 400, 'invalid tenant id');
  t.equal((await http(w.port, '/claim', { body: 'not json', auth: SECRET })).status, 400);
  t.equal((await http(w.port, '/readyz')).status, 503);

  t.match(await http(w.port, '/claim', { body: { ...claim, state_put_url: (await presign('mallory')).putUrl }, auth: SECRET }), { status: 400, json: { error: /own state object/ } }, 'a claim with another tenant\'s state URL is refused');
  const ok = await http(w.port, '/claim', { body: claim, auth: SECRET });
  t.same(ok, { status: 200, json: { status: 'ready', tenant_id: 'bob' } }, 'claim answers once the agent is ready');
  t.equal((await http(w.port, '/readyz')).status, 200, 'ready right after the claim');
  t.equal((await http(w.port, '/claim', { body: claim, auth: SECRET })).status, 409, 'second claim');
  t.equal(await say(w, 'hi'), 'You said: hi (memories: 1)');

  await until('periodic checkpoint in S3', 15_000, async () => (await store.head('bob')) ?? undefined);
  // The shim logs the save after S3 has answered the PUT, so the object can be seen a moment before the line.
  const saved = await until('periodic checkpoint logged', 5_000, async () => (/"reason":"periodic"[^\n]*"msg":"checkpoint saved"/.test(w.output()) ? true : undefined)).catch(() => false);
  t.ok(saved, 'periodic checkpoint uploaded without a stop');
  t.equal(await memoriesInS3('bob'), 1);

  t.equal((await http(w.port, '/checkpoint', { body: {} })).status, 401, 'checkpoint needs the secret');
  await say(w, 'again');
  const once = signShimCall(SECRET, 'POST', '/checkpoint', '{}');
  t.equal((await http(w.port, '/checkpoint', { body: {}, header: once })).status, 200);
  t.match(await http(w.port, '/checkpoint', { body: {}, header: once }), { status: 401, json: { reason: 'replayed' } }, 'a signed call cannot be replayed');
  const forced = await http(w.port, '/checkpoint', { body: {}, auth: SECRET });
  t.equal(forced.status, 200);
  t.match(forced.json, { uploaded: Boolean, bytes: Number, sha256: /^[0-9a-f]{64}$/ });
  const repeat = await http(w.port, '/checkpoint', { body: {}, auth: SECRET });
  t.same(repeat.json, { ...forced.json, uploaded: false }, 'unchanged: no second upload');
  t.equal(await memoriesInS3('bob'), 2, 'forced checkpoint holds the latest message');

  const fresh = await presign('bob');
  t.equal((await http(w.port, '/state-urls', { body: { state_put_url: fresh.putUrl } })).status, 401);
  t.equal((await http(w.port, '/state-urls', { body: { state_put_url: 'ftp://x' }, auth: SECRET })).status, 400);
  t.equal((await http(w.port, '/state-urls', { body: {}, auth: SECRET })).status, 400);
  // Whoever holds the control secret still cannot send the checkpoints anywhere but bob's own object.
  const collector = `http://127.0.0.1:9/tenants/bob/state.tar.gz?X-Amz-Signature=${'a'.repeat(64)}`;
  t.match(await http(w.port, '/state-urls', { body: { state_put_url: collector }, auth: SECRET }), { status: 400, json: { error: /same object as the URL this shim was started with/ } }, 'not to a collector');
  t.match(await http(w.port, '/state-urls', { body: { state_put_url: (await presign('carol')).putUrl }, auth: SECRET }), { status: 400, json: { error: /this tenant's own state object/ } }, 'not to another tenant\'s key');
  t.equal((await http(w.port, '/state-urls', { body: { state_get_url: fresh.getUrl, state_put_url: fresh.putUrl }, auth: SECRET })).status, 200);
  t.equal((await http(w.port, '/nope')).status, 404);

  // Consistent copies while the agent writes (WAL mode): each one opens as a valid database.
  const burst = Array.from({ length: 40 }, (_, i) => say(w, `burst ${i}`));
  const during = await Promise.all([1, 2, 3].map(() => http(w.port, '/checkpoint', { body: {}, auth: SECRET })));
  await Promise.all(burst);
  t.ok(during.every((r) => r.status === 200), 'checkpoints while the agent writes');
  const mid = await memoriesInS3('bob');
  t.ok(mid >= 2 && mid <= 42, `a consistent snapshot (${mid} memories)`);

  await say(w, 'last');
  w.signal('SIGTERM');
  t.equal(await w.waitExit(), 0);
  t.equal(await memoriesInS3('bob'), 43, 'final checkpoint (through the replaced URL) holds everything');
  assertNoSecrets(t, w);
});

t.test('the agent gets its tenant env and none of the shim secrets; one of two racing claims wins', async (t) => {
  // A stand-in agent that reports its environment on /webhook.
  const fixture = path.join(scratch, 'env-agent.mjs');
  writeFileSync(fixture, `
    import http from 'node:http';
    http.createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(req.url === '/health' ? '{"status":"ok"}' : JSON.stringify({ response: process.env, cwd: process.cwd() }));
    }).listen(Number(process.env.PORT), '127.0.0.1');
    process.on('SIGTERM', () => process.exit(0));
  `);
  const ws = path.join(scratch, 'erin');
  const w = await startShim({
    WARM: '1', WARM_POOL_SECRET: SECRET, WORKSPACE: ws, AGENT_COMMAND: `exec "${process.execPath}" "${fixture}"`,
    STATE_GET_URL: 'http://leak.invalid/x?X-Amz-Signature=nope', BOT_TOKEN: TOKEN, AWS_SECRET_ACCESS_KEY: 'nope',
  });
  await until('shim up', 30_000, async () => ((await http(w.port, '/healthz')).status === 200 ? true : undefined));
  for (const env of [{ NODE_OPTIONS: '--require /tmp/evil.js' }, { LD_PRELOAD: '/tmp/evil.so' }, { PORT: '1' }, { PATH: '/tmp' }, { TENANT_ID: 'mallory' }]) {
    t.match(await http(w.port, '/claim', { body: { tenant_id: 'erin', env }, auth: SECRET }), { status: 400, json: { error: /may not be set by a claim/ } }, `a claim cannot set ${Object.keys(env)[0]}`);
  }
  const claim = { tenant_id: 'erin', bot_token: TOKEN, env: { TENANT_PLAN: 'yes', TZ: 'Europe/Paris' } };
  const results = await Promise.all([1, 2].map(() => http(w.port, '/claim', { body: claim, auth: SECRET })));
  t.same(results.map((r) => r.status).sort(), [200, 409], 'exactly one claim binds');
  const env = (await http(w.agentPort, '/webhook', { body: { message: 'env?' } })).json.response as Record<string, string>;
  t.match(env, { TENANT_ID: 'erin', PORT: String(w.agentPort), WORKSPACE: ws, TENANT_PLAN: 'yes', TZ: 'Europe/Paris', HOST: '127.0.0.1' });
  for (const k of ['WARM_POOL_SECRET', 'STATE_GET_URL', 'STATE_PUT_URL', 'BOT_TOKEN', 'AWS_SECRET_ACCESS_KEY']) t.notOk(k in env, `agent has no ${k}`);
  t.notOk('TELEGRAM_BOT_TOKEN' in env, 'a zeroclaw-protocol agent never needs the bot token: it does not get it');
  t.match(w.output(), /no STATE_PUT_URL: state is kept only in the local workspace/);
  w.signal('SIGTERM');
  t.equal(await w.waitExit(), 0);
});

t.test('an agent crash: what is on disk is checkpointed, the shim exits non-zero', async (t) => {
  const urls = await presign('dave');
  const d = await startShim({ TENANT_ID: 'dave', STATE_GET_URL: urls.getUrl, STATE_PUT_URL: urls.putUrl, CHECKPOINT_INTERVAL_S: '0', WORKSPACE: path.join(scratch, 'dave') });
  await waitReady(d);
  await say(d, 'one');
  await say(d, 'two');
  const agentPid = Number(/"pid":(\d+)[^\n]*"msg":"agent started"/.exec(d.output())?.[1]);
  t.ok(agentPid > 0, 'agent pid from the shim log');
  process.kill(agentPid, 'SIGKILL');
  t.equal(await d.waitExit(), 1, 'non-zero exit');
  t.match(d.output(), /"msg":"agent exited unexpectedly"/);
  t.equal(await memoriesInS3('dave'), 2, 'messages acknowledged before the crash are in S3');
});

t.test('failures to start: bad config exits 2, an agent that dies before ready exits non-zero', async (t) => {
  const noSecret = await startShim({ WARM: '1', WORKSPACE: path.join(scratch, 'x') });
  t.equal(await noSecret.waitExit(), 2);
  t.match(noSecret.output(), /WARM_POOL_SECRET: required when WARM=1/);
  t.equal(noSecret.output().trim().split('\n').length, 1, 'one line');

  const badPrewarm = await startShim({ WARM: '1', WARM_POOL_SECRET: SECRET, SHIM_PREWARM: 'yes', WORKSPACE: path.join(scratch, 'x') });
  t.equal(await badPrewarm.waitExit(), 2);
  t.match(badPrewarm.output(), /SHIM_PREWARM/);

  const badTenant = await startShim({ TENANT_ID: 'Nope!', WORKSPACE: path.join(scratch, 'x') });
  t.equal(await badTenant.waitExit(), 2);
  t.match(badTenant.output(), /TENANT_ID: must be lowercase/);

  const otherTenant = await startShim({ TENANT_ID: 'frank', STATE_PUT_URL: (await presign('gina')).putUrl, WORKSPACE: path.join(scratch, 'frank-x') });
  t.equal(await otherTenant.waitExit(), 2, 'a cold pod given another tenant\'s state URL does not start');
  t.match(otherTenant.output(), /own state object/);
  t.notMatch(otherTenant.output(), /X-Amz-Signature=/);

  const badUrl = await startShim({ TENANT_ID: 'frank', STATE_GET_URL: 'ftp://secret-place?X-Amz-Signature=abc', WORKSPACE: path.join(scratch, 'x') });
  t.equal(await badUrl.waitExit(), 2);
  t.notMatch(badUrl.output(), /secret-place|X-Amz/, 'a bad URL is not echoed');

  const dies = await startShim({ TENANT_ID: 'frank', AGENT_COMMAND: 'echo agent-boom >&2; exit 3', WORKSPACE: path.join(scratch, 'frank') });
  t.not(await dies.waitExit(), 0);
  t.match(dies.output(), /agent-boom/, "the agent's output is in the pod's log");
  t.match(dies.output(), /agent exited before ready \(code 3/);

  // Something already answers on the agent's port: the shim must not take it for its agent.
  const squatter = createServer((_req, res) => res.end('not your agent'));
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
  t.teardown(() => squatter.close());
  const squatted = await startShim({ TENANT_ID: 'frank', AGENT_PORT: String((squatter.address() as AddressInfo).port), WORKSPACE: path.join(scratch, 'frank2') });
  t.not(await squatted.waitExit(), 0, 'the shim gives up');
  t.match(squatted.output(), /agent port 127\.0\.0\.1:\d+ is already taken by another process/);
  t.notMatch(squatted.output(), /"msg":"agent ready"/, 'never reported ready');
});

t.test('a tenant saved in the older single-brain.db form still restores, and is saved whole from then on', async (t) => {
  const old = path.join(scratch, 'legacy.db');
  const db = new Database(old);
  db.exec("CREATE TABLE memories (id INTEGER PRIMARY KEY, text TEXT, at TEXT); INSERT INTO memories (text, at) VALUES ('a', 'x'), ('b', 'y');");
  db.close();
  await client.send(new PutObjectCommand({ Bucket: 'zeroclaw-tenant-state', Key: legacyStateKey('gina'), Body: readFileSync(old) }));
  const urls = await presign('gina');
  const g = await startShim({ TENANT_ID: 'gina', STATE_GET_URL: urls.getUrl, STATE_PUT_URL: urls.putUrl, STATE_LEGACY_GET_URL: urls.legacyGetUrl ?? '', WORKSPACE: path.join(scratch, 'gina') });
  await waitReady(g);
  t.match(g.output(), /"from":"legacy brain.db"[^\n]*state restored \(older single brain.db form\)/);
  t.equal(await say(g, 'three'), 'You said: three (memories: 3)', 'the old memories are there');
  g.signal('SIGTERM');
  t.equal(await g.waitExit(), 0);
  t.equal(await memoriesInS3('gina'), 3, 'saved as a whole-state archive');
  assertNoSecrets(t, g);
});

t.test('a custom agent\'s whole state: every declared path, links left out, a size bound with a clear error', async (t) => {
  const agent = fileURLToPath(new URL('../agent/reference-agent.ts', import.meta.url));
  // The agent's cwd is its workspace: tsx by absolute URL.
  const command = `exec "${process.execPath}" --import "${import.meta.resolve('tsx')}" "${agent}"`;
  const urls = await presign('hank');
  const ws1 = path.join(scratch, 'hank-1');
  const env = { TENANT_ID: 'hank', AGENT_PROFILE: 'custom', AGENT_COMMAND: command, AGENT_STATE_PATHS: 'memory/brain.db,notes/,profile.json', STATE_GET_URL: urls.getUrl, STATE_PUT_URL: urls.putUrl, CHECKPOINT_INTERVAL_S: '0', STATE_MAX_BYTES: String(1024 * 1024) };
  const a = await startShim({ ...env, WORKSPACE: ws1, WARM_POOL_SECRET: SECRET });
  await waitReady(a);
  await say(a, 'one');
  mkdirSync(path.join(ws1, 'notes', 'deep'), { recursive: true });
  writeFileSync(path.join(ws1, 'notes', 'deep', 'todo.md'), '- remember the milk\n');
  writeFileSync(path.join(ws1, 'profile.json'), '{"name":"hank"}');
  writeFileSync(path.join(ws1, 'not-state.txt'), 'left behind');
  symlinkSync('/etc/passwd', path.join(ws1, 'notes', 'passwd'));
  const ok = await http(a.port, '/checkpoint', { body: {}, auth: SECRET });
  t.equal(ok.status, 200);
  t.match(a.output(), /links and special files left out/);

  writeFileSync(path.join(ws1, 'notes', 'big.bin'), randomBytes(2 * 1024 * 1024));
  const tooBig = await http(a.port, '/checkpoint', { body: {}, auth: SECRET });
  t.equal(tooBig.status, 502, 'a state above STATE_MAX_BYTES fails the checkpoint');
  t.match(String(tooBig.json.error), /above the .*bound/i);
  rmSync(path.join(ws1, 'notes', 'big.bin'));
  a.signal('SIGTERM');
  t.equal(await a.waitExit(), 0);

  const saved = await stateInS3('hank');
  t.equal(readFileSync(path.join(saved, 'notes', 'deep', 'todo.md'), 'utf8'), '- remember the milk\n');
  t.equal(readFileSync(path.join(saved, 'profile.json'), 'utf8'), '{"name":"hank"}');
  t.notOk(existsSync(path.join(saved, 'not-state.txt')), 'only the declared paths');
  t.notOk(existsSync(path.join(saved, 'notes', 'passwd')), 'a symlink is never followed nor saved');

  const ws2 = path.join(scratch, 'hank-2');
  const b = await startShim({ ...env, WORKSPACE: ws2 });
  await waitReady(b);
  t.equal(await say(b, 'two'), 'You said: two (memories: 2)');
  t.equal(readFileSync(path.join(ws2, 'notes', 'deep', 'todo.md'), 'utf8'), '- remember the milk\n', 'restored before the start');
  b.kill();
});

t.test('a claim that names the incarnation binds the shim to that incarnation\'s object only', async (t) => {
  const w = await startShim({ WARM: '1', WARM_POOL_SECRET: SECRET, CHECKPOINT_INTERVAL_S: '0', WORKSPACE: path.join(scratch, 'ivy') });
  await until('shim up', 30_000, async () => ((await http(w.port, '/healthz')).status === 200 ? true : undefined));
  const now = { tenant_id: 'ivy', incarnation: 'ivy-second-incarnation-0' };
  const before = { tenant_id: 'ivy', incarnation: 'ivy-first-incarnation-00' };
  const mine = await store.presign(now, { expiresInS: 600 });
  const old = await store.presign(before, { expiresInS: 600 });
  const idOnly = await presign('ivy');
  handedOut.push(mine, old);
  t.notOk(mine.legacyGetUrl, 'no legacy brain.db GET for a record with an incarnation');
  const claim = { tenant_id: 'ivy', incarnation: now.incarnation, bot_token: TOKEN, state_get_url: mine.getUrl, state_put_url: mine.putUrl, agent_token_sha256: BEARER_SHA256 };
  t.match(await http(w.port, '/claim', { body: { ...claim, state_get_url: old.getUrl }, auth: SECRET }), { status: 400, json: { error: /own state object \(tenants\/ivy\/ivy-second-incarnation-0\/state\.tar\.gz\)/ } }, 'an earlier incarnation\'s GET is refused');
  t.match(await http(w.port, '/claim', { body: { ...claim, state_put_url: idOnly.putUrl }, auth: SECRET }), { status: 400 }, 'the id-only key (a record from before incarnations) too');
  t.match(await http(w.port, '/claim', { body: { ...claim, state_legacy_get_url: idOnly.legacyGetUrl }, auth: SECRET }), { status: 400 }, 'and the legacy brain.db');
  t.equal((await http(w.port, '/claim', { body: claim, auth: SECRET })).status, 200, 'its own incarnation\'s URLs bind');
  t.match(await http(w.port, '/state-urls', { body: { state_get_url: old.getUrl, state_put_url: old.putUrl }, auth: SECRET }), { status: 400, json: { error: /own state object/ } }, 'a refresh with the old incarnation\'s URLs is refused');
  await say(w, 'hello');
  t.equal((await http(w.port, '/checkpoint', { body: {}, auth: SECRET })).status, 200);
  t.match(await store.head(now), { key: 'tenants/ivy/ivy-second-incarnation-0/state.tar.gz' });
  t.equal(await store.head(before), undefined, 'nothing written to the old incarnation\'s key');
  w.signal('SIGTERM');
  t.equal(await w.waitExit(), 0);
  assertNoSecrets(t, w);
});
