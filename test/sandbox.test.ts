/**
 * The local Bot API sandbox (lib/sandbox/) on its own: its Bot API answers as Telegram gives them,
 * the user routes' validation, webhook delivery (order, secret header, retries until the webhook
 * answers 200, what getWebhookInfo then says), long-poll timeouts; and how the configuration selects
 * it (TELEGRAM_API_BASE=sandbox, refused by the standalone services).
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { loadConfig } from '../lib/config.js';
import { BotApiSandbox } from '../lib/sandbox/bot-api-sandbox.js';
import { SandboxClient } from '../lib/sandbox/sandbox-client.js';
import { TelegramClient } from '../lib/telegram-client.js';
import { freePort } from '../lib/util/free-port.js';
import { ROOT } from './support/platform.js';
import { waitUntil } from './support/wait.js';

const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const TOKEN_SECRET = TOKEN.split(':')[1] as string;
const BOT_ID = 123456789;
const HOOK_SECRET = 'hook-secret_0123456789';

interface Raw { status: number; body: Record<string, unknown>; text: string }

let sandbox: BotApiSandbox;
let client: SandboxClient;

async function call(method: 'GET' | 'POST', pathAndQuery: string, body?: unknown, contentType = 'application/json'): Promise<Raw> {
  const res = await request(`${sandbox.url}${pathAndQuery}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': contentType }, body: typeof body === 'string' ? body : JSON.stringify(body) }),
    headersTimeout: 40_000,
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown>, text };
}
const api = (method: string, params?: unknown): Promise<Raw> => call('POST', `/bot${TOKEN}/${method}`, params ?? {});

/** A webhook on a loopback port: answers with `statusFor(n)` for its n-th request (1-based). */
async function startWebhook(statusFor: (n: number) => number, port = 0) {
  const received: Array<{ update: { update_id: number; message: { message_id: number; text: string; from: { id: number } } }; secret: unknown }> = [];
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      n++;
      const status = statusFor(n);
      if (status === 200) received.push({ update: JSON.parse(Buffer.concat(chunks).toString('utf8')), secret: req.headers['x-telegram-bot-api-secret-token'] });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}/tg/alice`, received, attempts: () => n,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

t.before(async () => {
  sandbox = await BotApiSandbox.start({ initialBackoffMs: 50, maxBackoffMs: 200 });
  client = new SandboxClient({ url: sandbox.url });
});
t.teardown(async () => {
  await client.close();
  await sandbox.close();
});

t.test('Bot API: any token of Telegram\'s shape is a bot; anything else is 404 Not Found', async (t) => {
  const me = await api('getMe');
  t.equal(me.status, 200);
  t.match(me.body, { ok: true, result: { id: BOT_ID, is_bot: true } });
  for (const bad of ['/bot123:short/getMe', '/botnot-a-token/getMe', `/bot${TOKEN}/noSuchMethod`, `/bot${TOKEN}/getMe/extra`, '/other']) {
    const r = await call('POST', bad, {});
    t.equal(r.status, 404, bad);
    t.same(r.body, { ok: false, error_code: 404, description: 'Not Found' }, bad);
  }
  t.equal((await call('POST', `/bot${TOKEN}/getme`, {})).status, 200, 'method names are case-insensitive');
  t.equal((await call('POST', `/bot${TOKEN}/getMe`, '{nope')).status, 400, 'a body that is not JSON');
});

t.test('Bot API: sendMessage is validated like Telegram; message ids count per chat', async (t) => {
  t.match(await api('sendMessage', { text: 'x' }), { status: 400, body: { ok: false, error_code: 400, description: 'Bad Request: chat_id is empty' } });
  t.match(await api('sendMessage', { chat_id: 0, text: 'x' }), { status: 400, body: { description: 'Bad Request: chat not found' } });
  t.match(await api('sendMessage', { chat_id: 5, text: '  ' }), { status: 400, body: { description: 'Bad Request: message text is empty' } });
  t.match(await api('sendMessage', { chat_id: 5, text: 'x'.repeat(4097) }), { status: 400, body: { description: 'Bad Request: message is too long' } });
  const first = await api('sendMessage', { chat_id: 5, text: 'x'.repeat(4096) });
  t.match(first, { status: 200, body: { ok: true, result: { message_id: 1, chat: { id: 5, type: 'private' }, from: { id: BOT_ID } } } });
  t.match(await call('POST', `/bot${TOKEN}/sendMessage`, 'chat_id=5&text=two', 'application/x-www-form-urlencoded'), { status: 200, body: { result: { message_id: 2, text: 'two' } } });
  t.match(await api('sendMessage', { chat_id: 6, text: 'other chat' }), { body: { result: { message_id: 1 } } });
});

t.test('Bot API: webhook rules; getWebhookInfo and the sandbox routes never reveal the secret', async (t) => {
  t.match(await api('setWebhook', { url: 'http://example.com/tg/a' }), { status: 400, body: { description: /loopback|this machine only/ } });
  t.match(await api('setWebhook', { url: 'ftp://127.0.0.1/x' }), { status: 400, body: { description: 'Bad Request: bad webhook: An HTTPS URL must be provided for webhook' } });
  t.match(await api('setWebhook', { url: 'http://127.0.0.1:1/x', secret_token: 'bad secret!' }), { status: 400, body: { description: 'Bad Request: secret token contains unallowed characters' } });
  t.match(await api('setWebhook', { url: 'http://127.0.0.1:1/x', max_connections: 0 }), { status: 400 });
  t.match(await api('setWebhook', { url: 'http://127.0.0.1:1/x', secret_token: HOOK_SECRET }), { status: 200, body: { result: true, description: 'Webhook was set' } });
  const info = await api('getWebhookInfo');
  t.match(info.body, { ok: true, result: { url: 'http://127.0.0.1:1/x', pending_update_count: 0, max_connections: 40 } });
  const bot = await call('GET', `/sandbox/bots/${BOT_ID}`);
  t.same(bot.body, { ok: true, result: { bot_id: BOT_ID, known: true, username: `sandbox_${BOT_ID}_bot`, webhook: { url: 'http://127.0.0.1:1/x', pending_update_count: 0 } } });
  for (const r of [info, bot]) {
    t.notMatch(r.text, HOOK_SECRET);
    t.notMatch(r.text, TOKEN_SECRET);
  }
  t.match(await api('deleteWebhook'), { body: { result: true, description: 'Webhook was deleted' } });
  t.same((await client.bot(BOT_ID)).webhook, null);
  t.same(await client.bot(42), { bot_id: 42, known: false, webhook: null });
});

t.test('the platform\'s Telegram client works against the sandbox', async (t) => {
  const telegram = new TelegramClient({ apiBase: sandbox.url });
  t.teardown(() => telegram.close());
  await telegram.setWebhook(TOKEN, { url: 'http://127.0.0.1:1/tg/alice', secret_token: HOOK_SECRET, allowed_updates: ['message'], max_connections: 40 });
  t.match(await telegram.getWebhookInfo(TOKEN), { url: 'http://127.0.0.1:1/tg/alice', allowed_updates: ['message'] });
  t.match(await telegram.sendMessage(TOKEN, { chat_id: 7, text: 'hi' }), { message_id: 1, text: 'hi' });
  await t.rejects(telegram.sendMessage(TOKEN, { chat_id: 7, text: '' }), { code: 'E_TELEGRAM' } as never);
  await telegram.deleteWebhook(TOKEN);
});

t.test('user routes: every input is validated with a one-line reason', async (t) => {
  const post = (body: unknown) => call('POST', `/sandbox/bots/${BOT_ID}/messages`, body);
  const cases: Array<[unknown, RegExp]> = [
    ['not json', /JSON object/],
    [[1], /JSON object/],
    [{ text: 'x' }, /chat_id must be/],
    [{ chat_id: 0, text: 'x' }, /chat_id must be/],
    [{ chat_id: -5, text: 'x' }, /chat_id must be/],
    [{ chat_id: 1.5, text: 'x' }, /chat_id must be/],
    [{ chat_id: 5 }, /text must be/],
    [{ chat_id: 5, text: ' ' }, /text must be/],
    [{ chat_id: 5, text: 'x'.repeat(4097) }, /text must be/],
    [{ chat_id: 5, text: 'x', from: 'me' }, /from must be an object/],
    [{ chat_id: 5, text: 'x', from: { first_name: '' } }, /from.first_name/],
    [{ chat_id: 5, text: 'x', from: { username: 'a b' } }, /from.username/],
    [{ chat_id: 5, text: 'x', from: { id: 9 } }, /unknown field from.id/],
    [{ chat_id: 5, text: 'x', extra: 1 }, /unknown field "extra"/],
  ];
  for (const [body, why] of cases) {
    const r = await post(body);
    t.equal(r.status, 400, JSON.stringify(body).slice(0, 60));
    t.match(r.body, { ok: false, error_code: 400, description: why });
    t.notMatch(String(r.body.description), /\n/);
  }
  t.equal((await call('POST', `/sandbox/bots/${BOT_ID}/messages`, JSON.stringify({ chat_id: 5, text: 'x'.repeat(70_000) }))).status, 413);
  t.match(await call('GET', '/sandbox/bots/12ab'), { status: 400, body: { description: /bot id/ } });
  t.match(await call('GET', '/sandbox/bots/1/nope'), { status: 404 });
  t.match(await call('POST', `/sandbox/bots/${BOT_ID}`, {}), { status: 405 });
  t.match(await post({ chat_id: 5, text: 'hi' }), { status: 409, body: { description: /no webhook/ } }, 'no webhook: 409');
  t.match(await call('POST', '/sandbox/bots/42/messages', { chat_id: 5, text: 'hi' }), { status: 404, body: { description: /no bot with id 42/ } });
  for (const q of ['', 'chat_id=x', 'chat_id=5&after=-1', 'chat_id=5&timeout=31', 'chat_id=5&timeout=1.5', 'chat_id=5&foo=1']) {
    t.match(await call('GET', `/sandbox/bots/${BOT_ID}/messages?${q}`), { status: 400 }, q);
  }
});

t.test('long-poll: waits up to its timeout; answers as soon as the bot sends; keeps history bounded', async (t) => {
  const chat = 9001;
  const started = Date.now();
  t.same(await client.messages(BOT_ID, chat, { after: 0, timeoutS: 1 }), [], 'nothing sent: empty after the timeout');
  t.ok(Date.now() - started >= 900, `waited the timeout (${Date.now() - started} ms)`);
  const waiting = client.messages(BOT_ID, chat, { after: 0, timeoutS: 20 });
  await new Promise((r) => setTimeout(r, 100));
  const t0 = Date.now();
  await api('sendMessage', { chat_id: chat, text: 'first' });
  const got = await waiting;
  t.ok(Date.now() - t0 < 2_000, 'answered as soon as the bot sent');
  t.match(got, [{ message_id: 1, text: 'first', chat: { id: chat } }]);
  await api('sendMessage', { chat_id: chat, text: 'second' });
  t.match(await client.messages(BOT_ID, chat, { after: 1, timeoutS: 0 }), [{ message_id: 2, text: 'second' }], 'only after the given id');
  t.same(await client.messages(BOT_ID, chat + 1, { after: 0, timeoutS: 0 }), [], 'other chats are separate');

  const small = await BotApiSandbox.start({ historyPerChat: 3 });
  const smallClient = new SandboxClient({ url: small.url });
  t.teardown(async () => { await smallClient.close(); await small.close(); });
  for (let i = 1; i <= 5; i++) await request(`${small.url}/bot${TOKEN}/sendMessage`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ chat_id: 1, text: `m${i}` }) }).then((r) => r.body.text());
  t.same((await smallClient.messages(BOT_ID, 1, { after: 0, timeoutS: 0 })).map((m) => m.text), ['m3', 'm4', 'm5'], 'history keeps the last N');
  const pending = smallClient.messages(BOT_ID, 1, { after: 5, timeoutS: 30 });
  await new Promise((r) => setTimeout(r, 100));
  const closing = Date.now();
  await small.close();
  await pending.then(() => undefined, () => undefined);
  t.ok(Date.now() - closing < 5_000, 'close ends pending long-polls');
});

t.test('delivery: real Updates, in order, with the secret; retried until the webhook answers 200', async (t) => {
  // Fails (503) twice, then accepts.
  const hook = await startWebhook((n) => (n <= 2 ? 503 : 200));
  t.teardown(() => hook.close());
  t.equal((await api('setWebhook', { url: hook.url, secret_token: HOOK_SECRET })).status, 200);
  const sent = [];
  for (const text of ['one', 'two', 'three']) sent.push(await client.send(BOT_ID, 4242, text, { first_name: 'Ada', username: 'ada_l' }));
  t.ok(sent[0]!.update_id < sent[1]!.update_id && sent[1]!.update_id < sent[2]!.update_id, 'update ids increase');
  t.ok(sent[0]!.message_id < sent[1]!.message_id, 'message ids increase');
  await waitUntil('three updates delivered', () => hook.received.length === 3, 10_000);
  t.same(hook.received.map((r) => r.update.message.text), ['one', 'two', 'three'], 'in order, once each');
  t.ok(hook.received.every((r) => r.secret === HOOK_SECRET), 'X-Telegram-Bot-Api-Secret-Token on every delivery');
  t.match(hook.received[0]!.update, {
    update_id: sent[0]!.update_id,
    message: { message_id: sent[0]!.message_id, from: { id: 4242, is_bot: false, first_name: 'Ada', username: 'ada_l' }, chat: { id: 4242, type: 'private', first_name: 'Ada' }, text: 'one' },
  });
  t.type((hook.received[0]!.update.message as unknown as { date: unknown }).date, 'number');
  t.equal(hook.attempts(), 5, 'two refused attempts, then three deliveries');
  const info = (await api('getWebhookInfo')).body.result as Record<string, unknown>;
  t.equal(info.last_error_message, 'Wrong response from the webhook: 503 Service Unavailable');
  t.type(info.last_error_date, 'number');
  t.equal(info.pending_update_count, 0);
});

t.test('delivery: a webhook that is down is retried (pending counted) until it listens', async (t) => {
  const port = await freePort();
  t.equal((await api('setWebhook', { url: `http://127.0.0.1:${port}/tg/alice`, secret_token: HOOK_SECRET })).status, 200);
  await client.send(BOT_ID, 77, 'while down');
  await waitUntil('a refused delivery recorded', async () => (await client.bot(BOT_ID)).webhook?.last_error_message === 'Connection refused', 5_000);
  t.equal((await client.bot(BOT_ID)).webhook?.pending_update_count, 1);
  const hook = await startWebhook(() => 200, port);
  t.teardown(() => hook.close());
  await waitUntil('delivered once the webhook listens', () => hook.received.length === 1, 5_000);
  t.equal(hook.received[0]!.update.message.text, 'while down');
  t.equal((await client.bot(BOT_ID)).webhook?.pending_update_count, 0);
  // drop_pending_updates forgets what was not delivered.
  await hook.close();
  await client.send(BOT_ID, 77, 'dropped');
  t.match(await api('setWebhook', { url: `http://127.0.0.1:${port}/tg/alice`, drop_pending_updates: true }), { status: 200 });
  t.equal((await client.bot(BOT_ID)).webhook?.pending_update_count, 0);
  await api('deleteWebhook');
});

t.test('config: TELEGRAM_API_BASE=sandbox and TELEGRAM_SANDBOX_PORT', async (t) => {
  const c = loadConfig({ TELEGRAM_API_BASE: 'sandbox' });
  t.equal(c.telegramApiBase, 'sandbox');
  t.equal(c.telegramSandboxPort, 8081);
  t.equal(loadConfig({ TELEGRAM_API_BASE: 'sandbox', TELEGRAM_SANDBOX_PORT: '0' }).telegramSandboxPort, 0);
  t.throws(() => loadConfig({ TELEGRAM_SANDBOX_PORT: '70000' }), { code: 'E_CONFIG', message: /^TELEGRAM_SANDBOX_PORT: / });
  t.throws(() => loadConfig({ TELEGRAM_API_BASE: 'sandboxx' }), { code: 'E_CONFIG', message: /^TELEGRAM_API_BASE: .*`sandbox`/ });
});

t.test('a standalone service refuses TELEGRAM_API_BASE=sandbox with one line and exit 2', async (t) => {
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'services/forwarder/main.ts')], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', TELEGRAM_API_BASE: 'sandbox', WEBHOOK_SECRET: 'a'.repeat(32), REDIS_URL: 'redis://127.0.0.1:1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => { clearTimeout(timer); resolve({ code, stderr }); });
  });
  t.equal(result.code, 2);
  t.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  t.match(result.stderr, /^forwarder: configuration error: TELEGRAM_API_BASE: sandbox runs only inside npm start/);
});
