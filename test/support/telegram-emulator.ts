/**
 * A Telegram Bot API emulator on node:http, faithful where our code depends on Telegram's behaviour
 * (status codes, error texts, webhook rules, the secret header) so tests catch what the real API would
 * reject. It also records every call and injects faults (errors, 429s, slow answers) on demand.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { BotDirectory, type StoredWebhook } from '../../lib/sandbox/bot-directory.js';
import {
  canonicalMethod, fail, parseBotPath, parseParams, sendAnswer as send, badRequest,
  type BotApiAnswer as Answer, type BotApiParams as Params,
} from '../../lib/sandbox/bot-api-wire.js';
import { readBoundedBody } from '../../lib/util/bounded-body.js';
import { networkErrorMessage, postToWebhook, wrongResponseMessage, type WebhookPostResult } from '../../lib/sandbox/webhook-delivery.js';

export type { StoredWebhook };

export interface EmulatorStartOptions {
  port?: number; host?: string;
  /** Enforce the real API's https-only webhook on ports 80/88/443/8443; off so loopback http works. */
  requireHttps?: boolean;
  /** Treat every token matching BOT_TOKEN_PATTERN as a known bot (registered on first use). */
  acceptAnyToken?: boolean;
  /** Non-Bot-API routes (the standalone main's /_emulator/*); return true once the request is answered. */
  extraRoutes?: (req: IncomingMessage, res: ServerResponse, emulator: TelegramEmulator) => boolean | Promise<boolean>;
  /** Called after each recorded call, e.g. to log it. */
  onCall?: (call: RecordedCall) => void;
}

/** `at` is the arrival time (ms since the epoch); `result` is Telegram's result of a successful call. */
export interface RecordedCall { token: string; method: string; params: Record<string, unknown>; at: number; status: number; result?: unknown }

/** description defaults to `Too Many Requests: retry after N` for 429, else the HTTP reason phrase. */
export interface FailSpec {
  status: number; error_code?: number; description?: string; retry_after?: number; migrate_to_chat_id?: number; times?: number;
}

export type DeliveryResult = WebhookPostResult;

const MAX_BODY = 10 * 1024 * 1024;

export class TelegramEmulator {
  readonly calls: RecordedCall[] = [];
  readonly url: string;
  private readonly bots: BotDirectory;
  private readonly failures = new Map<string, Array<{ answer: Answer; left: number }>>();
  private readonly delays = new Map<string, Array<{ ms: number; left: number }>>();
  private readonly sleepers = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  private readonly waiters = new Set<() => void>();
  private readonly agent = new Agent({ keepAliveTimeout: 1_000 });
  private closed = false;

  private constructor(private readonly server: Server, private readonly opts: EmulatorStartOptions) {
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    this.url = `http://${host}:${addr.port}`;
    this.bots = new BotDirectory({
      ...(opts.acceptAnyToken !== undefined ? { acceptAnyToken: opts.acceptAnyToken } : {}),
      ...(opts.requireHttps !== undefined ? { requireHttps: opts.requireHttps } : {}),
    });
  }

  static async start(opts: EmulatorStartOptions = {}): Promise<TelegramEmulator> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => { server.off('error', reject); resolve(); });
    });
    const emulator = new TelegramEmulator(server, opts);
    server.on('request', (req, res) => {
      emulator.handle(req, res).catch((err: unknown) => send(res, fail(500, `Internal Server Error: ${String(err)}`)));
    });
    return emulator;
  }

  addBot(token: string, info: { username?: string; first_name?: string } = {}): void {
    const id = token.split(':', 1)[0];
    this.bots.add(token, { first_name: info.first_name ?? 'Emulated Bot', username: info.username ?? `emulated_${id}_bot` });
  }

  /** Token of a registered bot by its public id (for the standalone main's deliver route). */
  tokenOf(botId: number): string | undefined {
    return this.bots.byId(botId)?.token;
  }

  callsTo(method: string, token?: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method && (token === undefined || c.token === token));
  }

  sentMessages(token?: string): Array<{ chat_id: number; text: string; message_id: number }> {
    return this.callsTo('sendMessage', token).filter((c) => c.status === 200).map((c) => {
      const msg = c.result as { chat: { id: number }; text: string; message_id: number };
      return { chat_id: msg.chat.id, text: msg.text, message_id: msg.message_id };
    });
  }

  /** The stored webhook including secret_token (which getWebhookInfo never reveals). */
  webhookOf(token: string): StoredWebhook | undefined {
    const hook = this.bots.get(token)?.webhook;
    return hook ? structuredClone(hook) : undefined;
  }

  /** Resolves once `predicate(calls)` holds; re-checked on every recorded call, bounded by timeoutMs. */
  waitFor(predicate: (calls: readonly RecordedCall[]) => boolean, { timeoutMs = 5_000 }: { timeoutMs?: number } = {}): Promise<RecordedCall[]> {
    if (predicate(this.calls)) return Promise.resolve([...this.calls]);
    return new Promise((resolve, reject) => {
      const check = (): void => { if (predicate(this.calls)) { cleanup(); resolve([...this.calls]); } };
      const timer = setTimeout(() => {
        cleanup();
        const seen = this.calls.map((c) => `${c.method}:${c.status}`).join(', ') || 'none';
        reject(new Error(`telegram emulator: waitFor timed out after ${timeoutMs} ms; calls so far: ${seen}`));
      }, timeoutMs);
      const cleanup = (): void => { clearTimeout(timer); this.waiters.delete(check); };
      this.waiters.add(check);
    });
  }

  failNext(method: string, spec: FailSpec): void {
    const code = spec.error_code ?? spec.status;
    const description = spec.description ??
      (spec.status === 429 ? `Too Many Requests: retry after ${spec.retry_after ?? 1}` : STATUS_CODES[spec.status] ?? 'Error');
    const parameters: Params = {};
    // Telegram always tells a 429 how long to wait.
    if (spec.retry_after !== undefined || spec.status === 429) parameters.retry_after = spec.retry_after ?? 1;
    if (spec.migrate_to_chat_id !== undefined) parameters.migrate_to_chat_id = spec.migrate_to_chat_id;
    const answer = fail(spec.status, description, Object.keys(parameters).length ? parameters : undefined);
    answer.body.error_code = code;
    queue(this.failures, method).push({ answer, left: spec.times ?? 1 });
  }

  /** Holds the next `times` answers of `method` for `ms`, then runs the call as usual (like a slow API). */
  delayNext(method: string, ms: number, times = 1): void {
    queue(this.delays, method).push({ ms, left: times });
  }

  /** Forgets calls, faults, webhooks and message counters; registered bots stay. */
  reset(): void {
    this.calls.length = 0;
    this.failures.clear();
    this.delays.clear();
    for (const bot of this.bots.values()) {
      bot.webhook = undefined;
      bot.lastError = undefined;
      bot.nextMessageId.clear();
    }
  }

  /** Acts as Telegram delivering `update` to the bot's webhook (loopback hosts only). */
  async deliverUpdate(token: string, update: unknown, { timeoutMs = 10_000 }: { timeoutMs?: number } = {}): Promise<DeliveryResult> {
    const bot = this.bots.get(token);
    if (!bot) throw new Error('deliverUpdate: unknown bot');
    const hook = bot.webhook;
    if (!hook) throw new Error(`deliverUpdate: bot ${bot.user.id} has no webhook set`);
    try {
      const result = await postToWebhook(hook, update, { dispatcher: this.agent, timeoutMs });
      // What getWebhookInfo then reports, as Telegram does.
      if (result.status < 200 || result.status > 299) this.bots.recordError(bot, wrongResponseMessage(result.status));
      return result;
    } catch (err) {
      this.bots.recordError(bot, networkErrorMessage(err));
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sleepers) { clearTimeout(s.timer); s.wake(); }
    this.sleepers.clear();
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await done;
    await this.agent.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const url = new URL(req.url ?? '/', 'http://emulator');
    const path = parseBotPath(url.pathname);
    if (!path) {
      if (this.opts.extraRoutes && (await this.opts.extraRoutes(req, res, this))) return;
      req.resume();
      return send(res, fail(404, 'Not Found'));
    }
    const raw = await readBoundedBody(req, MAX_BODY);
    if (raw === undefined) return send(res, fail(413, 'Request Entity Too Large'));
    const { token } = path;
    const bot = this.bots.find(token);
    if (!bot) return this.finish(res, at, token, path.method, {}, fail(401, 'Unauthorized'));
    const method = canonicalMethod(path.method);
    if (!method || path.extra) return this.finish(res, at, token, path.method, {}, fail(404, 'Not Found'));
    const params = parseParams(url.searchParams, String(req.headers['content-type'] ?? ''), raw);
    if (params === undefined) return this.finish(res, at, token, method, {}, badRequest("can't parse JSON object"));

    const delay = take(this.delays, method);
    if (delay !== undefined) await this.sleep(delay.ms);
    if (this.closed) return;
    const injected = take(this.failures, method);
    const answer = injected?.answer ?? this.bots.run(bot, method, params);
    this.finish(res, at, token, method, params, answer);
  }

  private finish(res: ServerResponse, at: number, token: string, method: string, params: Params, answer: Answer): void {
    const call: RecordedCall = { token, method, params, at, status: answer.status };
    if (answer.body.ok === true) call.result = answer.body.result;
    // Recorded before answering, so a client that got its answer always finds its call here.
    this.calls.push(call);
    this.opts.onCall?.(call);
    for (const check of [...this.waiters]) check();
    send(res, answer);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = { timer: setTimeout(() => { this.sleepers.delete(entry); resolve(); }, ms), wake: resolve };
      this.sleepers.add(entry);
    });
  }
}

function queue<T>(map: Map<string, T[]>, method: string): T[] {
  const key = canonicalMethod(method) ?? method;
  let q = map.get(key);
  if (!q) map.set(key, (q = []));
  return q;
}

function take<T extends { left: number }>(map: Map<string, T[]>, method: string): T | undefined {
  const q = map.get(method);
  const head = q?.[0];
  if (!q || !head) return undefined;
  head.left -= 1;
  if (head.left <= 0) q.shift();
  return head;
}
