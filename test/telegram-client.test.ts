/**
 * TelegramClient against the Telegram emulator on a free port, and the emulator's own faithfulness
 * (the platform's tests trust it, so it must reject what the real API rejects).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { request } from 'undici';
import { splitMessage, TelegramApiError, TelegramClient, TelegramTransportError } from '../lib/telegram-client.js';
import { TelegramEmulator } from './support/telegram-emulator.js';

const SECRET_PART = 'AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
const TOKEN = `110201543:${SECRET_PART}`;
const UNKNOWN = `999999999:${'Zz9_-'.repeat(7)}`;

const emu = await TelegramEmulator.start();
emu.addBot(TOKEN, { username: 'alice_bot', first_name: 'Alice' });
const client = new TelegramClient({ apiBase: emu.url, timeoutMs: 2_000 });
t.teardown(async () => { await client.close(); await emu.close(); });
t.beforeEach(() => emu.reset());

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try { await p; } catch (err) { return err; }
  throw new Error('expected a rejection');
}

/** Every rendering of an error a log line or an API answer could carry. */
function renderings(err: unknown): string[] {
  const e = err as Error;
  return [String(e), e.message, e.stack ?? '', JSON.stringify(e), inspect(e, { depth: 5 })];
}

async function raw(path: string, init: { method?: 'GET' | 'POST'; body?: string; type?: string } = {}) {
  const res = await request(`${emu.url}${path}`, {
    method: init.method ?? 'POST', body: init.body, headers: init.type ? { 'content-type': init.type } : {},
  });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

/** A webhook receiver that records what "Telegram" sent it. */
async function receiver(status = 200): Promise<{ url: string; got: Array<{ headers: IncomingHttpHeaders; body: string }>; server: Server }> {
  const got: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => { got.push({ headers: req.headers, body }); res.writeHead(status).end('ack'); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/tg/alice`, got, server };
}

t.test('construction validates options strictly', async (t) => {
  const bad: unknown[] = [
    undefined, {}, { apiBase: '' }, { apiBase: 'not a url' }, { apiBase: 'ftp://x' }, { apiBase: 'https://u:p@x' },
    { apiBase: 'https://x/?a=1' }, { apiBase: emu.url, timeoutMs: 0 }, { apiBase: emu.url, timeoutMs: 1.5 },
    { apiBase: emu.url, connections: 0 }, { apiBase: emu.url, timeout: 5 },
  ];
  for (const opts of bad) t.throws(() => new TelegramClient(opts as never), { code: 'E_VALIDATION' }, JSON.stringify(opts));
  const ok = new TelegramClient({ apiBase: 'https://api.telegram.org/', timeoutMs: 1, connections: 1 });
  t.equal(ok.timeoutMs, 1);
  await ok.close();
  await ok.close(); // idempotent
  const err = await rejection(ok.getMe(TOKEN));
  t.ok(err instanceof TelegramTransportError && err.kind === 'closed' && err.retryable);
});

t.test('success shapes of every method', async (t) => {
  const me = await client.getMe(TOKEN);
  t.match(me, { id: 110201543, is_bot: true, first_name: 'Alice', username: 'alice_bot' });

  const hook = await receiver();
  t.teardown(() => hook.server.close());
  t.equal(await client.setWebhook(TOKEN, { url: hook.url, secret_token: 's3cr3t_-X', allowed_updates: ['message'], max_connections: 5 }), true);
  t.same(emu.webhookOf(TOKEN), { url: hook.url, secret_token: 's3cr3t_-X', allowed_updates: ['message'], max_connections: 5 });
  const info = await client.getWebhookInfo(TOKEN);
  t.same(info, { url: hook.url, has_custom_certificate: false, pending_update_count: 0, max_connections: 5, allowed_updates: ['message'] });
  t.notMatch(JSON.stringify(info), /s3cr3t/, 'getWebhookInfo never reveals the secret');

  t.equal(await client.deleteWebhook(TOKEN, { drop_pending_updates: true }), true);
  t.same(await client.getWebhookInfo(TOKEN), { url: '', has_custom_certificate: false, pending_update_count: 0 });

  const m1 = await client.sendMessage(TOKEN, { chat_id: 42, text: 'hello' });
  const m2 = await client.sendMessage(TOKEN, { chat_id: '42', text: 'again', reply_to_message_id: m1.message_id });
  t.match(m1, { message_id: 1, chat: { id: 42, type: 'private' }, from: { id: 110201543, is_bot: true }, text: 'hello' });
  t.equal(m2.message_id, 2, 'message ids increase');
  t.type(m1.date, 'number');
  t.same(emu.sentMessages(TOKEN).map(({ chat_id, text }) => ({ chat_id, text })), [{ chat_id: 42, text: 'hello' }, { chat_id: 42, text: 'again' }]);

  t.equal(await client.call<boolean>(TOKEN, 'deleteWebhook', {}), true, 'generic call');
  t.same(emu.calls.map((c) => c.method), ['getMe', 'setWebhook', 'getWebhookInfo', 'deleteWebhook', 'getWebhookInfo', 'sendMessage', 'sendMessage', 'deleteWebhook']);
  t.equal(emu.callsTo('sendMessage', TOKEN).length, 2);
});

t.test('Telegram errors become TelegramApiError', async (t) => {
  const unauthorized = await rejection(client.getMe(UNKNOWN));
  t.ok(unauthorized instanceof TelegramApiError);
  t.match(unauthorized, { code: 'E_TELEGRAM', errorCode: 401, error_code: 401, description: 'Unauthorized', method: 'getMe', retryAfter: undefined, retryable: false });

  emu.failNext('sendMessage', { status: 429, retry_after: 7, times: 2 });
  for (let i = 0; i < 2; i++) {
    const limited = await rejection(client.sendMessage(TOKEN, { chat_id: 1, text: 'x' }));
    t.match(limited, { errorCode: 429, retryAfter: 7, description: 'Too Many Requests: retry after 7', retryable: true });
  }
  t.match(await client.sendMessage(TOKEN, { chat_id: 1, text: 'x' }), { text: 'x' }, 'fault used up after `times`');

  t.match(await rejection(client.sendMessage(TOKEN, { chat_id: 1, text: '  ' })), { errorCode: 400, description: 'Bad Request: message text is empty' });
  t.match(await rejection(client.sendMessage(TOKEN, { chat_id: 1, text: 'x'.repeat(4097) })), { errorCode: 400, description: 'Bad Request: message is too long' });
  emu.failNext('getMe', { status: 400, error_code: 400, description: 'Bad Request: group chat was upgraded to a supergroup chat', migrate_to_chat_id: -1001 });
  t.match(await rejection(client.getMe(TOKEN)), { errorCode: 400, migrateToChatId: -1001, description: /upgraded/ });
  emu.failNext('getMe', { status: 502 });
  t.match(await rejection(client.getMe(TOKEN)), { errorCode: 502, description: 'Bad Gateway', retryable: true });
});

t.test('transport failures are retryable TelegramTransportError', async (t) => {
  const gone = await TelegramEmulator.start();
  const c = new TelegramClient({ apiBase: gone.url, timeoutMs: 1_000 });
  t.teardown(() => c.close());
  await gone.close();
  const refused = await rejection(c.getMe(TOKEN));
  t.ok(refused instanceof TelegramTransportError);
  t.match(refused, { code: 'E_TELEGRAM', retryable: true, kind: 'connect', causeCode: 'ECONNREFUSED', method: 'getMe' });

  const fast = new TelegramClient({ apiBase: emu.url, timeoutMs: 150 });
  t.teardown(() => fast.close());
  // The answer comes 3 s late; without its own deadline the call would wait for it.
  emu.delayNext('getMe', 3_000);
  const started = Date.now();
  t.match(await rejection(fast.getMe(TOKEN)), { kind: 'timeout', retryable: true, message: /no answer within 150 ms/ });
  t.ok(Date.now() - started < 2_000, `gave up at its own deadline (${Date.now() - started} ms)`);
  t.match(await fast.getMe(TOKEN), { is_bot: true }, 'the next call is fine');

  // A broken proxy in front of the API: HTML pages, JSON that is not a Bot API answer, huge bodies.
  const odd = createServer((req, res) => {
    const path = req.url ?? '';
    if (path.endsWith('/getMe')) res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>');
    else if (path.endsWith('/getWebhookInfo')) res.writeHead(200).end('{"result":1}');
    else if (path.endsWith('/deleteWebhook')) res.writeHead(503).end('{"ok":false,"parameters":7}');
    else res.writeHead(200).end(Buffer.alloc(17 * 1024 * 1024, 0x20));
  });
  await new Promise<void>((r) => odd.listen(0, '127.0.0.1', r));
  t.teardown(() => odd.close());
  const proxied = new TelegramClient({ apiBase: `http://127.0.0.1:${(odd.address() as AddressInfo).port}/prefix/` });
  t.teardown(() => proxied.close());
  t.match(await rejection(proxied.getMe(TOKEN)), { kind: 'protocol', retryable: true, message: /non-JSON response \(HTTP 502\)/ });
  t.match(await rejection(proxied.getWebhookInfo(TOKEN)), { kind: 'protocol', message: /unexpected response shape \(HTTP 200\)/ });
  t.match(await rejection(proxied.deleteWebhook(TOKEN)), { errorCode: 503, description: 'HTTP 503', retryAfter: undefined });
  t.match(await rejection(proxied.sendMessage(TOKEN, { chat_id: 1, text: 'x' })), { kind: 'protocol', message: /too large/ });
  t.match(await rejection(client.call(TOKEN, 'send/../x')), { code: 'E_VALIDATION' });
});

t.test('the token never appears in an error', async (t) => {
  const gone = await TelegramEmulator.start();
  await gone.close();
  const dead = new TelegramClient({ apiBase: gone.url, timeoutMs: 500 });
  const fast = new TelegramClient({ apiBase: emu.url, timeoutMs: 50 });
  t.teardown(async () => { await dead.close(); await fast.close(); });
  emu.failNext('sendMessage', { status: 429, retry_after: 3 });
  emu.delayNext('getMe', 300);
  const errors = [
    await rejection(client.getMe(UNKNOWN)),
    await rejection(client.sendMessage(TOKEN, { chat_id: 5, text: 'hi' })),
    await rejection(client.sendMessage(TOKEN, { chat_id: 5, text: '' })),
    await rejection(dead.getMe(TOKEN)),
    await rejection(fast.getMe(TOKEN)),
    await rejection(client.getMe(`${TOKEN}/../x`)),
  ];
  for (const err of errors) {
    for (const text of renderings(err)) {
      t.notOk(text.includes(SECRET_PART) || text.includes(UNKNOWN.split(':')[1] ?? '?'), `no token in ${text.split('\n')[0]}`);
      t.notOk(text.includes('/bot'), 'no request URL');
    }
  }
  t.match(errors.at(-1), { code: 'E_VALIDATION' }, 'a malformed token is refused before any request');
});

t.test('splitMessage', async (t) => {
  t.same(splitMessage(''), []);
  t.same(splitMessage('hi'), ['hi']);
  const exact = 'a'.repeat(4096);
  t.same(splitMessage(exact), [exact]);
  t.same(splitMessage('a'.repeat(4097)).map((c) => c.length), [4096, 1]);
  const ten = 'b'.repeat(10_000);
  t.same(splitMessage(ten).map((c) => c.length), [4096, 4096, 1808]);

  const para = `${'a'.repeat(3000)}\n${'b '.repeat(1000)}`;
  const byLine = splitMessage(para);
  t.equal(byLine[0], `${'a'.repeat(3000)}\n`, 'cuts after the newline');
  const words = `${'word '.repeat(1000)}`;
  t.ok(splitMessage(words).every((c) => c.endsWith(' ')), 'no word is cut when spaces exist');
  const mixed = `${'x'.repeat(100)}\n${'y '.repeat(2100)}`;
  t.equal(splitMessage(mixed)[0], `${'x'.repeat(100)}\n`, 'newline preferred over a later space');

  const emoji = `a${'😀'.repeat(3000)}`; // 6001 UTF-16 units, a pair straddles 4096
  const chunks = splitMessage(emoji);
  t.same(chunks.map((c) => c.length), [4095, 1906]);
  for (const c of chunks) t.notOk(/[\uD800-\uDBFF]$|^[\uDC00-\uDFFF]/.test(c), 'no split surrogate pair');

  for (const text of [para, words, mixed, emoji, ten, 'z\n'.repeat(5000), '\n'.repeat(9000)]) {
    const parts = splitMessage(text);
    t.equal(parts.join(''), text, 're-joins to the original');
    t.ok(parts.every((p) => p.length > 0 && p.length <= 4096), 'non-empty chunks within the limit');
  }
  t.same(splitMessage('abc def', 4), ['abc ', 'def']);
  t.throws(() => splitMessage('x', 1), { code: 'E_VALIDATION' });
});

t.test('emulator: setWebhook rules', async (t) => {
  const bad = await rejection(client.setWebhook(TOKEN, { url: 'http://127.0.0.1:1/tg/a', secret_token: 'has space' }));
  t.match(bad, { errorCode: 400, description: 'Bad Request: secret token contains unallowed characters' });
  t.match(await rejection(client.setWebhook(TOKEN, { url: 'http://127.0.0.1:1/x', secret_token: 'a'.repeat(257) })), { errorCode: 400 });
  t.equal(await client.setWebhook(TOKEN, { url: 'http://127.0.0.1:1/x', secret_token: 'a'.repeat(256) }), true);
  t.match(await rejection(client.setWebhook(TOKEN, { url: 'ftp://x/y' })), { description: /An HTTPS URL must be provided/ });
  t.match(await rejection(client.setWebhook(TOKEN, { url: 'http://127.0.0.1:1/x', max_connections: 101 })), { errorCode: 400 });
  t.equal(emu.webhookOf(TOKEN)?.max_connections, 40, 'default max_connections, failed calls change nothing');

  const again = await raw(`/bot${TOKEN}/setWebhook`, { body: JSON.stringify({ url: 'http://127.0.0.1:1/x', secret_token: 'a'.repeat(256) }), type: 'application/json' });
  t.same(again.body, { ok: true, result: true, description: 'Webhook is already set' });
  t.match((await raw(`/bot${TOKEN}/getUpdates`)).body, { ok: false, error_code: 409, description: /^Conflict/ });
  t.same((await raw(`/bot${TOKEN}/deleteWebhook`)).body, { ok: true, result: true, description: 'Webhook was deleted' });
  t.same((await raw(`/bot${TOKEN}/deleteWebhook`)).body, { ok: true, result: true, description: 'Webhook is already deleted' });

  const strict = await TelegramEmulator.start({ requireHttps: true });
  t.teardown(() => strict.close());
  strict.addBot(TOKEN);
  const sc = new TelegramClient({ apiBase: strict.url });
  t.teardown(() => sc.close());
  t.match(await rejection(sc.setWebhook(TOKEN, { url: 'http://example.com/x' })), { description: 'Bad Request: bad webhook: An HTTPS URL must be provided for webhook' });
  t.match(await rejection(sc.setWebhook(TOKEN, { url: 'https://example.com:9999/x' })), { description: /only on ports 80, 88, 443 or 8443/ });
  t.equal(await sc.setWebhook(TOKEN, { url: 'https://example.com/tg/a' }), true);
});

t.test('emulator: routing, encodings and faults', async (t) => {
  t.same(await raw('/botnot-a-token/getMe'), { status: 401, body: { ok: false, error_code: 401, description: 'Unauthorized' } });
  t.same(await raw(`/bot${UNKNOWN}/getMe`), { status: 401, body: { ok: false, error_code: 401, description: 'Unauthorized' } });
  t.same(await raw(`/bot${TOKEN}/noSuchMethod`), { status: 404, body: { ok: false, error_code: 404, description: 'Not Found' } });
  t.equal((await raw('/elsewhere')).status, 404);
  t.equal((await raw(`/bot${TOKEN}/getme`, { method: 'GET' })).status, 200, 'method names are case-insensitive');

  const form = await raw(`/bot${TOKEN}/setWebhook`, {
    body: new URLSearchParams({ url: 'http://127.0.0.1:9/f', max_connections: '7', allowed_updates: '["message"]' }).toString(),
    type: 'application/x-www-form-urlencoded',
  });
  t.equal(form.status, 200);
  t.same(emu.webhookOf(TOKEN), { url: 'http://127.0.0.1:9/f', max_connections: 7, allowed_updates: ['message'] });
  t.match((await raw(`/bot${TOKEN}/sendMessage?chat_id=77&text=from%20query`, { method: 'GET' })).body, { ok: true, result: { chat: { id: 77 }, text: 'from query' } });
  t.equal((await raw(`/bot${TOKEN}/sendMessage`, { body: '{nope', type: 'application/json' })).status, 400);
  t.match((await raw(`/bot${TOKEN}/sendMessage`, { body: '{"text":"x"}', type: 'application/json' })).body, { description: 'Bad Request: chat_id is empty' });

  const waiting = emu.waitFor((calls) => calls.some((c) => c.method === 'sendMessage' && c.params.text === 'late'), { timeoutMs: 2_000 });
  setTimeout(() => { void client.sendMessage(TOKEN, { chat_id: 3, text: 'late' }); }, 50);
  t.ok((await waiting).length > 0);
  await t.rejects(emu.waitFor(() => false, { timeoutMs: 50 }), /waitFor timed out after 50 ms/);
});

t.test('emulator: deliverUpdate acts as Telegram', async (t) => {
  const hook = await receiver();
  t.teardown(() => hook.server.close());
  await client.setWebhook(TOKEN, { url: hook.url, secret_token: 'tenant-secret_1' });
  const update = { update_id: 10, message: { message_id: 1, date: 1, chat: { id: 5, type: 'private' }, text: 'hi' } };
  const res = await emu.deliverUpdate(TOKEN, update);
  t.match(res, { status: 200, body: 'ack' });
  t.equal(hook.got[0]?.headers['x-telegram-bot-api-secret-token'], 'tenant-secret_1');
  t.equal(hook.got[0]?.headers['content-type'], 'application/json');
  t.same(JSON.parse(hook.got[0]?.body ?? ''), update);

  await client.setWebhook(TOKEN, { url: hook.url });
  await emu.deliverUpdate(TOKEN, update);
  t.equal(hook.got[1]?.headers['x-telegram-bot-api-secret-token'], undefined, 'no header without a secret');

  const rejecting = await receiver(401);
  t.teardown(() => rejecting.server.close());
  await client.setWebhook(TOKEN, { url: rejecting.url, secret_token: 'x' });
  t.equal((await emu.deliverUpdate(TOKEN, update)).status, 401);
  t.match(await client.getWebhookInfo(TOKEN), { last_error_message: 'Wrong response from the webhook: 401 Unauthorized' });
  await client.setWebhook(TOKEN, { url: 'http://example.com/tg/a' });
  await t.rejects(emu.deliverUpdate(TOKEN, update), /non-loopback/);
});

t.test('standalone main: accepts any token, masks it, forwards deliveries', async (t) => {
  const main = fileURLToPath(new URL('./support/telegram-emulator-main.ts', import.meta.url));
  const cwd = fileURLToPath(new URL('..', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', main, '--port', '0'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { child.kill('SIGTERM'); });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  const deadline = Date.now() + 15_000;
  while (!/listening on (http:\S+)/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const base = /telegram emulator listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(out)?.[1];
  if (!base) throw new Error(`main did not start: ${out}`);
  const mc = new TelegramClient({ apiBase: base });
  t.teardown(() => mc.close());
  const hook = await receiver();
  t.teardown(() => hook.server.close());
  t.equal(await mc.setWebhook(UNKNOWN, { url: hook.url, secret_token: 'main-secret' }), true, 'any valid token is a bot');

  const calls = await request(`${base}/_emulator/calls`);
  const text = await calls.body.text();
  t.match(JSON.parse(text), [{ method: 'setWebhook', token: '999999999:[REDACTED]', status: 200 }]);
  const delivered = await request(`${base}/_emulator/deliver/999999999`, { method: 'POST', body: '{"update_id":1}' });
  t.match(await delivered.body.json(), { ok: true, result: { status: 200, body: 'ack' } });
  t.equal(hook.got[0]?.headers['x-telegram-bot-api-secret-token'], 'main-secret');
  await new Promise((r) => setTimeout(r, 100));
  for (const shown of [text, out]) {
    t.notOk(shown.includes(UNKNOWN.split(':')[1] ?? '?') || shown.includes('main-secret'), 'no token or secret printed');
  }
  t.match(out, /setWebhook bot=999999999:\[REDACTED\]/);
});
