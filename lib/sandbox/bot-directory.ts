/**
 * The bots a local Bot API server knows and what Telegram does for each method it serves: getMe,
 * the webhook methods, getUpdates, the message methods (bot-messages.ts) and the command lists
 * (bot-commands.ts). Pure state and rules, no I/O: the sandbox (bot-api-sandbox.ts) and the test
 * emulator serve HTTP around it.
 *
 * Faithful where bots depend on Telegram's behaviour: the status codes and descriptions,
 * webhook rules (http(s) URL, secret alphabet, max_connections, an empty url deletes,
 * allowed_updates kept until changed), the secret never revealed by getWebhookInfo, message text
 * rules and parse modes, per-chat message ids.
 */
import { BOT_TOKEN_PATTERN } from '../validate.js';
import { allowedUpdatesAfter, receives } from './allowed-updates.js';
import { badRequest, fail, int, nowS, ok, str, type BotApiAnswer, type BotApiMethod, type BotApiParams } from './bot-api-wire.js';
import { deleteMyCommands, getMyCommands, setMyCommands, type CommandLists } from './bot-commands.js';
import { answerCallbackQuery, deleteMessage, editMessageText, sendChatAction, sendMessage, truthy, type MessageContext } from './bot-messages.js';
import { MessageStore, type ChatEvent, type ChatMessage, type SentMessage } from './chat-messages.js';

export type { ChatEvent, ChatMessage, SentMessage };
export { MAX_MESSAGE_LENGTH } from './telegram-markup.js';

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
  /** setWebhook's allowed_updates, kept by Telegram until changed (undefined: the default). */
  allowedUpdates: string[] | undefined;
  /** setMyCommands' lists by scope and language. */
  readonly commands: CommandLists;
  /** Messages of its chats, for edits, deletions and replies. */
  readonly messages: MessageStore;
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
  /** After a message was sent, edited or deleted, or a chat action sent, in a chat of the bot. */
  onChatEvent?: (bot: KnownBot, event: ChatEvent) => void;
  /**
   * Every user message reaches the bot through this server (the sandbox records them with
   * `receive`), so replies to and deletions of unknown messages fail as on Telegram. Off for an
   * emulator that is handed updates it did not make: unknown ids are then taken on trust.
   */
  knowsAllMessages?: boolean;
}

const SECRET_TOKEN = /^[A-Za-z0-9_-]{1,256}$/;
const LOOSE_TOKEN = /^[0-9]{1,20}:[A-Za-z0-9_-]{1,200}$/;
const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

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
    const bot: KnownBot = {
      token, user, webhook: undefined, lastError: undefined, nextMessageId: new Map(), allowedUpdates: undefined, commands: new Map(), messages: new MessageStore(),
    };
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

  /** A user's message as the server delivers it to the bot: kept so the bot can reply to it or delete it. */
  receive(bot: KnownBot, message: ChatMessage): void {
    bot.messages.put(message);
  }

  /** Whether the bot gets updates of `type` (e.g. "message") by its allowed_updates. */
  receives(bot: KnownBot, type: string): boolean {
    return receives(bot.allowedUpdates, type);
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
      case 'sendMessage': return sendMessage(this.context(bot), p);
      case 'editMessageText': return editMessageText(this.context(bot), p);
      case 'deleteMessage': return deleteMessage(this.context(bot), p);
      case 'sendChatAction': return sendChatAction(this.context(bot), p);
      case 'answerCallbackQuery': return answerCallbackQuery(p);
      case 'setMyCommands': return setMyCommands(bot.commands, p);
      case 'getMyCommands': return getMyCommands(bot.commands, p);
      case 'deleteMyCommands': return deleteMyCommands(bot.commands, p);
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
    // Like Telegram: a value it cannot use is ignored, and no value keeps the previous setting.
    const allowed = allowedUpdatesAfter(p.allowed_updates, bot.allowedUpdates);
    bot.allowedUpdates = allowed;
    const hook: StoredWebhook = { url, max_connections: maxConn };
    if (secret) hook.secret_token = secret;
    if (allowed) hook.allowed_updates = allowed;
    const same = JSON.stringify(bot.webhook) === JSON.stringify(hook);
    if (!same) bot.lastError = undefined;
    bot.webhook = hook;
    this.opts.onWebhookChange?.(bot, { dropPending: truthy(p.drop_pending_updates) });
    return ok(true, same ? 'Webhook is already set' : 'Webhook was set');
  }

  private context(bot: KnownBot): MessageContext {
    return {
      bot, store: bot.messages, knowsAllMessages: this.opts.knowsAllMessages ?? false,
      nextMessageId: (chatId) => this.nextMessageId(bot, chatId),
      emit: (event) => this.opts.onChatEvent?.(bot, event),
    };
  }
}
