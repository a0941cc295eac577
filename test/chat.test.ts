/**
 * `ztm chat` end to end: the real `npm start` entry (services/platform/main.ts) as a process with
 * TELEGRAM_API_BASE=sandbox (embedded dynalite and s3rver under its DATA_DIR, a test redis-server),
 * tenants created with the real ztm, and the real `ztm chat` as a child process finding the platform
 * through DATA_DIR/platform.json. Answers come from the reference agent, whose memory count grows,
 * and from a stand-in agent that answers through the Bot API itself with formatted and edited text.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePort } from '../lib/util/free-port.js';
import { STARTING_UP_TEXT } from '../services/forwarder/drainer.js';
import { callBotApi, spawnZtm } from './support/platform.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { ServiceSet } from './support/services.js';

const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const TOKEN_SECRET = TOKEN.split(':')[1] as string;
const SLOW_TOKEN = '222333444:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw2';

let redis: TestRedis;
let dataDir: string;
let services: ServiceSet;
let sandboxUrl: string;
const ztm = (argv: string[], input?: string) => spawnZtm(argv, { DATA_DIR: dataDir }, input);
const botApi = (token: string, method: string, params: unknown) => callBotApi(sandboxUrl, token, method, params);

t.before(async () => {
  redis = await startRedis();
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-chat-'));
  services = new ServiceSet([dataDir]);
  const platform = services.add({
    name: 'platform',
    entry: 'services/platform/main.ts',
    env: {
      DATA_DIR: dataDir, REDIS_URL: redis.url, TELEGRAM_API_BASE: 'sandbox', TELEGRAM_SANDBOX_PORT: '0',
      INGRESS_PORT: String(await freePort()), WARM_POOL_TARGET: '0', LOG_LEVEL: 'info',
    },
    readyMsg: 'platform started',
  });
  await platform.start(45_000);
  const info = JSON.parse(readFileSync(path.join(dataDir, 'platform.json'), 'utf8')) as { sandboxUrl?: string };
  if (!info.sandboxUrl) throw new Error('platform.json has no sandboxUrl');
  sandboxUrl = info.sandboxUrl;
});
t.teardown(async () => {
  await services.close();
  await redis.close();
  rmSync(dataDir, { recursive: true, force: true });
});

t.test('tenant create registers the webhook at the sandbox (ROUTER_PUBLIC_URL defaults to the ingress)', async (t) => {
  const r = await ztm(['tenant', 'create', 'alice', TOKEN]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /webhook registered: http:\/\/127\.0\.0\.1:\d+\/tg\/alice/);
});

t.test('--message: the answer comes back through the whole pipeline, and the agent remembers', async (t) => {
  const first = await ztm(['chat', 'alice', '--message', 'hello']);
  t.equal(first.code, 0, first.stderr);
  t.same(first.stdout.trim().split('\n'), [`alice> ${STARTING_UP_TEXT}`, 'alice> You said: hello (memories: 1)'], 'woken on the first message');
  const second = await ztm(['chat', 'alice', '--message', 'again']);
  t.equal(second.code, 0, second.stderr);
  t.equal(second.stdout.trim(), 'alice> You said: again (memories: 2)');
  for (const r of [first, second]) t.notMatch(r.stdout + r.stderr, TOKEN_SECRET);
});

t.test('piped stdin: each line in order, each after the previous answer', async (t) => {
  const r = await ztm(['chat', 'alice'], 'first\n\nsecond\n');
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['alice> You said: first (memories: 3)', 'alice> You said: second (memories: 4)']);
});

t.test('another sandbox user is another chat; --json prints one object per message', async (t) => {
  const r = await ztm(['chat', 'alice', '--chat-id', '4242', '--message', '007', '--json']);
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout.trim()), { tenant_id: 'alice', text: 'You said: 007 (memories: 5)', message_id: 2 }, 'the text as typed; first answer in that chat');
});

t.test('a bot without a webhook at the sandbox gets one registered first', async (t) => {
  t.equal((await botApi(TOKEN, 'deleteWebhook', {})).ok, true);
  const r = await ztm(['chat', 'alice', '--message', 'still there?']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /registering the webhook of alice/);
  t.equal(r.stdout.trim(), 'alice> You said: still there? (memories: 6)');
});

t.test('errors: one line, non-zero exit', async (t) => {
  const [unknown, badChat, zeroChat, blank, noWait] = await Promise.all([
    ztm(['chat', 'nobody', '--message', 'hi']),
    ztm(['chat', 'alice', '--chat-id', '12ab', '--message', 'hi']),
    ztm(['chat', 'alice', '--chat-id', '0', '--message', 'hi']),
    ztm(['chat', 'alice', '--message', '   ']),
    ztm(['chat', 'alice', '--wait', '0', '--message', 'hi']),
  ]);
  t.equal(unknown.code, 1);
  t.equal(unknown.stderr.trim(), 'ztm: tenant nobody not found');
  t.equal(badChat.code, 2, 'bad usage: exit 2');
  t.match(badChat.stderr.trim(), /^ztm: invalid --chat-id "12ab": a whole number/);
  for (const r of [zeroChat, blank, noWait]) {
    t.equal(r.code, 2);
    t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }

  // No answer in time: the bot's webhook points at a port where nothing listens.
  t.equal((await ztm(['tenant', 'create', 'slow', SLOW_TOKEN])).code, 0);
  t.equal((await botApi(SLOW_TOKEN, 'setWebhook', { url: `http://127.0.0.1:${await freePort()}/tg/slow` })).ok, true);
  const late = await ztm(['chat', 'slow', '--message', 'hi', '--wait', '2']);
  t.equal(late.code, 1);
  t.match(late.stderr.trim(), /^ztm: no answer from slow within 2s/);
  t.equal(late.stderr.trim().split('\n').length, 1);
});

t.test('an agent\'s HTML and MarkdownV2 are shown as Telegram shows them; an edit is shown again; typing never in --message output', async (t) => {
  // A stand-in for an OpenClaw-style agent on the tenant "slow": it answers through the Bot API itself.
  const agent = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      res.writeHead(200).end();
      const chatId = (JSON.parse(body) as { message: { chat: { id: number } } }).message.chat.id;
      void (async () => {
        await botApi(SLOW_TOKEN, 'sendChatAction', { chat_id: chatId, action: 'typing' });
        const sent = await botApi(SLOW_TOKEN, 'sendMessage', {
          chat_id: chatId, parse_mode: 'HTML', text: '<b>Hi</b> &lt;you&gt; &amp; <a href="https://example.org/docs">the docs</a>', link_preview_options: { is_disabled: true },
        });
        await botApi(SLOW_TOKEN, 'editMessageText', { chat_id: chatId, message_id: sent.result?.message_id, parse_mode: 'MarkdownV2', text: '*Hi* again\\! `x_y`' });
      })();
    });
  });
  await new Promise<void>((resolve) => agent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { agent.closeAllConnections(); agent.close(() => resolve()); }));
  const url = `http://127.0.0.1:${(agent.address() as { port: number }).port}/telegram-webhook`;
  t.equal((await botApi(SLOW_TOKEN, 'setWebhook', { url })).ok, true);

  const r = await ztm(['chat', 'slow', '--message', 'hi', '--wait', '10']);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['slow> Hi <you> & the docs (https://example.org/docs)', 'slow> (edited) Hi again! x_y']);
  t.notMatch(r.stdout + r.stderr, /typing/);
  const json = await ztm(['chat', 'slow', '--message', 'hi', '--wait', '10', '--json']);
  t.equal(json.code, 0, json.stderr);
  const lines = json.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.match(lines, [{ tenant_id: 'slow', text: 'Hi <you> & the docs' }, { tenant_id: 'slow', text: 'Hi again! x_y', edited: true, edit_date: Number }]);
  t.equal(lines[0]?.message_id, lines[1]?.message_id, 'the edit is of the message just shown');
});

t.test('errors: no platform running; a platform not in sandbox mode', async (t) => {
  const empty = mkdtempSync(path.join(os.tmpdir(), 'ztm-chat-none-'));
  t.teardown(() => rmSync(empty, { recursive: true, force: true }));
  const none = await spawnZtm(['chat', 'alice', '--message', 'hi'], { DATA_DIR: empty });
  t.equal(none.code, 1);
  t.match(none.stderr.trim(), /^ztm: no platform is running from .*: start it with TELEGRAM_API_BASE=sandbox npm start/);

  // What `npm start` without the sandbox writes: no sandboxUrl (this test process stands in as its pid).
  writeFileSync(path.join(empty, 'platform.json'), JSON.stringify({ pid: process.pid, redisUrl: redis.url, ingressUrl: 'http://127.0.0.1:1' }));
  const plain = await spawnZtm(['chat', 'alice', '--message', 'hi'], { DATA_DIR: empty });
  t.equal(plain.code, 1);
  t.match(plain.stderr.trim(), /^ztm: the platform running from .* is not in sandbox mode: start it with TELEGRAM_API_BASE=sandbox npm start$/);
});
