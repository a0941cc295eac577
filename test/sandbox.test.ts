/**
 * The local Bot API sandbox (lib/sandbox/) on its own: its Bot API answers as Telegram gives them
 * (what real agents call: commands, chat actions, parse modes, edits, deletions, callback answers,
 * allowed_updates), the user routes' validation, webhook delivery (order, secret header, retries until the webhook
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

t.test('Bot API: setMyCommands / getMyCommands / deleteMyCommands, per scope and language, checked as Telegram', async (t) => {
  const commands = [{ command: '/start', description: ' Start over ' }, { command: 'new_chat2', description: 'A new conversation' }];
  t.match(await api('setMyCommands', { commands }), { status: 200, body: { ok: true, result: true } });
  t.same((await api('getMyCommands')).body.result, [{ command: 'start', description: 'Start over' }, { command: 'new_chat2', description: 'A new conversation' }], 'trimmed, leading / dropped');
  const scope = { type: 'chat', chat_id: 5 };
  t.equal((await api('setMyCommands', { commands: [{ command: 'ciao', description: 'Ciao' }], scope, language_code: 'it' })).status, 200);
  t.same((await api('getMyCommands', { scope, language_code: 'it' })).body.result, [{ command: 'ciao', description: 'Ciao' }]);
  t.same((await api('getMyCommands', { scope })).body.result, [], 'another language of the scope: nothing set');
  t.same((await api('getMyCommands', { language_code: 'it' })).body.result, [], 'the default scope in that language: nothing set');
  // Form-encoded, as many libraries send it: JSON-serialized fields.
  const form = await call('POST', `/bot${TOKEN}/getMyCommands`, `scope=${encodeURIComponent(JSON.stringify(scope))}&language_code=it`, 'application/x-www-form-urlencoded');
  t.same(form.body.result, [{ command: 'ciao', description: 'Ciao' }]);

  const refused: Array<[unknown, string]> = [
    [{ commands: [{ command: 'Start', description: 'x' }] }, 'Bad Request: BOT_COMMAND_INVALID'],
    [{ commands: [{ command: 'new-chat', description: 'x' }] }, 'Bad Request: BOT_COMMAND_INVALID'],
    [{ commands: [{ command: 'c'.repeat(33), description: 'x' }] }, 'Bad Request: command length must not exceed 32'],
    [{ commands: [{ command: ' / ', description: 'x' }] }, 'Bad Request: command must be non-empty'],
    [{ commands: [{ command: 'ok', description: '  ' }] }, 'Bad Request: command description must be non-empty'],
    [{ commands: [{ command: 'ok', description: 'd'.repeat(257) }] }, 'Bad Request: command description length must not exceed 256'],
    [{ commands: [{ command: 'ok' }] }, 'Bad Request: can\'t parse BotCommand: Can\'t find field "description"'],
    [{ commands: Array.from({ length: 101 }, (_, i) => ({ command: `c${i}`, description: 'x' })) }, 'Bad Request: BOT_COMMANDS_TOO_MUCH'],
    [{ commands: '[{"command":' }, "Bad Request: can't parse commands JSON object"],
    [{ commands: { command: 'ok', description: 'x' } }, 'Bad Request: expected an Array of BotCommand'],
    [{ commands, scope: { type: 'everyone' } }, "Bad Request: can't parse BotCommandScope: Unsupported type specified"],
    [{ commands, scope: { type: 'chat' } }, 'Bad Request: can\'t parse BotCommandScope: Can\'t find field "chat_id"'],
    [{ commands, language_code: 'EN' }, 'Bad Request: invalid language code specified'],
  ];
  for (const [params, description] of refused) {
    t.same((await api('setMyCommands', params)).body, { ok: false, error_code: 400, description }, description);
  }
  t.equal(((await api('getMyCommands')).body.result as unknown[]).length, 2, 'a refused call changes nothing');

  t.match(await api('deleteMyCommands'), { status: 200, body: { result: true } });
  t.same((await api('getMyCommands')).body.result, [], 'deleted');
  t.same((await api('getMyCommands', { scope, language_code: 'it' })).body.result, [{ command: 'ciao', description: 'Ciao' }], 'other lists stay');
  t.equal((await api('setMyCommands', { commands: [], scope, language_code: 'it' })).status, 200);
  t.same((await api('getMyCommands', { scope, language_code: 'it' })).body.result, [], 'an empty list clears it');
});

t.test('Bot API: sendChatAction takes Telegram\'s actions only, and ztm chat can see it', async (t) => {
  const chat = 3101;
  for (const action of ['typing', 'upload_photo', 'record_video', 'upload_video', 'record_voice', 'upload_voice', 'upload_document', 'choose_sticker', 'find_location', 'record_video_note', 'upload_video_note']) {
    t.same((await api('sendChatAction', { chat_id: chat, action })).body, { ok: true, result: true }, action);
  }
  t.same((await api('sendChatAction', { chat_id: chat, action: 'dancing' })).body, { ok: false, error_code: 400, description: 'Bad Request: wrong parameter action in request' });
  t.match(await api('sendChatAction', { action: 'typing' }), { status: 400, body: { description: 'Bad Request: chat_id is empty' } });
  t.match(await api('sendChatAction', { chat_id: 0 }), { body: { description: 'Bad Request: wrong parameter action in request' } }, 'the action is checked before the chat');
  t.equal((await api('sendChatAction', { chat_id: chat, action: 'record_audio' })).status, 200, 'an older name the Bot API still takes');
  t.equal((await api('sendChatAction', { chat_id: chat, action: 'TYPING', message_thread_id: 7 })).status, 200);
  const events = await client.events(BOT_ID, chat, { after: 0, timeoutS: 0 });
  t.equal(events.length, 1, 'consecutive chat actions collapse into the latest');
  t.match(events[0], { type: 'chat_action', chat_id: chat, action: 'typing', seq: 13 });
  t.same(await client.messages(BOT_ID, chat, { after: 0, timeoutS: 0 }), [], 'a chat action is not a message');
});

t.test('Bot API: sendMessage takes OpenClaw\'s fields; parse modes become text and entities, or Telegram\'s 400', async (t) => {
  const chat = 3201;
  const html = await api('sendMessage', {
    chat_id: chat, text: '<b>Hi</b> &lt;you&gt; &amp; <a href="https://example.org/x">docs</a>\n<pre><code class="language-ts">let x = 1;</code></pre>', parse_mode: 'HTML',
    link_preview_options: { is_disabled: true }, disable_notification: true, message_thread_id: 4, protect_content: false,
    reply_markup: { inline_keyboard: [[{ text: 'OK', callback_data: 'ok' }]] },
  });
  t.equal(html.status, 200, html.text);
  t.match(html.body.result, {
    message_id: 1, text: 'Hi <you> & docs\nlet x = 1;',
    entities: [
      { type: 'bold', offset: 0, length: 2 }, { type: 'text_link', offset: 11, length: 4, url: 'https://example.org/x' },
      { type: 'pre', offset: 16, length: 10, language: 'ts' },
    ],
    reply_markup: { inline_keyboard: [[{ text: 'OK', callback_data: 'ok' }]] },
  });
  const v2 = await api('sendMessage', { chat_id: chat, text: '*bold* \\_not italic\\_ ||hidden|| `x\\`y` [t](https://a.b/\\))', parse_mode: 'MarkdownV2' });
  t.match(v2.body.result, { text: 'bold _not italic_ hidden x`y t', entities: [{ type: 'bold' }, { type: 'spoiler' }, { type: 'code' }, { type: 'text_link', url: 'https://a.b/)' }] });
  t.match((await api('sendMessage', { chat_id: chat, text: '*b* _i_', parse_mode: 'markdown' })).body.result, { text: 'b i' }, 'parse_mode is case-insensitive');
  const plain = (await api('sendMessage', { chat_id: chat, text: '  <b>as is</b>  ' })).body.result as Record<string, unknown>;
  t.equal(plain.text, '<b>as is</b>', 'no parse_mode: the text as sent, trimmed as Telegram does');
  t.notOk('entities' in plain);

  const refused: Array<[Record<string, unknown>, string]> = [
    [{ text: 'a < b', parse_mode: 'HTML' }, 'Bad Request: can\'t parse entities: Unsupported start tag "" at byte offset 2'],
    [{ text: 'one<br>two', parse_mode: 'HTML' }, 'Bad Request: can\'t parse entities: Unsupported start tag "br" at byte offset 3'],
    [{ text: '<b>never closed', parse_mode: 'HTML' }, 'Bad Request: can\'t parse entities: Can\'t find end tag corresponding to start tag "b"'],
    [{ text: 'é<i>x</b>', parse_mode: 'HTML' }, 'Bad Request: can\'t parse entities: Unmatched end tag at byte offset 6, expected "</i>", found "</b>"'],
    [{ text: 'Done. Next!', parse_mode: 'MarkdownV2' }, 'Bad Request: can\'t parse entities: Character \'.\' is reserved and must be escaped with the preceding \'\\\''],
    [{ text: 'x *open', parse_mode: 'MarkdownV2' }, 'Bad Request: can\'t parse entities: Can\'t find end of Bold entity at byte offset 2'],
    [{ text: '_open', parse_mode: 'Markdown' }, 'Bad Request: can\'t parse entities: Can\'t find end of the entity starting at byte offset 0'],
    [{ text: '<b> </b>', parse_mode: 'HTML' }, 'Bad Request: text must be non-empty'],
    [{ text: 'x', parse_mode: 'BBCode' }, 'Bad Request: unsupported parse_mode'],
    [{ text: 'x', reply_markup: '{nope' }, "Bad Request: can't parse reply keyboard markup JSON object"],
    [{ text: 'x', link_preview_options: '[1]' }, 'Bad Request: object expected as link preview options'],
    [{ text: 'x', reply_parameters: { message_id: 999 } }, 'Bad Request: message to be replied not found'],
    [{ text: 'x', reply_to_message_id: 999 }, 'Bad Request: message to be replied not found'],
  ];
  for (const [params, description] of refused) {
    t.same((await api('sendMessage', { chat_id: chat, ...params })).body, { ok: false, error_code: 400, description }, description);
  }
  t.match(await api('sendMessage', { chat_id: 0, text: '<b>', parse_mode: 'HTML' }), { body: { description: /can't parse entities/ } }, 'the text is checked before the chat');
  t.equal((await api('sendMessage', { chat_id: chat, text: `<b>${'x'.repeat(4096)}</b>`, parse_mode: 'HTML' })).status, 200, 'the limit counts the text, not the markup');

  const reply = await api('sendMessage', { chat_id: chat, text: 'a reply', reply_parameters: { message_id: 1 } });
  t.match(reply.body.result, { reply_to_message: { message_id: 1, text: 'Hi <you> & docs\nlet x = 1;' } });
  t.match((await api('sendMessage', { chat_id: chat, text: 'r', reply_parameters: JSON.stringify({ message_id: 999, allow_sending_without_reply: true }) })).body, { ok: true });
  const stored = await client.messages(BOT_ID, chat, { after: 0, timeoutS: 0 });
  t.equal(stored[0]?.text, 'Hi <you> & docs\nlet x = 1;', 'the chat shows what Telegram would: text without markup');
});

t.test('Bot API: editMessageText edits the stored message; Telegram\'s refusals', async (t) => {
  const chat = 3301;
  const hook = await startWebhook(() => 200);
  t.teardown(() => hook.close());
  t.equal((await api('setWebhook', { url: hook.url })).status, 200);
  const sent = (await api('sendMessage', { chat_id: chat, text: 'draft' })).body.result as { message_id: number; date: number };
  const user = await client.send(BOT_ID, chat, 'from the user');
  const edited = await api('editMessageText', { chat_id: chat, message_id: sent.message_id, text: '<i>final</i>', parse_mode: 'HTML' });
  t.equal(edited.status, 200, edited.text);
  t.match(edited.body.result, { message_id: sent.message_id, text: 'final', entities: [{ type: 'italic', offset: 0, length: 5 }], date: sent.date, edit_date: Number });
  t.match(await client.messages(BOT_ID, chat, { after: 0, timeoutS: 0 }), [{ message_id: sent.message_id, text: 'final', edit_date: Number }], 'the chat shows the edited text');
  const events = await client.events(BOT_ID, chat, { after: 0, timeoutS: 0 });
  t.same(events.map((e) => e.type), ['message', 'edited']);
  t.match(events[1], { type: 'edited', message: { message_id: sent.message_id, text: 'final' } });

  const refused: Array<[Record<string, unknown>, string]> = [
    [{ chat_id: chat, message_id: sent.message_id, text: '<i>final</i>', parse_mode: 'HTML' },
      'Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message'],
    [{ chat_id: chat, message_id: 999, text: 'x' }, 'Bad Request: message to edit not found'],
    [{ chat_id: chat, text: 'x' }, 'Bad Request: message to edit not found'],
    [{ chat_id: chat, message_id: user.message_id, text: 'x' }, "Bad Request: message can't be edited"],
    [{ text: 'x' }, 'Bad Request: message identifier is not specified'],
    [{ inline_message_id: 'AAAA', text: 'x' }, 'Bad Request: invalid inline message identifier specified'],
    [{ chat_id: chat, message_id: sent.message_id, text: '' }, 'Bad Request: message text is empty'],
    [{ chat_id: chat, message_id: sent.message_id, text: '<x>', parse_mode: 'HTML' }, 'Bad Request: can\'t parse entities: Unsupported start tag "x" at byte offset 0'],
  ];
  for (const [params, description] of refused) {
    t.same((await api('editMessageText', params)).body, { ok: false, error_code: 400, description }, description);
  }
  t.equal((await api('editMessageText', { chat_id: chat, message_id: sent.message_id, text: 'final', parse_mode: 'HTML' })).status, 200, 'the same text without its italics is a change');
  t.equal((await api('editMessageText', { chat_id: chat, message_id: sent.message_id, text: 'final', reply_markup: { inline_keyboard: [[{ text: 'b', callback_data: 'b' }]] } })).status, 200, 'a new keyboard is a change');
  await api('deleteWebhook');
});

t.test('Bot API: deleteMessage, for the bot\'s messages and its users\'', async (t) => {
  const chat = 3401;
  const hook = await startWebhook(() => 200);
  t.teardown(() => hook.close());
  t.equal((await api('setWebhook', { url: hook.url })).status, 200);
  const sent = (await api('sendMessage', { chat_id: chat, text: 'to delete' })).body.result as { message_id: number };
  await api('sendMessage', { chat_id: chat, text: 'to keep' });
  const user = await client.send(BOT_ID, chat, 'mine');
  t.same((await api('deleteMessage', { chat_id: chat, message_id: sent.message_id })).body, { ok: true, result: true });
  t.same((await client.messages(BOT_ID, chat, { after: 0, timeoutS: 0 })).map((m) => m.text), ['to keep'], 'gone from the chat');
  t.match((await client.events(BOT_ID, chat, { after: 0, timeoutS: 0 })).at(-1), { type: 'deleted', chat_id: chat, message_id: sent.message_id });
  t.same((await api('deleteMessage', { chat_id: chat, message_id: user.message_id })).body, { ok: true, result: true }, 'a user\'s message in a private chat');
  const refused: Array<[Record<string, unknown>, string]> = [
    [{ chat_id: chat, message_id: sent.message_id }, 'Bad Request: message to delete not found'],
    [{ chat_id: chat, message_id: 999 }, 'Bad Request: message to delete not found'],
    [{ message_id: 1 }, 'Bad Request: chat identifier is not specified'],
    [{ chat_id: chat }, 'Bad Request: message identifier is not specified'],
    [{ chat_id: chat, message_id: -3 }, 'Bad Request: message identifier is not specified'],
  ];
  for (const [params, description] of refused) {
    t.same((await api('deleteMessage', params)).body, { ok: false, error_code: 400, description }, description);
  }
  t.match(await api('editMessageText', { chat_id: chat, message_id: sent.message_id, text: 'x' }), { body: { description: 'Bad Request: message to edit not found' } }, 'a deleted message cannot be edited');
  await api('deleteWebhook');
});

t.test('Bot API: answerCallbackQuery', async (t) => {
  t.same((await api('answerCallbackQuery', { callback_query_id: '4382094829384729', text: 'Done', show_alert: false })).body, { ok: true, result: true });
  for (const params of [{}, { callback_query_id: '' }, { callback_query_id: 'abc' }]) {
    t.same((await api('answerCallbackQuery', params)).body,
      { ok: false, error_code: 400, description: 'Bad Request: query is too old and response timeout expired or query ID is invalid' }, JSON.stringify(params));
  }
});

t.test('setWebhook: allowed_updates read as Telegram does, kept until changed, honoured by delivery', async (t) => {
  const hook = await startWebhook(() => 200);
  t.teardown(() => hook.close());
  const info = async () => (await api('getWebhookInfo')).body.result as { allowed_updates?: string[] };
  // OpenClaw's list (24 types), as it registers it at every start.
  const openclaw = ['message', 'edited_message', 'channel_post', 'edited_channel_post', 'inline_query', 'chosen_inline_result', 'callback_query', 'shipping_query',
    'pre_checkout_query', 'poll', 'poll_answer', 'my_chat_member', 'chat_member', 'chat_join_request', 'message_reaction', 'message_reaction_count',
    'chat_boost', 'removed_chat_boost', 'business_connection', 'business_message', 'edited_business_message', 'deleted_business_messages', 'purchased_paid_media', 'no_such_type'];
  t.match(await api('setWebhook', { url: hook.url, secret_token: HOOK_SECRET, allowed_updates: openclaw, drop_pending_updates: true }), { status: 200, body: { result: true } });
  const listed = (await info()).allowed_updates ?? [];
  t.equal(listed.length, 23, 'unknown names are ignored');
  t.same(listed.slice(0, 3), ['message', 'edited_message', 'channel_post']);
  t.ok(listed.indexOf('chat_boost') < listed.indexOf('message_reaction'), 'in Telegram\'s order, not the caller\'s');
  await client.send(BOT_ID, 3501, 'delivered');
  await waitUntil('delivered', () => hook.received.length === 1, 5_000);

  t.equal((await api('setWebhook', { url: hook.url, allowed_updates: ['CALLBACK_QUERY'] })).status, 200);
  t.same((await info()).allowed_updates, ['callback_query'], 'names are case-insensitive');
  const refused = await call('POST', `/sandbox/bots/${BOT_ID}/messages`, { chat_id: 3501, text: 'not wanted' });
  t.equal(refused.status, 409);
  t.match(refused.body.description, /does not receive "message" updates/);
  t.equal((await api('setWebhook', { url: hook.url, secret_token: HOOK_SECRET })).status, 200);
  t.same((await info()).allowed_updates, ['callback_query'], 'no allowed_updates: the previous setting stays');
  t.equal((await api('setWebhook', { url: hook.url, allowed_updates: '{oops' })).status, 200, 'a value Telegram cannot read is ignored, not refused');
  t.same((await info()).allowed_updates, ['callback_query']);
  const form = await call('POST', `/bot${TOKEN}/setWebhook`, `url=${encodeURIComponent(hook.url)}&allowed_updates=${encodeURIComponent('["message","edited_message"]')}`, 'application/x-www-form-urlencoded');
  t.equal(form.status, 200);
  t.same((await info()).allowed_updates, ['message', 'edited_message'], 'a JSON-serialized list in a form');
  t.equal((await api('setWebhook', { url: hook.url, allowed_updates: [] })).status, 200);
  t.notOk('allowed_updates' in (await info()), '[] is the default, which getWebhookInfo does not list');
  await client.send(BOT_ID, 3501, 'default again');
  await waitUntil('delivered under the default', () => hook.received.length === 2, 5_000);
  await api('deleteWebhook');
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
