/**
 * The sandbox's own routes, where it plays the user of a bot (what Telegram's apps would do), keyed
 * by the bot's public id (the digits before ':' in its token; `ztm chat` never has the token):
 *
 *   GET  /sandbox/bots/<botId>                 is the bot known, its webhook url (never the secret)
 *   POST /sandbox/bots/<botId>/messages        {chat_id, text, from?}: a user writes to the bot;
 *        202 {update_id, message_id, seq} once the Update is queued for the webhook (seq: the chat's
 *        last event so far); 409 without a webhook, or when its allowed_updates exclude "message"
 *   GET  /sandbox/bots/<botId>/messages?chat_id=N&after=<message_id>&timeout=<s, max 30>
 *        what the bot sent to that chat after `after` (as edited since), long-polling up to
 *        `timeout` for the first
 *   GET  /sandbox/bots/<botId>/events?chat_id=N&after=<seq>&timeout=<s, max 30>
 *        what the bot did in that chat after event `after`: {seq, date, type: message | edited |
 *        deleted | chat_action, ...}, long-polling like /messages
 *
 * Every input is validated (400 with a one-line description); answers use the Bot API's shapes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../logger.js';
import type { BotDirectory, KnownBot } from './bot-directory.js';
import { MAX_MESSAGE_LENGTH } from './bot-directory.js';
import type { ChatHistory } from './chat-history.js';
import type { WebhookDelivery } from './webhook-delivery.js';
import { badRequest, fail, int, nowS, ok, parseJsonObject, sendAnswer, type BotApiAnswer, type BotApiParams } from './bot-api-wire.js';
import { readBoundedBody } from '../util/bounded-body.js';

export const SANDBOX_MAX_POLL_S = 30;
const MAX_BODY = 64 * 1024;
/** Telegram's user ids fit in 52 bits. */
const MAX_USER_ID = 2 ** 52;
const ROUTE = /^\/sandbox\/bots\/([^/]*)(\/messages|\/events)?\/?$/;
const BOT_ID = /^[0-9]{1,20}$/;
const USERNAME = /^[A-Za-z0-9_]{1,32}$/;

export interface SandboxRoutesOptions {
  directory: BotDirectory;
  delivery: WebhookDelivery;
  history: ChatHistory;
  log?: Logger | undefined;
}

interface SandboxUser {
  id: number;
  is_bot: false;
  first_name: string;
  last_name?: string;
  username?: string;
}

export class SandboxRoutes {
  /** Next update_id per bot. */
  private readonly updateIds = new Map<number, number>();

  constructor(private readonly o: SandboxRoutesOptions) {}

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const match = ROUTE.exec(url.pathname);
    if (!match) return this.answer(req, res, fail(404, 'Not Found'));
    const rawId = match[1] ?? '';
    if (!BOT_ID.test(rawId)) return this.answer(req, res, badRequest('bot id must be the digits before ":" in the bot token'));
    const botId = Number(rawId);
    const sub = match[2];
    const allowed = sub === '/messages' ? ['GET', 'POST'] : ['GET'];
    if (!allowed.includes(req.method ?? '')) {
      res.setHeader('allow', allowed.join(', '));
      return this.answer(req, res, fail(405, 'Method Not Allowed'));
    }
    if (sub === undefined) return this.answer(req, res, ok(this.describe(botId)));
    if (req.method === 'POST') return sendAnswer(res, await this.userWrites(req, botId));
    return sendAnswer(res, await this.botActivity(req, res, url.searchParams, botId, sub === '/events'));
  }

  private answer(req: IncomingMessage, res: ServerResponse, answer: BotApiAnswer): void {
    req.resume();
    sendAnswer(res, answer);
  }

  private describe(botId: number): BotApiParams {
    const bot = this.o.directory.byId(botId);
    if (!bot) return { bot_id: botId, known: false, webhook: null };
    const info = this.o.directory.webhookInfo(bot);
    const webhook = bot.webhook ? {
      url: bot.webhook.url,
      pending_update_count: info.pending_update_count,
      ...(info.last_error_date !== undefined ? { last_error_date: info.last_error_date, last_error_message: info.last_error_message } : {}),
    } : null;
    return { bot_id: botId, known: true, username: bot.user.username, webhook };
  }

  /** The sandbox's user sends `text` to the bot: a real Update, queued for the bot's webhook. */
  private async userWrites(req: IncomingMessage, botId: number): Promise<BotApiAnswer> {
    const raw = await readBoundedBody(req, MAX_BODY);
    if (raw === undefined) return fail(413, 'Request Entity Too Large');
    const body = parseJsonObject(raw);
    if (!body) return badRequest('the body must be a JSON object {"chat_id": <user id>, "text": "...", "from": {...}}');
    const unknown = Object.keys(body).find((k) => !['chat_id', 'text', 'from'].includes(k));
    if (unknown !== undefined) return badRequest(`unknown field ${JSON.stringify(unknown.slice(0, 40))}: expected chat_id, text, from`);
    const chatId = positiveId(body.chat_id);
    if (chatId === undefined) return badRequest(`chat_id must be a whole number from 1 to ${MAX_USER_ID} (the user's id in a private chat)`);
    const text = body.text;
    if (typeof text !== 'string' || text.trim() === '' || text.length > MAX_MESSAGE_LENGTH) {
      return badRequest(`text must be a string of 1 to ${MAX_MESSAGE_LENGTH} characters, not only spaces`);
    }
    const from = userOf(chatId, body.from);
    if (typeof from === 'string') return badRequest(from);
    const bot = this.o.directory.byId(botId);
    if (!bot) return fail(404, `Not Found: no bot with id ${botId} has called the sandbox yet`);
    if (!bot.webhook) return fail(409, `Conflict: bot ${botId} has no webhook set: register it (ztm webhook register <tenant>)`);
    // Telegram would not deliver it: say so rather than let the user wait for an answer.
    if (!this.o.directory.receives(bot, 'message')) {
      return fail(409, `Conflict: bot ${botId} does not receive "message" updates: its webhook's allowed_updates are ${JSON.stringify(bot.allowedUpdates)}`);
    }
    const seq = this.o.history.lastSeq(botId, chatId);
    const update = this.updateFor(bot, from, text);
    if (!this.o.delivery.enqueue(bot, update)) {
      return fail(429, `Too Many Requests: too many updates are pending for bot ${botId}`, { retry_after: 1 });
    }
    this.o.directory.receive(bot, update.message);
    this.o.log?.debug({ bot_id: botId, chat_id: chatId, update_id: update.update_id }, 'sandbox: user message queued');
    return { status: 202, body: { ok: true, result: { update_id: update.update_id, message_id: update.message.message_id, seq } } };
  }

  /** GET /messages (by message id) or /events (by seq): the same parameters, long-polled alike. */
  private async botActivity(req: IncomingMessage, res: ServerResponse, query: URLSearchParams, botId: number, events: boolean): Promise<BotApiAnswer> {
    req.resume();
    const unknown = [...query.keys()].find((k) => !['chat_id', 'after', 'timeout'].includes(k));
    if (unknown !== undefined) return badRequest(`unknown parameter ${JSON.stringify(unknown.slice(0, 40))}: expected chat_id, after, timeout`);
    const chatId = positiveId(query.get('chat_id') ?? undefined);
    if (chatId === undefined) return badRequest(`chat_id must be a whole number from 1 to ${MAX_USER_ID}`);
    const after = query.has('after') ? int(query.get('after')) : 0;
    if (after === undefined || after < 0) return badRequest(`after must be ${events ? 'an event seq' : 'a message_id'}: a whole number, 0 or more`);
    const timeout = query.has('timeout') ? int(query.get('timeout')) : 0;
    if (timeout === undefined || timeout < 0 || timeout > SANDBOX_MAX_POLL_S) return badRequest(`timeout must be a whole number of seconds from 0 to ${SANDBOX_MAX_POLL_S}`);
    if (!this.o.directory.byId(botId)) return fail(404, `Not Found: no bot with id ${botId} has called the sandbox yet`);
    // A client that goes away ends its wait, so abandoned long-polls hold nothing.
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    const ms = timeout * 1000;
    return ok(await (events ? this.o.history.waitEvents(botId, chatId, after, ms, gone.signal) : this.o.history.wait(botId, chatId, after, ms, gone.signal)));
  }

  private updateFor(bot: KnownBot, from: SandboxUser, text: string) {
    // Starts at the clock (ms), so ids stay increasing across restarts of the sandbox: the platform
    // remembers update ids for a day and would drop a reused one as a duplicate.
    const updateId = this.updateIds.get(bot.user.id) ?? Date.now();
    this.updateIds.set(bot.user.id, updateId + 1);
    const { is_bot: _isBot, ...chatName } = from;
    return {
      update_id: updateId,
      message: {
        message_id: this.o.directory.nextMessageId(bot, from.id),
        from,
        chat: { ...chatName, type: 'private' as const },
        date: nowS(),
        text,
      },
    };
  }
}

function positiveId(v: unknown): number | undefined {
  const n = int(v);
  return n !== undefined && n >= 1 && n <= MAX_USER_ID ? n : undefined;
}

/** The user of a private chat (id = chat id), or a one-line reason why `from` is not acceptable. */
function userOf(chatId: number, from: unknown): SandboxUser | string {
  const user: SandboxUser = { id: chatId, is_bot: false, first_name: 'Sandbox' };
  if (from === undefined) return user;
  if (from === null || typeof from !== 'object' || Array.isArray(from)) return 'from must be an object {"first_name", "last_name", "username"}';
  for (const [k, v] of Object.entries(from as Record<string, unknown>)) {
    if (k === 'first_name' || k === 'last_name') {
      if (typeof v !== 'string' || v.trim() === '' || v.length > 64) return `from.${k} must be a string of 1 to 64 characters`;
      user[k] = v;
    } else if (k === 'username') {
      if (typeof v !== 'string' || !USERNAME.test(v)) return 'from.username must be 1 to 32 characters of A-Z a-z 0-9 _';
      user.username = v;
    } else {
      return `unknown field from.${k.slice(0, 40)}: expected first_name, last_name, username`;
    }
  }
  return user;
}
