/**
 * The bots a local Bot API server knows and what Telegram does for each method the platform calls:
 * getMe, setWebhook, deleteWebhook, getWebhookInfo, sendMessage, getUpdates. Pure state and rules,
 * no I/O: the sandbox (bot-api-sandbox.ts) and the test emulator serve HTTP around it.
 *
 * Faithful where the platform depends on Telegram's behaviour: the status codes and descriptions,
 * webhook rules (http(s) URL, secret alphabet, max_connections, an empty url deletes), the secret
 * never revealed by getWebhookInfo, message text 1..4096 characters, per-chat message ids.
 */
import { BOT_TOKEN_PATTERN } from '../validate.js';
import { badRequest, fail, int, jsonValue, nowS, ok, str, type BotApiAnswer, type BotApiMethod, type BotApiParams } from './bot-api-wire.js';

export interface BotUser {
  id: number;
  is_bot: true;
  first_name: string;
  username: string;
  [k: string]: unknown;
}

export interface StoredWebhook {
  url: string;
  secret_token?: string;
  allowed_updates?: string[];
  max_connections: number;
}

export interface KnownBot {
  /** Secret: never put it in an answer, an error or a log line. */
  readonly token: string;
  readonly user: BotUser;
  webhook: StoredWebhook | undefined;
  lastError: { date: number; message: string } | undefined;
  /** Next message id per chat (Telegram numbers a private chat's messages in one sequence). */
  readonly nextMessageId: Map<number, number>;
}

/** What sendMessage answered: a Telegram Message. */
export interface SentMessage {
  message_id: number;
  from: { id: number; is_bot: true; first_name: string; username: string };
  chat: { id: number; type: 'private' | 'group' | 'supergroup' };
  date: number;
  text: string;
}

export interface BotDirectoryOptions {
  /** Every token matching BOT_TOKEN_PATTERN is a known bot, registered on first use. */
  acceptAnyToken?: boolean;
  /** The real API's https-only webhooks on ports 80/88/443/8443; off so loopback http works. */
  requireHttps?: boolean;
  /** Refuse webhook URLs whose host is not this machine (the sandbox never posts elsewhere). */
  loopbackWebhooksOnly?: boolean;
  /** getWebhookInfo's pending_update_count (0 when not given). */
  pendingUpdates?: (bot: KnownBot) => number;
  /** After a webhook was set, changed or deleted; `dropPending` from drop_pending_updates. */
  onWebhookChange?: (bot: KnownBot, change: { dropPending: boolean }) => void;
  /** After sendMessage succeeded. */
  onSent?: (bot: KnownBot, message: SentMessage) => void;
}

const SECRET_TOKEN = /^[A-Za-z0-9_-]{1,256}$/;
const LOOSE_TOKEN = /^[0-9]{1,20}:[A-Za-z0-9_-]{1,200}$/;
const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;
export const MAX_MESSAGE_LENGTH = 4096;

/** True for localhost, 127.0.0.0/8 and [::1]: hosts a local Bot API server may post to. */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOST.test(hostname);
}

export class BotDirectory {
  private readonly bots = new Map<string, KnownBot>();

  constructor(private readonly opts: BotDirectoryOptions = {}) {}

  add(token: string, info: { username?: string; first_name?: string } = {}): KnownBot {
    if (!LOOSE_TOKEN.test(token)) throw new TypeError('BotDirectory.add: token must look like <digits>:<A-Za-z0-9_->');
    const id = Number(token.split(':', 1)[0]);
    const user: BotUser = {
      id, is_bot: true, first_name: info.first_name ?? 'Sandbox Bot', username: info.username ?? `sandbox_${id}_bot`,
      can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false,
    };
    const bot: KnownBot = { token, user, webhook: undefined, lastError: undefined, nextMessageId: new Map() };
    this.bots.set(token, bot);
    return bot;
  }

  /** The bot behind `token` if it is registered (never registers one). */
  get(token: string): KnownBot | undefined {
    return this.bots.get(token);
  }

  /** The bot behind `token`, registering it first when any valid token is accepted. */
  find(token: string): KnownBot | undefined {
    const known = this.bots.get(token);
    if (known || !this.opts.acceptAnyToken || !BOT_TOKEN_PATTERN.test(token)) return known;
    return this.add(token);
  }

  /** A known bot by its public id (the digits before ':'). */
  byId(botId: number): KnownBot | undefined {
    for (const bot of this.bots.values()) if (bot.user.id === botId) return bot;
    return undefined;
  }

  values(): IterableIterator<KnownBot> {
    return this.bots.values();
  }

  /** Allocates the next message id of a chat (shared by the user's and the bot's messages). */
  nextMessageId(bot: KnownBot, chatId: number): number {
    const id = (bot.nextMessageId.get(chatId) ?? 0) + 1;
    bot.nextMessageId.set(chatId, id);
    return id;
  }

  /** What getWebhookInfo reports as the last delivery error. */
  recordError(bot: KnownBot, message: string): void {
    bot.lastError = { date: nowS(), message };
  }

  run(bot: KnownBot, method: BotApiMethod, p: BotApiParams): BotApiAnswer {
    switch (method) {
      case 'getMe': return ok(bot.user);
      case 'setWebhook': return this.setWebhook(bot, p);
      case 'deleteWebhook': return this.deleteWebhook(bot, p);
      case 'getWebhookInfo': return ok(this.webhookInfo(bot));
      case 'sendMessage': return this.sendMessage(bot, p);
      case 'getUpdates':
        return bot.webhook
          ? fail(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first")
          : ok([]);
    }
  }

  /** getWebhookInfo's result: never the secret_token (the real API does not reveal it either). */
  webhookInfo(bot: KnownBot): BotApiParams {
    const info: BotApiParams = { url: bot.webhook?.url ?? '', has_custom_certificate: false, pending_update_count: this.opts.pendingUpdates?.(bot) ?? 0 };
    if (bot.webhook) {
      if (bot.lastError) Object.assign(info, { last_error_date: bot.lastError.date, last_error_message: bot.lastError.message });
      info.max_connections = bot.webhook.max_connections;
      if (bot.webhook.allowed_updates) info.allowed_updates = bot.webhook.allowed_updates;
    }
    return info;
  }

  private deleteWebhook(bot: KnownBot, p: BotApiParams): BotApiAnswer {
    const had = bot.webhook !== undefined;
    bot.webhook = undefined;
    bot.lastError = undefined;
    this.opts.onWebhookChange?.(bot, { dropPending: truthy(p.drop_pending_updates) });
    return ok(true, had ? 'Webhook was deleted' : 'Webhook is already deleted');
  }

  private setWebhook(bot: KnownBot, p: BotApiParams): BotApiAnswer {
    const url = str(p.url) ?? '';
    if (url === '') return this.deleteWebhook(bot, p); // the real API treats an empty url as deleteWebhook
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return badRequest('bad webhook: Failed to resolve host: Name or service not known');
    }
    const https = parsed.protocol === 'https:';
    if (!https && (this.opts.requireHttps || parsed.protocol !== 'http:')) return badRequest('bad webhook: An HTTPS URL must be provided for webhook');
    if (this.opts.requireHttps && !['', '80', '88', '443', '8443'].includes(parsed.port)) {
      return badRequest('bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443');
    }
    if (this.opts.loopbackWebhooksOnly && !isLoopbackHost(parsed.hostname)) {
      return badRequest('bad webhook: the sandbox delivers to this machine only (localhost, 127.0.0.1, [::1])');
    }
    const secret = str(p.secret_token) ?? '';
    if (secret !== '' && !SECRET_TOKEN.test(secret)) return badRequest('secret token contains unallowed characters');
    const maxConn = p.max_connections === undefined ? 40 : int(p.max_connections);
    // Stricter than strictly known of Telegram: an out-of-range value is a caller bug worth surfacing.
    if (maxConn === undefined || maxConn < 1 || maxConn > 100) return badRequest('max_connections must be between 1 and 100');
    const allowed = p.allowed_updates === undefined ? undefined : jsonValue(p.allowed_updates);
    if (p.allowed_updates !== undefined && !(Array.isArray(allowed) && allowed.every((u) => typeof u === 'string'))) {
      return badRequest("can't parse allowed updates");
    }
    const hook: StoredWebhook = { url, max_connections: maxConn };
    if (secret) hook.secret_token = secret;
    if (allowed) hook.allowed_updates = allowed as string[];
    const same = JSON.stringify(bot.webhook) === JSON.stringify(hook);
    if (!same) bot.lastError = undefined;
    bot.webhook = hook;
    this.opts.onWebhookChange?.(bot, { dropPending: truthy(p.drop_pending_updates) });
    return ok(true, same ? 'Webhook is already set' : 'Webhook was set');
  }

  private sendMessage(bot: KnownBot, p: BotApiParams): BotApiAnswer {
    if (p.chat_id === undefined || p.chat_id === '') return badRequest('chat_id is empty');
    const chatId = int(p.chat_id);
    if (chatId === undefined || chatId === 0) return badRequest('chat not found'); // e.g. an @channel it has never seen
    const text = str(p.text) ?? '';
    if (text.trim() === '') return badRequest('message text is empty');
    if (text.length > MAX_MESSAGE_LENGTH) return badRequest('message is too long');
    const type = chatId > 0 ? 'private' : String(chatId).startsWith('-100') ? 'supergroup' : 'group';
    const { id, is_bot, first_name, username } = bot.user;
    const message: SentMessage = {
      message_id: this.nextMessageId(bot, chatId), from: { id, is_bot, first_name, username }, chat: { id: chatId, type }, date: nowS(), text,
    };
    this.opts.onSent?.(bot, message);
    return ok(message);
  }
}

const truthy = (v: unknown): boolean => v === true || v === 'true' || v === '1' || v === 1;
