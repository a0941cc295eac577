/**
 * The ZeroClaw emulator as a real child process through its `zeroclaw` wrapper, behind the stub
 * LLM, on the config agent/zeroclaw/config.ts renders: every upstream behaviour the platform
 * depends on (statuses and bodies, pairing, idempotency lost on restart, needs_quickstart, the
 * install dir, env overrides, brain.db, readiness, SIGTERM under `gateway` and `daemon`).
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { parse } from 'smol-toml';
import { request } from 'undici';
import { freePort } from '../lib/util/free-port.js';
import {
  newZeroclawProbeToken, renderZeroclawConfig, zeroclawEnv, zeroclawReadinessProbe, zeroclawTokenSha256, type ZeroclawConfigOptions,
} from '../agent/zeroclaw/config.js';
import { startLlmStub, type LlmStub } from './support/llm-stub.js';
import { waitUntil } from './support/wait.js';
import { zeroclawEmulatorBin } from './support/zeroclaw-bin.js';
import { classify } from '../services/forwarder/agent-client.js';

const BIN = zeroclawEmulatorBin();
const root = mkdtempSync(path.join(tmpdir(), 'ztm-zeroclaw-emu-'));
const live: ChildProcess[] = [];
const stubs: LlmStub[] = [];
t.teardown(async () => {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(stubs.map((s) => s.close()));
  rmSync(root, { recursive: true, force: true });
});

let seq = 0;
const freshDir = (name: string): string => mkdtempSync(path.join(root, `${name}-${++seq}-`));

async function stub(delayMs = 0): Promise<LlmStub> {
  const s = await startLlmStub({ delayMs });
  stubs.push(s);
  return s;
}

interface Emulator {
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

/** Starts `zeroclaw <args>` with a cwd unrelated to the install dir and waits for /health (or its exit). */
async function start(args: string[], env: Record<string, string>, port: number, opts: { expectExit?: boolean } = {}): Promise<Emulator> {
  const cwd = freshDir('cwd');
  const child = spawn(BIN, args, { cwd, env: { PATH: process.env.PATH ?? '', HOME: freshDir('home'), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.push(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      if (opts.expectExit) return { child, port, output: () => out, exited };
      throw new Error(`emulator exited early: ${out}`);
    }
    if (Date.now() > deadline) throw new Error(`emulator not up in 30 s: ${out}`);
    const ok = await request(`http://127.0.0.1:${port}/health`).then(async (r) => (await r.body.dump(), r.statusCode === 200), () => false);
    if (ok) {
      if (opts.expectExit) throw new Error(`emulator listened although it should have refused to start: ${out}`);
      return { child, port, output: () => out, exited };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An install dir holding the rendered config, and the env the profile gives ZeroClaw. */
async function install(o: Partial<ZeroclawConfigOptions> & { llm: ZeroclawConfigOptions['llm'] }, apiKey?: string) {
  const dir = freshDir('install');
  const port = await freePort();
  const probe = newZeroclawProbeToken();
  const bearer = 'forwarder-bearer-for-tests';
  writeFileSync(path.join(dir, 'config.toml'), renderZeroclawConfig({ host: '127.0.0.1', port, pairedTokenSha256: zeroclawTokenSha256(bearer), probeTokenSha256: probe.sha256, ...o }), { mode: 0o600 });
  return { dir, port, bearer, probe: probe.token, env: { ZEROCLAW_CONFIG_DIR: dir, ...zeroclawEnv(apiKey === undefined ? {} : { apiKey }) } };
}

interface Reply { status: number; text: string; json: Record<string, unknown>; headers: Record<string, string | string[] | undefined> }

async function call(port: number, method: 'GET' | 'POST', p: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Reply> {
  const res = await request(`http://127.0.0.1:${port}${p}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.body.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON (413, 408): the text is asserted instead
  }
  return { status: res.statusCode, text, json, headers: res.headers };
}

const say = (port: number, message: string, headers: Record<string, string> = {}) =>
  call(port, 'POST', '/webhook', { 'content-type': 'application/json', ...headers }, JSON.stringify({ message }));

async function ready(port: number, token: string): Promise<boolean> {
  const p = zeroclawReadinessProbe;
  const r = await call(port, p.method, p.path, { authorization: `Bearer ${token}` });
  return p.readyWhen(r.status, r.text);
}

async function stop(e: Emulator, signal: NodeJS.Signals = 'SIGTERM') {
  const sent = Date.now();
  e.child.kill(signal);
  const r = await e.exited;
  return { ...r, ms: r.at - sent };
}

function memories(dir: string): number {
  const db = new Database(path.join(dir, 'data', 'memory', 'brain.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM memories').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

const journalMode = (file: string): unknown => {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.pragma('journal_mode', { simple: true });
  } finally {
    db.close();
  }
};

t.test('the rendered v3 config: answers, readiness, memory in brain.db, duplicates, errors', async (t) => {
  const llm = await stub();
  const i = await install({ llm: { baseUrl: `${llm.url}/`, model: 'stub-model' } }, 'sk-test-key');
  const auth = { authorization: `Bearer ${i.bearer}` };
  const zc = await start(['daemon'], i.env, i.port);

  const health = await call(i.port, 'GET', '/health');
  t.match(health.json, { status: 'ok', paired: true, require_pairing: true, runtime: { pid: Number } });
  t.ok(await ready(i.port, i.probe), 'readiness: the probe bearer sees a model');
  t.notOk(await ready(i.port, 'not-a-paired-token'), 'readiness needs a paired bearer (401 otherwise)');
  t.equal((await call(i.port, 'GET', '/pair/code')).json.pairing_code, null, 'tokens configured: no pairing code');

  const first = await say(i.port, 'hello zeroclaw', { ...auth, 'x-idempotency-key': 'tenant-a:1' });
  t.equal(first.status, 200);
  t.match(first.json, { response: /^stub reply: user turns 1; last: ".*hello zeroclaw"$/, model: 'stub-model' });
  t.equal(first.headers['x-content-type-options'], 'nosniff', 'security headers on every answer');
  const sent = llm.requests.at(-1);
  t.equal(sent?.path, '/v1/chat/completions', 'uri + /chat/completions (trailing slash trimmed)');
  t.equal(sent?.authorization, true, 'the key from ZEROCLAW_providers__models__custom__platform__api_key is sent');
  const messages = (sent?.body as { messages: Array<{ role: string; content: string }>; stream: boolean }).messages;
  t.same(messages.map((m) => m.role), ['system', 'user'], 'each turn: the system prompt and the message, no history');
  t.match(messages[1]?.content, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d\] hello zeroclaw$/);
  t.equal(memories(i.dir), 1, 'the turn is stored in <install>/data/memory/brain.db');

  const before = llm.requests.length;
  const dup = await say(i.port, 'hello zeroclaw', { ...auth, 'x-idempotency-key': 'tenant-a:1' });
  t.same([dup.status, dup.json], [200, { status: 'duplicate', idempotent: true, message: 'Request already processed for this idempotency key' }]);
  t.notOk('response' in dup.json, 'a duplicate has no response');
  t.equal(llm.requests.length, before, 'no LLM call for a duplicate');
  t.equal(memories(i.dir), 1, 'nor a memory');

  t.equal((await say(i.port, 'second turn', auth)).status, 200);
  t.equal(memories(i.dir), 2, 'memory count grows with each turn');

  // A durable fact of the agent (as its memory_store tool would write it) is recalled into the turn.
  const db = new Database(path.join(i.dir, 'data', 'memory', 'brain.db'));
  db.prepare("INSERT OR IGNORE INTO agents (id, alias, created_at) VALUES ('agent-main', 'main', datetime('now'))").run();
  const mainId = (db.prepare("SELECT id FROM agents WHERE alias = 'main'").get() as { id: string }).id;
  db.prepare("INSERT INTO memories (id, key, content, category, created_at, updated_at, agent_id) VALUES ('m1', 'favourite_colour', 'the user likes teal', 'core', datetime('now'), datetime('now'), ?)").run(mainId);
  db.close();
  t.equal((await say(i.port, 'which colour teal do I like?', auth)).status, 200);
  const recalled = (llm.requests.at(-1)?.body as { messages: Array<{ content: string }> }).messages[1]?.content ?? '';
  t.match(recalled, /^\[Memory context\]\n- favourite_colour: the user likes teal\n\[\/Memory context\]\n\n\[.*\] which colour teal do I like\?$/, 'recalled memory is prepended to the message');
  t.notMatch(recalled, /hello zeroclaw/, 'the raw conversation rows are not re-injected');

  t.same((await call(i.port, 'POST', '/webhook', { ...auth, 'content-type': 'application/json' }, 'not json')).json, { error: 'Invalid JSON body. Expected: {"message": "..."}' }, '400 bad JSON');
  t.equal((await call(i.port, 'POST', '/webhook', auth, JSON.stringify({ message: 'x' }))).status, 400, '400 without content-type application/json');
  t.equal((await call(i.port, 'POST', '/webhook', { ...auth, 'content-type': 'application/json' }, '{"message": 42}')).status, 400, '400 message not a string');
  t.equal((await say(i.port, 'x', { ...auth, 'x-idempotency-key': 'tenant-a:9' })).status, 200);
  const unknownAgent = await call(i.port, 'POST', '/webhook?agent=nobody', { ...auth, 'content-type': 'application/json' }, '{"message":"x"}');
  t.equal(unknownAgent.status, 400, '400 unknown ?agent=');
  const unauthorized = await say(i.port, 'x', { authorization: 'Bearer wrong' });
  t.same(unauthorized.json, { error: 'Unauthorized — pair first via POST /pair, then send Authorization: Bearer <token>' }, '401 wrong bearer');
  t.equal(unauthorized.status, 401);
  // What the forwarder makes of that answer: the agent there is not this tenant's (its pairing differs).
  t.match(classify(unauthorized.status, {}, JSON.stringify(unauthorized.json), 'zeroclaw'), { kind: 'stale-endpoint', status: 401 }, 'a wrong bearer is a stale endpoint to the forwarder');
  t.equal((await say(i.port, 'x', { authorization: i.bearer })).status, 401, 'the Bearer prefix is required');
  const big = await call(i.port, 'POST', '/webhook', { 'content-type': 'application/json' }, JSON.stringify({ message: 'a'.repeat(65_536) }));
  t.same([big.status, big.text], [413, 'length limit exceeded'], '413 above 64 KiB, before auth');

  for (const f of ['data/sessions/sessions.db', 'data/devices.db']) t.equal(journalMode(path.join(i.dir, f)), 'wal', `${f} in WAL mode`);
  for (const f of ['data/cron/jobs.db', '.secret_key', 'data/state/costs.jsonl', 'agents/main/workspace/IDENTITY.md', 'agents/main/workspace/SOUL.md', 'shared']) {
    t.ok(existsSync(path.join(i.dir, f)), `${f} exists`);
  }
  t.notMatch(readFileSync(path.join(i.dir, 'config.toml'), 'utf8'), /sk-test-key/, 'the env key never lands in config.toml');

  const stopped = await stop(zc);
  t.equal(stopped.code, 0, 'daemon: SIGTERM → exit 0');
  t.equal(journalMode(path.join(i.dir, 'data', 'memory', 'brain.db')), 'wal', 'brain.db is in WAL mode');

  const again = await start(['daemon'], i.env, i.port);
  const replay = await say(i.port, 'hello zeroclaw', { ...auth, 'x-idempotency-key': 'tenant-a:1' });
  t.equal(replay.status, 200);
  t.type(replay.json.response, 'string', 'idempotency keys are lost on restart: answered again');
  t.equal(memories(i.dir), 6, 'brain.db kept every turn across the restart (5 + this one)');
  await stop(again);
});

t.test('no model (no AGENT_LLM_*) and a V1 config: 503 needs_quickstart, readiness false', async (t) => {
  const i = await install({ llm: undefined });
  const zc = await start(['daemon'], i.env, i.port);
  const auth = { authorization: `Bearer ${i.bearer}` };
  t.equal((await call(i.port, 'GET', '/health')).status, 200, '/health is 200 without a model: liveness only');
  t.notOk(await ready(i.port, i.probe), 'readiness says no');
  const r = await say(i.port, 'anyone there?', { ...auth, 'x-idempotency-key': 'k1' });
  t.same([r.status, r.json], [503, { error: 'needs_quickstart', url: '/quickstart' }]);
  t.equal(memories(i.dir), 1, 'the message was stored before the refusal');
  const retry = await say(i.port, 'anyone there?', { ...auth, 'x-idempotency-key': 'k1' });
  t.same([retry.status, retry.json.status], [200, 'duplicate'], 'the key was spent on the 503: a retry is a duplicate');
  await stop(zc);

  // The project's former config.toml: V1 keys, no model, no paired tokens.
  const dir = freshDir('v1');
  const port = await freePort();
  writeFileSync(path.join(dir, 'config.toml'), `workspace_dir = "${dir}"\ndefault_provider = "openrouter"\ndefault_temperature = 0.7\n\n[gateway]\nhost = "127.0.0.1"\nport = ${port}\n`);
  const v1 = await start(['gateway'], { ZEROCLAW_CONFIG_DIR: dir }, port);
  const code = /X-Pairing-Code: (\d{6})/.exec(v1.output())?.[1];
  t.ok(code, 'no paired token: a one-time code on stdout');
  t.equal((await call(port, 'GET', '/pair/code')).json.pairing_code, code, 'and on GET /pair/code');
  t.equal((await say(port, 'x')).status, 401, 'unpaired: 401 before anything else');
  t.same((await call(port, 'POST', '/pair', { 'x-pairing-code': '000000' === code ? '111111' : '000000' })).json, { error: 'Invalid pairing code' });
  const paired = await call(port, 'POST', '/pair', { 'x-pairing-code': code ?? '' });
  t.match(paired.json, { paired: true, persisted: true, token: /^zc_[0-9a-f]{64}$/ });
  const token = String(paired.json.token);
  t.equal((await call(port, 'GET', '/pair/code')).json.pairing_code, null, 'the code is spent');
  t.same((await say(port, 'hello', { authorization: `Bearer ${token}` })).json, { error: 'needs_quickstart', url: '/quickstart' }, 'V1 config → 503');
  const saved = parse(readFileSync(path.join(dir, 'config.toml'), 'utf8')) as { gateway: { paired_tokens: string[] } };
  t.same(saved.gateway.paired_tokens, [zeroclawTokenSha256(token)], 'the token hash is persisted in config.toml');
  await stop(v1);
  const v1again = await start(['gateway'], { ZEROCLAW_CONFIG_DIR: dir }, port);
  t.equal((await say(port, 'hello', { authorization: `Bearer ${token}` })).status, 503, 'the paired token survives a restart');
  t.notMatch(v1again.output(), /X-Pairing-Code: \d{6}/, 'and no new code is made');
  await stop(v1again);
});

t.test('install dir: ZEROCLAW_CONFIG_DIR/--config-dir > ZEROCLAW_DATA_DIR > ZEROCLAW_WORKSPACE > $HOME/.zeroclaw', async (t) => {
  const cases: Array<{ name: string; args?: string[]; env: (d: string) => Record<string, string>; expect: (d: string) => string }> = [
    { name: 'DATA_DIR named data → sibling .zeroclaw', env: (d) => ({ ZEROCLAW_DATA_DIR: path.join(d, 'x', 'data') }), expect: (d) => path.join(d, 'x', '.zeroclaw') },
    { name: 'WORKSPACE named workspace → sibling .zeroclaw', env: (d) => ({ ZEROCLAW_WORKSPACE: path.join(d, 'y', 'workspace') }), expect: (d) => path.join(d, 'y', '.zeroclaw') },
    { name: 'DATA_DIR with another name → itself', env: (d) => ({ ZEROCLAW_DATA_DIR: path.join(d, 'inst') }), expect: (d) => path.join(d, 'inst') },
    { name: 'DATA_DIR beats WORKSPACE', env: (d) => ({ ZEROCLAW_DATA_DIR: path.join(d, 'a'), ZEROCLAW_WORKSPACE: path.join(d, 'b') }), expect: (d) => path.join(d, 'a') },
    { name: '--config-dir beats DATA_DIR', args: ['--config-dir', 'CD'], env: (d) => ({ ZEROCLAW_DATA_DIR: path.join(d, 'a') }), expect: (d) => path.join(d, 'cd') },
    { name: 'nothing set → $HOME/.zeroclaw', env: (d) => ({ HOME: path.join(d, 'home') }), expect: (d) => path.join(d, 'home', '.zeroclaw') },
  ];
  for (const c of cases) {
    const d = freshDir('resolve');
    const port = await freePort();
    const args = (c.args ?? []).map((a) => (a === 'CD' ? path.join(d, 'cd') : a));
    const zc = await start([...args, 'gateway'], { ...c.env(d), ZEROCLAW_gateway__port: String(port) }, port);
    const dir = c.expect(d);
    t.ok(existsSync(path.join(dir, 'config.toml')) && existsSync(path.join(dir, 'data')), `${c.name}: ${path.relative(d, dir)}`);
    t.equal(readFileSync(path.join(dir, 'config.toml'), 'utf8'), 'schema_version = 3\n', 'a fresh install writes its defaults, not the env overrides');
    await stop(zc);
  }
  const file = path.join(freshDir('blocked'), 'a-file');
  writeFileSync(file, '');
  const port = await freePort();
  const blocked = await start(['daemon'], { ZEROCLAW_CONFIG_DIR: path.join(file, 'zc'), ZEROCLAW_gateway__port: String(port) }, port, { expectExit: true });
  const r = await blocked.exited;
  t.equal(r.code, 1, 'an install dir it cannot create: exit 1 before listening');
  t.match(blocked.output(), /Failed to create data directory/);
});

t.test('env overrides: ZEROCLAW_<section>__<key>; an unknown lowercase name stops the start', async (t) => {
  const i = await install({ llm: undefined });
  const port = await freePort();
  const zc = await start(['daemon'], { ...i.env, ZEROCLAW_gateway__port: String(port), ZEROCLAW_gateway__host: '127.0.0.1', ZEROCLAW_SOME_UPPERCASE_NAME: 'x', ZEROCLAW_providers__models__custom__Bad__api_key: 'x' }, port);
  t.equal((await call(port, 'GET', '/health')).status, 200, 'ZEROCLAW_gateway__port moves the listener; names with an uppercase letter are not overrides');
  await stop(zc);
  for (const [name, value, why] of [['ZEROCLAW_gateway__prot', '1', 'a typo'], ['ZEROCLAW_gateway__port', 'abc', 'a bad value'], ['ZEROCLAW_providers__models__custom__platform__apikey', 'k', 'an unknown provider field']] as const) {
    const e = await start(['daemon'], { ...i.env, [name]: value }, i.port, { expectExit: true });
    t.equal((await e.exited).code, 1, `${why}: exit 1`);
    t.match(e.output(), name, 'the error names the variable');
  }
});

t.test('408 after request_timeout_secs, 500 when the provider fails, 429 with retry_after', async (t) => {
  const slow = await stub(3_000);
  const i = await install({ llm: { baseUrl: slow.url, model: 'stub-model' }, requestTimeoutS: 1, webhookRateLimitPerMinute: 3 });
  const auth = { authorization: `Bearer ${i.bearer}` };
  const zc = await start(['daemon'], i.env, i.port);
  const t0 = Date.now();
  const late = await say(i.port, 'slow one', { ...auth, 'x-idempotency-key': 'slow:1' });
  t.same([late.status, late.text], [408, ''], '408 with an empty body');
  t.ok(Date.now() - t0 < 2_500, `after ~1 s (${Date.now() - t0} ms)`);
  t.equal((await say(i.port, 'slow one', { ...auth, 'x-idempotency-key': 'slow:1' })).json.status, 'duplicate', 'the key was spent before the LLM call');
  const limited = await say(i.port, 'third', auth);
  const over = await say(i.port, 'fourth', auth);
  t.equal(limited.status, 408, 'still within the limit of 3 a minute');
  t.same([over.status, over.json], [429, { error: 'Too many webhook requests. Please retry later.', retry_after: 60 }], '429 on the 4th request of the minute');
  t.equal(over.headers['retry-after'], undefined, 'no Retry-After header: only the JSON retry_after');
  await stop(zc);

  const deadPort = await freePort();
  const j = await install({ llm: { baseUrl: `http://127.0.0.1:${deadPort}/v1`, model: 'm' } });
  const down = await start(['daemon'], { ...j.env, ZEROCLAW_reliability__provider_retries: '0' }, j.port);
  const failed = await say(j.port, 'hi', { authorization: `Bearer ${j.bearer}` });
  t.same([failed.status, failed.json], [500, { error: 'LLM request failed' }], '500 when the provider cannot be reached');
  t.ok(await ready(j.port, j.probe), 'readiness does not call the LLM: still ready');
  await stop(down);
});

t.test('auth lockout: 10 bad bearers from one client IP → 429 for 300 s (loopback is exempt)', async (t) => {
  const i = await install({ llm: undefined });
  const zc = await start(['daemon'], { ...i.env, ZEROCLAW_gateway__trust_forwarded_headers: 'true' }, i.port);
  const from = { 'x-forwarded-for': '203.0.113.7', authorization: 'Bearer wrong' };
  for (let n = 0; n < 10; n++) t.equal((await say(i.port, 'x', from)).status, 401);
  const locked = await say(i.port, 'x', { ...from, authorization: `Bearer ${i.bearer}` });
  t.same([locked.status, locked.json], [429, { error: 'Too many auth attempts. Try again in 300s.', retry_after: 300 }], 'even the right bearer waits');
  for (let n = 0; n < 11; n++) await say(i.port, 'x', { authorization: 'Bearer wrong' });
  t.equal((await say(i.port, 'x', { authorization: `Bearer ${i.bearer}` })).status, 503, 'loopback is never locked out');
  await stop(zc);
});

t.test('SIGTERM: gateway dies at once; daemon serves 500 ms more, then exits 0', async (t) => {
  const quick = await stub(200);
  const a = await install({ llm: { baseUrl: quick.url, model: 'stub-model' } });
  const auth = { authorization: `Bearer ${a.bearer}` };

  const gw = await start(['gateway'], a.env, a.port);
  const lost = say(a.port, 'in flight', auth).then((r) => r.status, () => 'lost');
  await new Promise((r) => setTimeout(r, 80));
  const g = await stop(gw);
  t.same([g.code, g.signal], [null, 'SIGTERM'], 'gateway: killed by the signal (no handler)');
  // The signal's default action, not a handler's grace: the code/signal pair above says so; the
  // bound only tells it from the daemon's 500 ms window on a loaded machine.
  t.ok(g.ms < 2_000, `at once (${g.ms} ms)`);
  t.equal(await lost, 'lost', 'its in-flight turn is lost');

  const dm = await start(['daemon'], a.env, a.port);
  const before = quick.requests.length;
  const finished = say(a.port, 'short turn', auth);
  // SIGTERM once the turn is at the LLM (200 ms to go): in flight, whatever the machine's load.
  await waitUntil('the short turn at the LLM', () => quick.requests.length > before, 10_000);
  const d = await stop(dm);
  t.equal((await finished).status, 200, 'daemon: a turn that ends within the grace window is answered');
  t.equal(d.code, 0, 'then exit 0');
  t.ok(d.ms >= 450 && d.ms < 3_000, `after the 500 ms grace window (${d.ms} ms)`);

  const slow = await stub(3_000);
  const b = await install({ llm: { baseUrl: slow.url, model: 'stub-model' } });
  const dm2 = await start(['daemon'], b.env, b.port);
  const cut = say(b.port, 'long turn', { authorization: `Bearer ${b.bearer}` }).then((r) => r.status, () => 'lost');
  await new Promise((r) => setTimeout(r, 80));
  const d2 = await stop(dm2);
  t.equal(d2.code, 0);
  t.ok(d2.ms < 3_000, `the daemon does not wait for a long turn (${d2.ms} ms)`);
  t.equal(await cut, 'lost', 'a turn longer than the grace window is lost under daemon too');
});

t.test('the wrapper is an absolute-path sh script that execs node', async (t) => {
  const script = readFileSync(BIN, 'utf8');
  t.match(script, /^#!\/bin\/sh\nexec '\/[^']+' '--import' 'file:\/\/\/[^']+' '\/[^']+zeroclaw-emulator\.ts' "\$@"\n$/);
  const other = freshDir('bin');
  mkdirSync(other, { recursive: true });
  t.equal(zeroclawEmulatorBin(other), path.join(other, 'zeroclaw'), 'a given dir');
  t.equal(readFileSync(path.join(other, 'zeroclaw'), 'utf8'), script);
});
