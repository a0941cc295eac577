/**
 * A local Telegram Bot API on node:http, for trying the platform and developing agents without
 * Telegram (`TELEGRAM_API_BASE=sandbox npm start`, then `ztm chat <tenant>`). It serves the methods
 * the platform calls (`/bot<token>/<method>`: bot-directory.ts) with Telegram's answers, and plays
 * the bots' users on `/sandbox/...` (sandbox-routes.ts): what a user writes becomes a real Update
 * delivered to the bot's webhook (webhook-delivery.ts); what the bot sends, edits, deletes and
 * its chat actions (typing) are kept per chat for `ztm chat` to read (chat-history.ts).
 *
 * Any token of Telegram's shape (BOT_TOKEN_PATTERN) is a known bot, registered on first use; other
 * paths under /bot answer 404 Not Found as Telegram does. It listens on loopback only and delivers
 * to loopback webhooks only. Tokens and webhook secrets never appear in an answer or a log line.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logger.js';
import { BotDirectory } from './bot-directory.js';
import { ChatHistory } from './chat-history.js';
import { SandboxRoutes } from './sandbox-routes.js';
import { WebhookDelivery } from './webhook-delivery.js';
import { canonicalMethod, fail, parseBotPath, parseParams, sendAnswer, badRequest, type BotApiAnswer } from './bot-api-wire.js';
import { readBoundedBody } from '../util/bounded-body.js';

export interface BotApiSandboxOptions {
  /** Default 0: a free port. */
  port?: number;
  /** Default 127.0.0.1. Must be a loopback address: the sandbox has no authentication. */
  host?: string;
  log?: Logger;
  /** Webhook delivery timeout per attempt (default 10000 ms). */
  deliveryTimeoutMs?: number;
  /** Retry delays of a failed delivery: first, then doubled up to the max (defaults 250 / 5000 ms). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Bot messages kept per chat (default 1000). */
  historyPerChat?: number;
}

const MAX_BODY = 1024 * 1024;
const LOOPBACK_BIND = new Set(['127.0.0.1', '::1', 'localhost']);

export class BotApiSandbox {
  /** e.g. `http://127.0.0.1:8081`: the TELEGRAM_API_BASE of the platform's Telegram client. */
  readonly url: string;
  readonly port: number;
  private readonly directory: BotDirectory;
  private readonly delivery: WebhookDelivery;
  private readonly history: ChatHistory;
  private readonly routes: SandboxRoutes;
  private closing: Promise<void> | undefined;

  private constructor(private readonly server: Server, private readonly o: BotApiSandboxOptions) {
    const addr = server.address() as AddressInfo;
    this.port = addr.port;
    this.url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
    this.history = new ChatHistory({ ...(o.historyPerChat ? { perChat: o.historyPerChat } : {}) });
    this.directory = new BotDirectory({
      acceptAnyToken: true,
      loopbackWebhooksOnly: true,
      pendingUpdates: (bot) => this.delivery.pending(bot),
      onWebhookChange: (bot, change) => this.delivery.webhookChanged(bot, change),
      onChatEvent: (bot, event) => this.history.add(bot.user.id, event),
      // Every user message is made here (sandbox-routes.ts), so unknown message ids are truly unknown.
      knowsAllMessages: true,
    });
    this.delivery = new WebhookDelivery({
      directory: this.directory, log: o.log,
      ...(o.deliveryTimeoutMs ? { timeoutMs: o.deliveryTimeoutMs } : {}),
      ...(o.initialBackoffMs ? { initialBackoffMs: o.initialBackoffMs } : {}),
      ...(o.maxBackoffMs ? { maxBackoffMs: o.maxBackoffMs } : {}),
    });
    this.routes = new SandboxRoutes({ directory: this.directory, delivery: this.delivery, history: this.history, log: o.log });
  }

  static async start(options: BotApiSandboxOptions = {}): Promise<BotApiSandbox> {
    const host = options.host ?? '127.0.0.1';
    if (!LOOPBACK_BIND.has(host)) throw new TypeError('BotApiSandbox: host must be a loopback address (127.0.0.1, ::1, localhost)');
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const sandbox = new BotApiSandbox(server, options);
    server.on('request', (req, res) => {
      sandbox.handle(req, res).catch((err: unknown) => {
        // The error may quote a request: log its type only, answer without detail.
        options.log?.error({ error: err instanceof Error ? err.name : typeof err }, 'sandbox: request failed');
        sendAnswer(res, fail(500, 'Internal Server Error'));
      });
    });
    return sandbox;
  }

  /** Stops listening, ends long-polls and deliveries in flight. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.history.close();
      await this.delivery.close();
      this.server.closeAllConnections();
      await closed;
    })();
    return this.closing;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    if (url.pathname.startsWith('/sandbox/')) return this.routes.handle(req, res, url);
    const path = parseBotPath(url.pathname);
    if (!path) {
      req.resume();
      return sendAnswer(res, fail(404, 'Not Found'));
    }
    const bot = this.directory.find(path.token);
    const method = canonicalMethod(path.method);
    if (!bot || !method || path.extra) {
      req.resume();
      return sendAnswer(res, fail(404, 'Not Found'));
    }
    const raw = await readBoundedBody(req, MAX_BODY);
    let answer: BotApiAnswer;
    if (raw === undefined) answer = fail(413, 'Request Entity Too Large');
    else {
      const params = parseParams(url.searchParams, String(req.headers['content-type'] ?? ''), raw);
      answer = params === undefined ? badRequest("can't parse JSON object") : this.directory.run(bot, method, params);
    }
    this.o.log?.debug({ bot_id: bot.user.id, method, status: answer.status }, 'sandbox: bot api call');
    sendAnswer(res, answer);
  }
}
