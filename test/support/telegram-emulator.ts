/**
 * A Telegram Bot API emulator on node:http, faithful where our code depends on Telegram's behaviour
 * (status codes, error texts, webhook rules, the secret header) so tests catch what the real API would
 * reject. It also records every call and injects faults (errors, 429s, slow answers) on demand.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { BOT_TOKEN_PATTERN } from '../../lib/validate.js';

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

export interface StoredWebhook { url: string; secret_token?: string; allowed_updates?: string[]; max_connections: number }

/** description defaults to `Too Many Requests: retry after N` for 429, else the HTTP reason phrase. */
export interface FailSpec {
  status: number; error_code?: number; description?: string; retry_after?: number; migrate_to_chat_id?: number; times?: number;
}

export interface DeliveryResult { status: number; body: string; headers: Record<string, string | string[] | undefined> }

interface Bot {
  token: string;
  user: { id: number; is_bot: true; first_name: string; username: string; [k: string]: unknown };
  webhook: StoredWebhook | undefined;
  lastError: { date: number; message: string } | undefined;
  nextMessageId: Map<number, number>;
}

type Params = Record<string, unknown>;
interface Answer { status: number; body: Record<string, unknown> }

const METHODS = ['getMe', 'setWebhook', 'deleteWebhook', 'getWebhookInfo', 'sendMessage', 'getUpdates'] as const;
/** The real API matches method names case-insensitively; calls are recorded under the canonical name. */
const CANONICAL = new Map<string, string>(METHODS.map((m) => [m.toLowerCase(), m]));
const SECRET_TOKEN = /^[A-Za-z0-9_-]{1,256}$/;
const LOOSE_TOKEN = /^[0-9]{1,20}:[A-Za-z0-9_-]{1,200}$/;
const MAX_BODY = 10 * 1024 * 1024;

const ok = (result: unknown, description?: string): Answer =>
  ({ status: 200, body: description ? { ok: true, result, description } : { ok: true, result } });
const fail = (status: number, description: string, parameters?: Params): Answer =>
  ({ status, body: { ok: false, error_code: status, description, ...(parameters ? { parameters } : {}) } });
const badRequest = (what: string): Answer => fail(400, `Bad Request: ${what}`);

export class TelegramEmulator {
  readonly calls: RecordedCall[] = [];
  readonly url: string;
  private readonly bots = new Map<string, Bot>();
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
    if (!LOOSE_TOKEN.test(token)) throw new Error('addBot: token must look like <digits>:<A-Za-z0-9_->');
    const id = Number(token.split(':', 1)[0]);
    const user = {
      id, is_bot: true as const, first_name: info.first_name ?? 'Emulated Bot', username: info.username ?? `emulated_${id}_bot`,
      can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false,
    };
    this.bots.set(token, { token, user, webhook: undefined, lastError: undefined, nextMessageId: new Map() });
  }

  /** Token of a registered bot by its public id (for the standalone main's deliver route). */
  tokenOf(botId: number): string | undefined {
    for (const bot of this.bots.values()) if (bot.user.id === botId) return bot.token;
    return undefined;
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
    const target = new URL(hook.url);
    // The emulator must never post test data to a real host.
    if (!/^(localhost|127(\.\d{1,3}){3}|\[::1\])$/.test(target.hostname)) {
      throw new Error(`deliverUpdate: refusing non-loopback webhook host ${target.hostname}`);
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (hook.secret_token) headers['x-telegram-bot-api-secret-token'] = hook.secret_token;
    try {
      const res = await request(target, {
        method: 'POST', headers, body: JSON.stringify(update), dispatcher: this.agent,
        headersTimeout: timeoutMs, bodyTimeout: timeoutMs,
      });
      const body = await res.body.text();
      if (res.statusCode < 200 || res.statusCode > 299) {
        // What getWebhookInfo then reports, as Telegram does.
        bot.lastError = { date: nowS(), message: `Wrong response from the webhook: ${res.statusCode} ${STATUS_CODES[res.statusCode] ?? ''}`.trim() };
      }
      return { status: res.statusCode, body, headers: res.headers };
    } catch (err) {
      bot.lastError = { date: nowS(), message: 'Connection refused' };
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
    if (!url.pathname.startsWith('/bot')) {
      if (this.opts.extraRoutes && (await this.opts.extraRoutes(req, res, this))) return;
      req.resume();
      return send(res, fail(404, 'Not Found'));
    }
    const raw = await readBody(req);
    if (raw === undefined) return send(res, fail(413, 'Request Entity Too Large'));
    const [tokenPart = '', methodPart = '', ...extra] = url.pathname.slice(4).split('/');
    const token = safeDecode(tokenPart);
    const bot = this.botFor(token);
    if (!bot) return this.finish(res, at, token, methodPart, {}, fail(401, 'Unauthorized'));
    const method = CANONICAL.get(methodPart.toLowerCase());
    if (!method || extra.some((s) => s !== '')) return this.finish(res, at, token, methodPart, {}, fail(404, 'Not Found'));
    const params = parseParams(url.searchParams, String(req.headers['content-type'] ?? ''), raw);
    if (params === undefined) return this.finish(res, at, token, method, {}, badRequest("can't parse JSON object"));

    const delay = take(this.delays, method);
    if (delay !== undefined) await this.sleep(delay.ms);
    if (this.closed) return;
    const injected = take(this.failures, method);
    const answer = injected?.answer ?? this.run(bot, method, params);
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

  private botFor(token: string): Bot | undefined {
    const known = this.bots.get(token);
    if (known || !this.opts.acceptAnyToken || !BOT_TOKEN_PATTERN.test(token)) return known;
    this.addBot(token);
    return this.bots.get(token);
  }

  private run(bot: Bot, method: string, p: Params): Answer {
    switch (method) {
      case 'getMe': return ok(bot.user);
      case 'setWebhook': return this.setWebhook(bot, p);
      case 'deleteWebhook': {
        const had = bot.webhook !== undefined;
        bot.webhook = undefined;
        bot.lastError = undefined;
        return ok(true, had ? 'Webhook was deleted' : 'Webhook is already deleted');
      }
      case 'getWebhookInfo': {
        const info: Params = { url: bot.webhook?.url ?? '', has_custom_certificate: false, pending_update_count: 0 };
        if (bot.webhook) {
          if (bot.lastError) Object.assign(info, { last_error_date: bot.lastError.date, last_error_message: bot.lastError.message });
          info.max_connections = bot.webhook.max_connections;
          if (bot.webhook.allowed_updates) info.allowed_updates = bot.webhook.allowed_updates;
        }
        return ok(info); // never the secret_token: the real API does not reveal it either
      }
      case 'sendMessage': return this.sendMessage(bot, p);
      case 'getUpdates':
        return bot.webhook
          ? fail(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first")
          : ok([]);
      default: return fail(404, 'Not Found');
    }
  }

  private setWebhook(bot: Bot, p: Params): Answer {
    const url = str(p.url) ?? '';
    if (url === '') { // the real API treats an empty url as deleteWebhook
      const had = bot.webhook !== undefined;
      bot.webhook = undefined;
      return ok(true, had ? 'Webhook was deleted' : 'Webhook is already deleted');
    }
    let parsed: URL;
    try { parsed = new URL(url); } catch { return badRequest('bad webhook: Failed to resolve host: Name or service not known'); }
    const https = parsed.protocol === 'https:';
    if (!https && (this.opts.requireHttps || parsed.protocol !== 'http:')) return badRequest('bad webhook: An HTTPS URL must be provided for webhook');
    if (this.opts.requireHttps && !['', '80', '88', '443', '8443'].includes(parsed.port)) {
      return badRequest('bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443');
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
    return ok(true, same ? 'Webhook is already set' : 'Webhook was set');
  }

  private sendMessage(bot: Bot, p: Params): Answer {
    if (p.chat_id === undefined || p.chat_id === '') return badRequest('chat_id is empty');
    const chatId = int(p.chat_id);
    if (chatId === undefined || chatId === 0) return badRequest('chat not found'); // e.g. an @channel it has never seen
    const text = str(p.text) ?? '';
    if (text.trim() === '') return badRequest('message text is empty');
    if (text.length > 4096) return badRequest('message is too long');
    const messageId = (bot.nextMessageId.get(chatId) ?? 0) + 1;
    bot.nextMessageId.set(chatId, messageId);
    const type = chatId > 0 ? 'private' : String(chatId).startsWith('-100') ? 'supergroup' : 'group';
    const { id, is_bot, first_name, username } = bot.user;
    return ok({ message_id: messageId, from: { id, is_bot, first_name, username }, chat: { id: chatId, type }, date: nowS(), text });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = { timer: setTimeout(() => { this.sleepers.delete(entry); resolve(); }, ms), wake: resolve };
      this.sleepers.add(entry);
    });
  }
}

function send(res: ServerResponse, answer: Answer): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(answer.body);
  res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Query string, then the body (JSON or urlencoded) on top, as the real API merges them. */
function parseParams(query: URLSearchParams, contentType: string, raw: Buffer): Params | undefined {
  const params: Params = Object.fromEntries(query);
  if (raw.length === 0) return params;
  const type = contentType.split(';', 1)[0]?.trim().toLowerCase();
  if (type === 'application/json') {
    try {
      const body: unknown = JSON.parse(raw.toString('utf8'));
      if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
      return { ...params, ...(body as Params) };
    } catch {
      return undefined;
    }
  }
  if (type === 'application/x-www-form-urlencoded') return { ...params, ...Object.fromEntries(new URLSearchParams(raw.toString('utf8'))) };
  return params; // multipart (file uploads) is not emulated
}

function queue<T>(map: Map<string, T[]>, method: string): T[] {
  const key = CANONICAL.get(method.toLowerCase()) ?? method;
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

/** Form and query values arrive as strings; Telegram coerces them by the parameter's type. */
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);
const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) ? v
  : typeof v === 'string' && /^-?[0-9]{1,20}$/.test(v.trim()) ? Number(v.trim()) : undefined);
function jsonValue(v: unknown): unknown {
  try { return typeof v === 'string' ? JSON.parse(v) : v; } catch { return undefined; }
}
function safeDecode(s: string): string {
  try { return decodeURIComponent(s); } catch { return s; }
}
const nowS = (): number => Math.floor(Date.now() / 1000);
