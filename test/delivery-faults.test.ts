/**
 * Faults on the message path, end to end on the embedded default (real shim and agent processes,
 * real Redis, the Telegram emulator): a wake that fails and is retried, an agent that never gets
 * ready, Telegram 429 and 5xx on sendMessage, answers longer than Telegram's 4096-character limit,
 * and an agent answering 5xx (retried with backoff) or 4xx (not retried). Then every status an agent
 * can answer (ZeroClaw's gateway, OpenClaw's webhook listener), played by an agent of the test's own
 * against a forwarder with real Redis, registry and Telegram emulator (support/outbox-harness.ts).
 */
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startTestPlatform, type TestPlatform } from './support/platform.js';
import { STARTING_UP_TEXT } from '../services/forwarder/drainer.js';
import { sleep, waitUntil } from './support/wait.js';
import { startOutboxHarness, botToken, type OutboxHarness } from './support/outbox-harness.js';
import { ScriptedAgent, type AgentReply, type AgentRequest } from './support/outbox-agent.js';
import { classify } from '../services/forwarder/agent-client.js';
import { splitMessage } from '../lib/telegram-client.js';
import { AGENT_REFUSAL_REASONS } from '../lib/delivery/outcomes.js';
import { agentTokenSha256, deriveAgentToken, deriveWebhookSecret } from '../lib/webhook-secret.js';
import { endpointKey, mailboxKey } from '../lib/keys.js';
import type { Metrics } from '../lib/metrics.js';
import type { LogCapture } from './support/log-capture.js';

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
  // Its agent writes the test's marker on the host: outside the agent sandbox (AGENT_SANDBOX, agent/agent-sandbox.ts).
  const p = await platformWithTenant(t, 'flaky', { AGENT_COMMAND: command, WARM_POOL_TARGET: '0', AGENT_SANDBOX: 'off' }, [dir]);

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
    // Telegram trims each message, so the space at a split point is not shown.
    t.same(parts, splitMessage(`You said: ${text} (memories: ${memories})`).map((c) => c.trim()), 'they are the whole answer, split');
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
  // Its agent logs the requests to a file of the test's on the host: outside the agent sandbox.
  const p = await platformWithTenant(t, 'moody', { AGENT_COMMAND: `exec ${shq(process.execPath)} ${shq(script)} ${shq(requests)}`, AGENT_SANDBOX: 'off' }, [dir]);
  const seen = (): Array<{ n: number; at: number; key: string; message: string }> =>
    existsSync(requests) ? readFileSync(requests, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { n: number; at: number; key: string; message: string }) : [];

  await post(p, 'moody', message(20, 'first'));
  await waitUntil('the answer after the 5xx', () => answersTo(p, 20).some((a) => a.startsWith('ok')), 30_000);
  const firsts = seen().filter((r) => r.message === 'first');
  t.same(firsts.map((r) => r.n), [1, 2, 3], 'delivered three times: 500, 500, then answered');
  const key = firsts[0]!.key;
  t.same(firsts.map((r) => r.key), [key, `${key}:1`, `${key}:2`], 'a new idempotency key after each turn the agent ended in an error');
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

t.test('the agent bearer and what the shim writes for it: a fixed derivation', async (t) => {
  // Computed independently: printf 'agent-bearer:alice' | openssl dgst -sha256 -hmac master-secret -binary | base64url
  t.equal(deriveAgentToken('master-secret', { tenant_id: 'alice' }), 'zhIcjWWwVXwUGL18qxBtZd2NKnomOOSTj-eYGR-oSzw');
  t.equal(agentTokenSha256('zhIcjWWwVXwUGL18qxBtZd2NKnomOOSTj-eYGR-oSzw'), '39a011525e618267a3b32455555dc33b89cd6f1b592bae8002b7864817d3de93', 'lowercase hex SHA-256 (ZeroClaw paired_tokens)');
  t.not(deriveAgentToken('master-secret', { tenant_id: 'alice' }), deriveWebhookSecret('master-secret', { tenant_id: 'alice' }), 'not the webhook secret');
  t.not(deriveAgentToken('master-secret', { tenant_id: 'alice' }), deriveAgentToken('master-secret', { tenant_id: 'alicf' }), 'per tenant');
});

t.test('classify: 429 waits, from the body, the header or both, capped', async (t) => {
  const wait = (headers: Record<string, string>, body: string) => {
    const o = classify(429, headers, body, 'zeroclaw');
    return o.kind === 'retry' ? o.retryAfterMs : 'not retried';
  };
  t.equal(wait({}, JSON.stringify({ error: 'Too many webhook requests. Please retry later.', retry_after: 60 })), 60_000, 'ZeroClaw: retry_after in the body');
  t.equal(wait({ 'retry-after': '7' }, ''), 7_000, 'Retry-After seconds');
  t.equal(wait({ 'retry-after': '7' }, '{"retry_after":9}'), 9_000, 'both: the longer');
  t.equal(wait({}, '{"retry_after":86400}'), 300_000, 'capped at 300 s');
  const date = wait({ 'retry-after': new Date(Date.now() + 30_000).toUTCString() }, '') as number;
  t.ok(date > 25_000 && date <= 30_000, `Retry-After as an HTTP date (${date} ms)`);
  t.equal(wait({}, 'not json'), undefined, 'none given: ordinary backoff');
  t.match(classify(429, {}, '', 'zeroclaw'), { kind: 'retry', error: 'rate_limited', turnEnded: false }, 'the key was not recorded: same key next time');
  t.match(classify(408, {}, '', 'zeroclaw'), { kind: 'retry', error: 'timeout', turnEnded: true });
  t.match(classify(503, {}, '{"error":"needs_quickstart","url":"/quickstart"}', 'zeroclaw'), { kind: 'refused', error: 'needs_quickstart' });
  t.match(classify(503, {}, '{"error":"overloaded"}', 'zeroclaw'), { kind: 'retry', error: 'server_error' }, 'another 503 is an ordinary 5xx');
  t.match(classify(200, {}, '{"status":"duplicate","idempotent":true,"message":"Request already processed for this idempotency key"}', 'zeroclaw'), { kind: 'duplicate' });
  t.match(classify(200, { 'x-openclaw-delivery-accepted': 'durable' }, '', 'telegram'), { kind: 'answered', response: undefined });
  t.match(classify(500, {}, '', 'telegram'), { kind: 'retry', turnEnded: false }, 'OpenClaw ignores the key: it stays');
});

/** Sums of a counter's values by one label. */
async function counts(metric: Metrics['agentErrors'] | Metrics['forwarded'] | Metrics['staleEndpoints'], label: 'reason' | 'outcome'): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metric.get()).values) out[String((v.labels as Record<string, unknown>)[label])] = v.value;
  return out;
}

t.test('every status an agent answers, as it means (zeroclaw protocol)', async (t) => {
  const h: OutboxHarness = await startOutboxHarness();
  // Per message text, the answers to play in turn (the last one repeats).
  const script = new Map<string, AgentReply[]>();
  const agent = await ScriptedAgent.start((req: AgentRequest) => {
    const plays = script.get(req.message ?? '') ?? [{ status: 200, body: { response: `ok: ${req.message}` } }];
    return plays.length > 1 ? (plays.shift() as AgentReply) : (plays[0] as AgentReply);
  });
  t.teardown(async () => {
    await h.close();
    await agent.close();
  });
  const token = botToken(10);
  await h.addTenant('statuses', token);
  await h.setEndpoint('statuses', agent.address);
  const { logs, metrics }: { logs: LogCapture; metrics: Metrics } = await h.startForwarder({ FORWARD_ATTEMPTS: '3' });
  let nextId = 7000;
  const texts = (chat: number) => h.emulator.sentMessages(token).filter((m) => m.chat_id === chat).map((m) => m.text);
  const logsOf = (msg: string, chat: number) => logs.find(msg).filter((e) => e.chat === String(chat));
  /** Sends `message` to `chat` with the agent's answers scripted, and waits until it left the mailbox. */
  const play = async (chat: number, message: string, replies: AgentReply[]): Promise<number> => {
    script.set(message, replies);
    const id = nextId++;
    await h.send('statuses', chat, id, message);
    await waitUntil(`${message}: out of the mailbox`, async () => (await h.clients.redis.llen(mailboxKey('statuses', String(chat)))) === 0, 30_000);
    return id;
  };
  const deadLetterOf = async (id: number) => (await h.deadLetterList()).find((d) => d.update_id === id);

  await t.test('every delivery carries the tenant\'s bearer, and only there', async (t) => {
    await play(1, 'hello', [{ status: 200, body: { response: 'hi' } }]);
    const bearer = deriveAgentToken(h.webhookSecret, (await h.clients.registry.require('statuses')));
    t.same(agent.requests.map((r) => r.headers.authorization), [`Bearer ${bearer}`]);
    t.equal(agent.requests[0]?.headers['x-telegram-bot-api-secret-token'], undefined, 'no webhook secret for a zeroclaw agent');
    t.same(texts(1), ['hi']);
    t.notOk(logs.text().includes(bearer), 'the bearer is in no log line');
  });

  await t.test('408 (ZeroClaw\'s request timeout): retried with a new idempotency key', async (t) => {
    const id = await play(2, 'slow turn', [{ status: 408 }, { status: 200, body: { response: 'finally' } }]);
    t.same(agent.asked('slow turn').map((r) => r.key), [`statuses:${id}`, `statuses:${id}:1`], 'the second try is a new turn for ZeroClaw');
    t.same(texts(2), ['finally']);
    t.match(logsOf('delivery failed: retrying with backoff', 2)[0], { agent_error: 'timeout', attempts: 1 });
  });

  await t.test('429: retried after retry_after (body and Retry-After), same key, counted as an attempt', async (t) => {
    const id = await play(3, 'busy agent', [
      { status: 429, body: { error: 'Too many webhook requests. Please retry later.', retry_after: 1 } },
      { status: 429, body: { error: 'Too many auth attempts. Try again in 2s.' }, headers: { 'retry-after': '2' } },
      { status: 200, body: { response: 'after the wait' } },
    ]);
    t.same(agent.asked('busy agent').map((r) => r.key), [`statuses:${id}`, `statuses:${id}`, `statuses:${id}`], 'ZeroClaw checks its limit before recording the key');
    t.same(texts(3), ['after the wait']);
    const retries = logsOf('delivery failed: retrying with backoff', 3);
    t.same(retries.map((e) => e.agent_error), ['rate_limited', 'rate_limited']);
    t.same(retries.map((e) => e.attempts), [1, 2], 'each 429 counts against FORWARD_ATTEMPTS');
    t.ok((retries[0]?.delay_ms as number) >= 1000 && (retries[1]?.delay_ms as number) >= 2000, `the waits honour retry_after (${retries.map((e) => e.delay_ms).join(', ')} ms)`);
  });

  await t.test('429 past FORWARD_ATTEMPTS: a dead letter, not dropped', async (t) => {
    const id = await play(4, 'always limited', [{ status: 429, body: { retry_after: 0 } }]);
    t.equal(agent.asked('always limited').length, 3);
    t.match(await deadLetterOf(id), { attempts: 3, reason: /agent rate limit \(429\)/ });
  });

  await t.test('413: a dead letter at once, said in an error line', async (t) => {
    const id = await play(5, 'too big', [{ status: 413 }]);
    t.equal(agent.asked('too big').length, 1, 'not retried');
    t.match(await deadLetterOf(id), { reason: AGENT_REFUSAL_REASONS.tooLarge, attempts: 1 });
    t.equal(AGENT_REFUSAL_REASONS.tooLarge, 'agent refused the update as too large (413)');
    t.match(logsOf(AGENT_REFUSAL_REASONS.tooLarge, 5), [{ level: 50, status: 413, agent_error: 'too_large' }]);
  });

  await t.test('503 needs_quickstart: operator-visible, a dead letter at once; `ztm dead retry` re-sends it once fixed', async (t) => {
    const id = await play(6, 'no model', [{ status: 503, body: { error: 'needs_quickstart', url: '/quickstart' } }]);
    t.equal(agent.asked('no model').length, 1, 'not retried: it cannot help');
    t.equal(AGENT_REFUSAL_REASONS.needsQuickstart, 'agent not configured: needs_quickstart (set AGENT_LLM_BASE_URL/AGENT_LLM_MODEL)');
    t.match(logsOf(AGENT_REFUSAL_REASONS.needsQuickstart, 6), [{ level: 50, status: 503, agent_error: 'needs_quickstart' }], 'an error line');
    const letter = await deadLetterOf(id);
    t.match(letter, { reason: AGENT_REFUSAL_REASONS.needsQuickstart });
    t.same(texts(6), [], 'nothing was sent to the user');
    // The operator configures the model; the agent answers now.
    script.set('no model', [{ status: 200, body: { response: 'configured now' } }]);
    await h.deadLetters.retry(h.mailbox, letter!.id);
    await waitUntil('the retried update answered', () => texts(6).length >= 1, 30_000);
    t.same(texts(6), ['configured now']);
  });

  await t.test('another 503 is an ordinary 5xx: retried', async (t) => {
    await play(7, 'overloaded', [{ status: 503, body: { error: 'overloaded' } }, { status: 200, body: { response: 'better' } }]);
    t.equal(agent.asked('overloaded').length, 2);
    t.same(texts(7), ['better']);
  });

  await t.test('401: not this tenant\'s agent: the endpoint dropped and the tenant woken, refused again a dead letter naming the endpoint', async (t) => {
    // This harness has no waker: the tenant's wake publishes the same agent again, as a waker
    // would find its pod still there (the case where the agent itself checks the wrong credential).
    const rewake = republishWhenDropped(h, 'statuses', agent.address);
    const id = await play(8, 'not paired', [{ status: 401, body: { error: 'Unauthorized — pair first via POST /pair, then send Authorization: Bearer <token>' } }]);
    await rewake.stop();
    t.equal(agent.asked('not paired').length, 2, 'asked before and after the re-wake');
    t.ok(rewake.republished() >= 1, 'the endpoint was dropped and the tenant woken');
    t.match(await deadLetterOf(id), { reason: `the agent at ${agent.address} refused this tenant's credential after a fresh wake` });
    t.equal(logsOf("the agent at the endpoint refused this tenant's credential (not its agent): endpoint dropped, waking the tenant", 8).length, 1);
    t.match(logsOf("the tenant's agent refused its credential after a fresh wake: dead-lettered", 8), [{ level: 50, status: 401, endpoint: agent.address }]);
    t.match(await counts(metrics.staleEndpoints, 'outcome'), { rewake: 1, 'dead-letter': 1 });
    await h.setEndpoint('statuses', agent.address);
  });

  await t.test('200 duplicate (ZeroClaw saw the key): acknowledged, logged, never an empty message', async (t) => {
    await play(9, 'seen before', [{ status: 200, body: { status: 'duplicate', idempotent: true, message: 'Request already processed for this idempotency key' } }]);
    await play(9, 'next one', [{ status: 200, body: { response: 'next answer' } }]);
    t.same(texts(9), ['next answer'], 'no message for the duplicate; the chat moved on');
    t.equal(logsOf('agent answered duplicate: its answer went to an earlier delivery', 9).length, 1);
  });

  await t.test('another 4xx: rejected, not retried, logged with its status', async (t) => {
    const id = await play(10, 'bad request', [{ status: 400, body: { error: 'Invalid JSON body' } }]);
    t.equal(agent.asked('bad request').length, 1);
    t.match(logsOf('agent rejected the update: not retried', 10), [{ status: 400 }]);
    t.equal(await deadLetterOf(id), undefined, 'not a dead letter');
  });

  await t.test('5xx past FORWARD_ATTEMPTS: a dead letter; a new key for each failed turn', async (t) => {
    const id = await play(11, 'llm down', [{ status: 500, body: { error: 'LLM request failed' } }]);
    t.same(agent.asked('llm down').map((r) => r.key), [`statuses:${id}`, `statuses:${id}:1`, `statuses:${id}:2`]);
    t.match(await deadLetterOf(id), { attempts: 3, reason: 'agent answered 500' });
  });

  await t.test('the metrics count each error by its reason', async (t) => {
    t.match(await counts(metrics.agentErrors, 'reason'), {
      timeout: 1, rate_limited: 5, too_large: 1, needs_quickstart: 1, unauthorized: 0, server_error: 4, rejected: 1,
    });
    t.match(await counts(metrics.forwarded, 'outcome'), { duplicate: 1, rejected: 1 });
  });
});

t.test('the telegram protocol (OpenClaw\'s webhook listener)', async (t) => {
  const h = await startOutboxHarness({ AGENT_PROFILE: 'custom', AGENT_COMMAND: 'true', AGENT_PROTOCOL: 'telegram' });
  const plays: AgentReply[] = [];
  const agent = await ScriptedAgent.start(() => (plays.length > 1 ? plays.shift() : plays[0]) ?? { status: 200 });
  t.teardown(async () => {
    await h.close();
    await agent.close();
  });
  const token = botToken(11);
  await h.addTenant('claw', token);
  await h.setEndpoint('claw', agent.address);
  const { logs, metrics } = await h.startForwarder();
  const drained = (chat: number) => waitUntil('out of the mailbox', async () => (await h.clients.redis.llen(mailboxKey('claw', String(chat)))) === 0, 30_000);

  await t.test('an empty 200 (delivery accepted: durable) is a delivery; the agent answers Telegram itself', async (t) => {
    plays.splice(0, plays.length, { status: 200, headers: { 'x-openclaw-delivery-accepted': 'durable' } });
    await h.send('claw', 1, 8001, 'hello claw');
    await drained(1);
    t.equal(agent.requests.length, 1);
    const req = agent.requests[0]!;
    t.equal(req.path, '/telegram-webhook');
    t.equal(req.headers['x-telegram-bot-api-secret-token'], deriveWebhookSecret(h.webhookSecret, (await h.clients.registry.require('claw'))), 'its webhook secret');
    t.equal(req.headers.authorization, undefined, 'no bearer for the telegram protocol');
    t.match(JSON.parse(req.body), { update_id: 8001, message: { text: 'hello claw' } }, 'the raw update');
    t.equal(logs.find('forwarded to pod').length, 1);
    t.same(h.emulator.sentMessages(token), [], 'the forwarder sent nothing itself');
  });

  await t.test('500s in its first moments are retried, with the same key', async (t) => {
    plays.splice(0, plays.length, { status: 500 }, { status: 500 }, { status: 200 });
    await h.send('claw', 2, 8002, 'early');
    await drained(2);
    const tries = agent.requests.filter((r) => r.key === 'claw:8002');
    t.equal(tries.length, 3, 'three tries under one key (OpenClaw dedups by update_id itself)');
  });

  await t.test('401 (webhook secret mismatch): a stale endpoint, then a dead letter naming it', async (t) => {
    plays.splice(0, plays.length, { status: 401 });
    const rewake = republishWhenDropped(h, 'claw', agent.address);
    await h.send('claw', 3, 8003, 'wrong secret');
    await drained(3);
    await rewake.stop();
    t.equal(agent.requests.filter((r) => r.key === 'claw:8003').length, 2, 'asked before and after the re-wake');
    t.match((await h.deadLetterList()).find((d) => d.update_id === 8003), { reason: `the agent at ${agent.address} refused this tenant's credential after a fresh wake` });
    t.match(await counts(metrics.staleEndpoints, 'outcome'), { rewake: 1, 'dead-letter': 1 });
    t.match(await counts(metrics.agentErrors, 'reason'), { unauthorized: 0, server_error: 2 });
  });
});

/**
 * What a waker does for a tenant whose endpoint the forwarder dropped, in a harness that has none:
 * publishes the agent's address again (polled every 50 ms until stopped).
 */
function republishWhenDropped(h: OutboxHarness, tenantId: string, address: string): { republished(): number; stop(): Promise<void> } {
  let count = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      if ((await h.clients.redis.exists(endpointKey(tenantId))) === 0) {
        await h.setEndpoint(tenantId, address);
        count++;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    republished: () => count,
    async stop() {
      running = false;
      await loop;
    },
  };
}
