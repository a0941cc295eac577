/**
 * Faults on the message path, end to end on the embedded default (real shim and agent processes,
 * real Redis, the Telegram emulator): a wake that fails and is retried, an agent that never gets
 * ready, Telegram 429 and 5xx on sendMessage, answers longer than Telegram's 4096-character limit,
 * and an agent answering 5xx (retried with backoff) or 4xx (not retried).
 */
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startTestPlatform, type TestPlatform } from './support/platform.js';
import { STARTING_UP_TEXT } from '../services/forwarder/drainer.js';
import { sleep, waitUntil } from './support/wait.js';

const TOKEN = '222222222:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw2';
const REFERENCE_AGENT = `${shq(process.execPath)} --import ${shq(import.meta.resolve('tsx'))} ${shq(path.join(ROOT, 'agent/reference-agent.ts'))}`;
let nextUpdateId = 5000;

/** Single-quotes a word for `sh -c`. */
function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const message = (chatId: number, text: string, updateId = nextUpdateId++) => ({
  update_id: updateId,
  message: { message_id: updateId, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private' }, from: { id: chatId, is_bot: false, first_name: 'u' }, text },
});

const answersTo = (p: TestPlatform, chatId: number): string[] => p.emulator.sentMessages(TOKEN).filter((m) => m.chat_id === chatId).map((m) => m.text);
const sendCallsTo = (p: TestPlatform, chatId: number) => p.emulator.callsTo('sendMessage', TOKEN).filter((c) => String(c.params.chat_id) === String(chatId));
const memoriesIn = (text: string): number => Number(/\(memories: (\d+)\)$/.exec(text)?.[1] ?? NaN);


/** A full platform with its own env, one bot and one tenant; closed (and `dirs` removed) at the end of `t`. */
async function platformWithTenant(t: Test, tenantId: string, env: Record<string, string>, dirs: string[] = []): Promise<TestPlatform> {
  const p = await startTestPlatform({ full: true, env });
  t.teardown(async () => {
    await p.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  p.emulator.addBot(TOKEN);
  const created = await p.ztm('tenant', 'create', tenantId, TOKEN);
  if (created.code !== 0) throw new Error(`tenant create: ${created.stderr}`);
  return p;
}

async function post(p: TestPlatform, tenantId: string, update: unknown): Promise<void> {
  const res = await p.postUpdate(tenantId, update);
  if (res.status !== 200) throw new Error(`ingress answered ${res.status}: ${res.body}`);
}

async function statusOf(p: TestPlatform, tenantId: string): Promise<unknown> {
  const got = await p.ztm('tenant', 'get', tenantId, '--json');
  if (got.code !== 0) throw new Error(got.stderr);
  return (JSON.parse(got.stdout) as { status: unknown }).status;
}

/** True while any process of the group `pgid` is alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The agent pids (each its own process group) that the tenant's shim and any warm member logged as started. */
function agentPids(p: TestPlatform, tenantId: string): number[] {
  const warmDir = path.join(p.config.dataDir, 'warm');
  const files = [path.join(p.config.dataDir, 'tenants', tenantId, 'agent.log'),
    ...(existsSync(warmDir) ? readdirSync(warmDir).map((name) => path.join(warmDir, name, 'agent.log')) : [])];
  return files.filter((f) => existsSync(f)).flatMap((f) => readFileSync(f, 'utf8').split('\n')).flatMap((line) => {
    try {
      const e = JSON.parse(line) as { msg?: string; pid?: number };
      return e.msg === 'agent started' && typeof e.pid === 'number' ? [e.pid] : [];
    } catch {
      return [];
    }
  });
}

t.test('a failed wake is retried, not dropped', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-flaky-'));
  const marker = path.join(dir, 'first-run-done');
  // First run: leave a marker and fail at once; every later run is the reference agent.
  const command = `if [ -f ${shq(marker)} ]; then exec ${REFERENCE_AGENT}; else touch ${shq(marker)}; exit 1; fi`;
  const p = await platformWithTenant(t, 'flaky', { AGENT_COMMAND: command, WARM_POOL_TARGET: '0' }, [dir]);

  await post(p, 'flaky', message(1, 'are you up?'));
  await waitUntil('the answer', () => answersTo(p, 1).some((a) => a.startsWith('You said')), 30_000);
  await sleep(300); // nothing more may follow
  t.ok(existsSync(marker), 'the first agent run happened (and failed)');
  t.ok(p.logs.find('wake failed').length >= 1, '`wake failed` logged');
  t.ok(p.logs.find('tenant awake: agent ready').length >= 1, 'a later wake succeeded');
  const answers = answersTo(p, 1);
  t.equal(answers[0], STARTING_UP_TEXT, 'the chat was told first that the agent is starting');
  const notices = answers.filter((a) => a === STARTING_UP_TEXT).length;
  const wakes = p.logs.find('wake failed').length + p.logs.find('tenant awake: agent ready').length;
  t.ok(notices <= wakes, `at most one "Starting up" per wake (${notices} for ${wakes} wakes)`);
  t.same(answers.filter((a) => a !== STARTING_UP_TEXT), ['You said: are you up? (memories: 1)'], 'answered exactly once, stored once');
  t.equal(answers[answers.length - 1], 'You said: are you up? (memories: 1)', 'the answer comes after the notice(s)');
  t.equal(await p.clients.redis.exists('tenant:waking:flaky'), 0, 'wake lock released');
  t.equal(await statusOf(p, 'flaky'), 'running');
  t.equal(await p.forwarderDeadLetters(), 0, 'nothing dead-lettered');
});

t.test('an agent that never gets ready: wake fails, lock released, idle, update dead-lettered after FORWARD_ATTEMPTS', async (t) => {
  // The ready bound covers the shim's own start (node + tsx, over 2 s on a loaded machine) too:
  // 6 s, so that each shim gets as far as starting its agent, which this test must see stopped.
  const p = await platformWithTenant(t, 'sleepy', { AGENT_COMMAND: 'sleep 30', AGENT_READY_TIMEOUT_S: '6', FORWARD_ATTEMPTS: '2', WARM_POOL_TARGET: '0' });
  const started = Date.now();
  await post(p, 'sleepy', message(2, 'hello?'));
  await waitUntil('a dead letter', async () => (await p.forwarderDeadLetters()) > 0, 60_000);
  const elapsed = Date.now() - started;

  const wakeFailures = p.logs.find('wake failed');
  t.ok(wakeFailures.length >= 1, `\`wake failed\` logged (${wakeFailures.length} times, ${elapsed} ms)`);
  t.match(JSON.stringify(wakeFailures[0]), /not ready within 6s|not ready after 6s|exited before/, 'the reason is the ready timeout');
  t.ok(elapsed >= 6_000, `it waited for the ready bound first (${elapsed} ms)`);
  t.equal(await p.clients.redis.exists('tenant:waking:sleepy'), 0, 'wake lock released');
  t.equal(await statusOf(p, 'sleepy'), 'idle', 'registry back to idle');
  t.equal(await p.clients.redis.get('router:endpoint:sleepy'), null, 'no endpoint published');

  const list = await p.ztm('dead', 'list', '--json');
  t.equal(list.code, 0, list.stderr);
  const items = (JSON.parse(list.stdout) as { items: Array<{ tenant_id: string; chat_id: string; attempts: number; reason: string }> }).items;
  t.equal(items.length, 1, 'the update is in the dead letters, not lost');
  t.match(items[0], { tenant_id: 'sleepy', chat_id: '2', attempts: 2, reason: /wake failed/ });
  t.same(answersTo(p, 2).filter((a) => a !== STARTING_UP_TEXT), [], 'no answer was made up');

  // No agent may outlive a failed start: each `sleep 30` (its own process group) is gone.
  const pids = agentPids(p, 'sleepy');
  t.ok(pids.length >= 1, 'the shim started the agent');
  await waitUntil('every agent process group gone', () => pids.every((pid) => !groupAlive(pid)), 10_000)
    .then(() => t.pass('no agent process left behind'), (err: Error) => t.fail(err.message));
  t.same(await p.platform!.runtime.list(), [], 'the runtime lists no instance');
});

t.test('Telegram faults on sendMessage, on an awake tenant', async (t) => {
  const p = await platformWithTenant(t, 'chatty', {});
  await post(p, 'chatty', message(10, 'warm up'));
  await waitUntil('the agent is awake', () => answersTo(p, 10).some((a) => a.startsWith('You said')), 30_000);
  let memories = 1;

  await t.test('429: retry_after honoured, answer delivered once', async (t) => {
    p.emulator.failNext('sendMessage', { status: 429, error_code: 429, retry_after: 1, times: 1 });
    await post(p, 'chatty', message(11, 'slow down'));
    await waitUntil('the answer', () => answersTo(p, 11).length >= 1);
    await sleep(300);
    memories += 1;
    t.same(answersTo(p, 11), [`You said: slow down (memories: ${memories})`], 'exactly once');
    const calls = sendCallsTo(p, 11);
    t.same(calls.map((c) => c.status), [429, 200]);
    const waited = calls[1]!.at - calls[0]!.at;
    t.ok(waited >= 950, `the retry came ~retry_after later (${waited} ms)`);
    t.ok(p.logs.find('telegram rate limit: waiting retry_after').length >= 1);
  });

  await t.test('two 500s: the answer arrives later, the agent stored the update once', async (t) => {
    p.emulator.failNext('sendMessage', { status: 500, times: 2 });
    await post(p, 'chatty', message(12, 'flaky telegram'));
    await waitUntil('the answer', () => answersTo(p, 12).length >= 1);
    await sleep(300);
    memories += 1;
    t.same(answersTo(p, 12), [`You said: flaky telegram (memories: ${memories})`], 'exactly once, memory count +1 only');
    t.same(sendCallsTo(p, 12).map((c) => c.status), [500, 500, 200]);
    t.ok(p.logs.find('sending the answer failed: will retry').length >= 2, 'both failures were retried');
    t.equal(await p.forwarderDeadLetters(), 0);
  });

  await t.test('a 5000-character message: the answer is split at 4096 characters', async (t) => {
    const text = 'abcd '.repeat(1000).slice(0, 4999) + 'x';
    t.equal(text.length, 5000);
    await post(p, 'chatty', message(13, text));
    await waitUntil('the answer', () => answersTo(p, 13).length >= 2);
    await sleep(300);
    memories += 1;
    const parts = answersTo(p, 13);
    t.equal(parts.length, 2, 'two messages');
    t.equal(sendCallsTo(p, 13).length, 2, 'two sendMessage calls, none refused');
    t.ok(parts.every((s) => s.length <= 4096), `each at most 4096 (${parts.map((s) => s.length).join(', ')})`);
    t.equal(parts.join(''), `You said: ${text} (memories: ${memories})`, 'they join to the whole answer');
  });

  t.equal(memoriesIn(answersTo(p, 12)[0] ?? ''), 3);
  await t.test('a bot token rotated behind the forwarder\'s cache: the 401 makes it read the new token, the answer is not dropped', async (t) => {
    const NEW_TOKEN = '987650001:AAnewTokenAfterRotation_abcdefghijklmno';
    p.emulator.addBot(NEW_TOKEN);
    await p.clients.registry.update('chatty', { bot_token: NEW_TOKEN });
    // Telegram answers the revoked token with 401 Unauthorized.
    p.emulator.failNext('sendMessage', { status: 401, description: 'Unauthorized', times: 1 });
    await post(p, 'chatty', message(15, 'new token'));
    const answered = () => p.emulator.sentMessages(NEW_TOKEN).filter((m) => m.chat_id === 15).map((m) => m.text);
    await waitUntil('the answer with the new token', () => answered().length >= 1);
    memories += 1;
    t.same(answered(), [`You said: new token (memories: ${memories})`], 'sent once, with the current token');
    t.same(sendCallsTo(p, 15).map((c) => c.status), [401], 'the cached token was tried first and refused');
    t.ok(p.logs.find('telegram refused the cached bot token: sending with the current one').length >= 1);
  });
});

t.test('agent 5xx is retried with backoff; agent 4xx is not retried', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-agent5xx-'));
  const script = path.join(dir, 'agent.mjs');
  const requests = path.join(dir, 'requests.jsonl');
  writeFileSync(script, `
import http from 'node:http';
import { appendFileSync } from 'node:fs';
const log = process.argv[2];
let n = 0;
const reply = (res, status, body) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};
http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/health') return reply(res, 200, { status: 'ok' });
  if (req.method !== 'POST' || req.url !== '/webhook') { req.resume(); return reply(res, 404, { error: 'not found' }); }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    n += 1;
    const message = String(JSON.parse(body).message ?? '');
    appendFileSync(log, JSON.stringify({ n, at: Date.now(), key: req.headers['x-idempotency-key'], message }) + '\\n');
    if (message.includes('bad')) return reply(res, 400, { error: 'bad message' });
    if (n <= 2) return reply(res, 500, { error: 'not yet' });
    reply(res, 200, { response: 'ok ' + n });
  });
}).listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`);
  const p = await platformWithTenant(t, 'moody', { AGENT_COMMAND: `exec ${shq(process.execPath)} ${shq(script)} ${shq(requests)}` }, [dir]);
  const seen = (): Array<{ n: number; at: number; key: string; message: string }> =>
    existsSync(requests) ? readFileSync(requests, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { n: number; at: number; key: string; message: string }) : [];

  await post(p, 'moody', message(20, 'first'));
  await waitUntil('the answer after the 5xx', () => answersTo(p, 20).some((a) => a.startsWith('ok')), 30_000);
  const firsts = seen().filter((r) => r.message === 'first');
  t.same(firsts.map((r) => r.n), [1, 2, 3], 'delivered three times: 500, 500, then answered');
  t.equal(new Set(firsts.map((r) => r.key)).size, 1, 'with one idempotency key');
  const gaps = [firsts[1]!.at - firsts[0]!.at, firsts[2]!.at - firsts[1]!.at];
  t.ok(gaps[0]! >= 200 && gaps[1]! >= 450, `retried with growing backoff (${gaps.join(' ms, ')} ms)`);
  t.ok(p.logs.find('delivery failed: retrying with backoff').length >= 2);

  await post(p, 'moody', message(20, 'a bad one'));
  await post(p, 'moody', message(20, 'after the refused one'));
  await waitUntil('the next answer', () => answersTo(p, 20).filter((a) => a.startsWith('ok')).length >= 2, 20_000);
  await sleep(500);
  t.same(answersTo(p, 20), [STARTING_UP_TEXT, 'ok 3', 'ok 5'], '"ok" once per update; nothing for the refused one');
  const rest = seen().filter((r) => r.n > 3);
  t.same(rest.map((r) => r.message), ['a bad one', 'after the refused one'], 'the 4xx update was posted once; the next followed it');
  t.equal(p.logs.find('agent rejected the update: not retried').length, 1);
  t.equal(await p.forwarderDeadLetters(), 0, 'a refused update is not a dead letter');
});
