/**
 * Telegram Bot API client on undici. Bot tokens are per tenant, so the token is an argument of every
 * call rather than client state: one client (one keep-alive pool) serves every tenant.
 *
 * Errors never carry the token or the request URL (the URL contains the token): only the method name,
 * Telegram's own error_code/description, and every message passes through redactSecrets.
 */
import { Pool } from 'undici';
import { ValidationError, ZtmError } from './errors.js';
import { redactSecrets } from './redact.js';

export interface TelegramClientOptions {
  /** e.g. `https://api.telegram.org`; a path prefix is kept (for proxies), query/fragment/credentials are refused. */
  apiBase: string;
  /** Whole-call deadline (connect + headers + body), default 10000 ms. */
  timeoutMs?: number;
  /** Keep-alive sockets to the API origin, default 32. */
  connections?: number;
}

export interface TelegramUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  username?: string;
  [key: string]: unknown;
}

export interface TelegramChat {
  id: number;
  type: 'private' | 'group' | 'supergroup' | 'channel';
  [key: string]: unknown;
}

export interface TelegramMessage {
  message_id: number;
  date: number;
  chat: TelegramChat;
  from?: TelegramUser;
  text?: string;
  [key: string]: unknown;
}

export interface WebhookInfo {
  url: string;
  has_custom_certificate: boolean;
  pending_update_count: number;
  ip_address?: string;
  last_error_date?: number;
  last_error_message?: string;
  max_connections?: number;
  allowed_updates?: string[];
}

export interface SetWebhookParams {
  url: string;
  secret_token?: string;
  allowed_updates?: string[];
  max_connections?: number;
  drop_pending_updates?: boolean;
  ip_address?: string;
}

export interface SendMessageParams {
  chat_id: number | string;
  text: string;
  reply_to_message_id?: number;
  parse_mode?: 'HTML' | 'Markdown' | 'MarkdownV2';
  disable_notification?: boolean;
  message_thread_id?: number;
  /** Other Bot API fields (reply_parameters, link_preview_options, reply_markup, ...) pass through as-is. */
  [key: string]: unknown;
}

/** Telegram answered `ok:false`. Callers switch on errorCode (401 bad token, 429 slow down, ...). */
export class TelegramApiError extends ZtmError {
  readonly method: string;
  readonly errorCode: number;
  readonly description: string;
  /** Seconds to wait, from parameters.retry_after (429 only). */
  readonly retryAfter: number | undefined;
  /** A group upgraded to a supergroup: resend to this chat id. */
  readonly migrateToChatId: number | undefined;

  constructor(method: string, errorCode: number, description: string, parameters?: { retry_after?: unknown; migrate_to_chat_id?: unknown }) {
    const desc = redactSecrets(description);
    super('E_TELEGRAM', redactSecrets(`telegram ${method} failed: ${errorCode} ${desc}`));
    this.method = method;
    this.errorCode = errorCode;
    this.description = desc;
    const ra = parameters?.retry_after;
    this.retryAfter = typeof ra === 'number' && Number.isFinite(ra) && ra >= 0 ? ra : undefined;
    const mig = parameters?.migrate_to_chat_id;
    this.migrateToChatId = typeof mig === 'number' && Number.isInteger(mig) ? mig : undefined;
  }

  /** Telegram's own field name, for code written against the raw API. */
  get error_code(): number {
    return this.errorCode;
  }

  /** 429 and 5xx are worth retrying (after retryAfter for 429); other 4xx will fail again. */
  get retryable(): boolean {
    return this.errorCode === 429 || this.errorCode >= 500;
  }
}

export type TelegramTransportKind = 'connect' | 'timeout' | 'protocol' | 'closed';

/** No usable answer from Telegram: the call may or may not have happened, so it is retryable. */
export class TelegramTransportError extends ZtmError {
  readonly method: string;
  readonly retryable = true as const;
  readonly kind: TelegramTransportKind;
  /** The low-level code (ECONNREFUSED, UND_ERR_SOCKET, ...) for logs and metrics; never a URL. */
  readonly causeCode: string | undefined;

  constructor(method: string, kind: TelegramTransportKind, detail: string, causeCode?: string) {
    super('E_TELEGRAM', redactSecrets(`telegram ${method} transport error (${kind}): ${detail}`));
    this.method = method;
    this.kind = kind;
    this.causeCode = causeCode;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_CONNECTIONS = 32;
const OPTION_KEYS: ReadonlySet<string> = new Set(['apiBase', 'timeoutMs', 'connections']);
/** Loose on purpose (tests use short tokens); its job is to keep '/', '?', '#' out of the path. */
const TOKEN_SHAPE = /^[0-9]{1,20}:[A-Za-z0-9_-]{1,200}$/;
const METHOD_SHAPE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
/** Bot API answers are small; a cap stops a misbehaving proxy from filling memory. */
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export class TelegramClient {
  readonly timeoutMs: number;
  private readonly pool: Pool;
  private readonly basePath: string;
  private closed = false;

  constructor(options: TelegramClientOptions) {
    if (options === null || typeof options !== 'object') throw new ValidationError('telegram client: options object required');
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) throw new ValidationError(`telegram client: unknown option ${JSON.stringify(key.slice(0, 40))}`);
    }
    const base = parseApiBase(options.apiBase);
    this.timeoutMs = intOption('timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS, 1, 600_000);
    const connections = intOption('connections', options.connections, DEFAULT_CONNECTIONS, 1, 1024);
    this.basePath = base.pathname.replace(/\/+$/, '');
    this.pool = new Pool(base.origin, {
      connections,
      keepAliveTimeout: 30_000,
      connect: { timeout: this.timeoutMs },
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
  }

  getMe(token: string): Promise<TelegramUser> {
    return this.call<TelegramUser>(token, 'getMe', {});
  }

  setWebhook(token: string, params: SetWebhookParams): Promise<true> {
    return this.call<true>(token, 'setWebhook', params);
  }

  deleteWebhook(token: string, params: { drop_pending_updates?: boolean } = {}): Promise<true> {
    return this.call<true>(token, 'deleteWebhook', params);
  }

  getWebhookInfo(token: string): Promise<WebhookInfo> {
    return this.call<WebhookInfo>(token, 'getWebhookInfo', {});
  }

  sendMessage(token: string, params: SendMessageParams): Promise<TelegramMessage> {
    return this.call<TelegramMessage>(token, 'sendMessage', params);
  }

  /** "typing…" and the like: shown by clients for about 5 s or until the bot's next message. */
  sendChatAction(token: string, params: { chat_id: number | string; action: 'typing'; message_thread_id?: number }): Promise<true> {
    return this.call<true>(token, 'sendChatAction', params);
  }

  /** Any Bot API method; the result is Telegram's `result`, typed by the caller. */
  async call<T>(token: string, method: string, params: object = {}): Promise<T> {
    if (!METHOD_SHAPE.test(method)) throw new ValidationError('telegram client: invalid method name');
    // Never echo the token: a near-miss is still a secret.
    if (typeof token !== 'string' || !TOKEN_SHAPE.test(token)) throw new ValidationError(`telegram ${method}: invalid bot token`);
    if (this.closed) throw new TelegramTransportError(method, 'closed', 'client is closed');

    const ac = new AbortController();
    let timedOut = false;
    // One deadline for the whole call; undici's per-phase timeouts alone would allow connect+headers+body.
    const timer = setTimeout(() => { timedOut = true; ac.abort(); }, this.timeoutMs);
    const exchange = this.pool.request({
      method: 'POST',
      path: `${this.basePath}/bot${token}/${method}`,
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(params),
      signal: ac.signal,
    }).then(async (res) => parseAnswer<T>(method, res.statusCode, await readCapped(method, res.body)));
    return exchange
      .catch((err: unknown) => { throw err instanceof ZtmError ? err : transportError(method, err, timedOut, this.timeoutMs); })
      .finally(() => clearTimeout(timer));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }
}

function parseApiBase(value: unknown): URL {
  if (typeof value !== 'string' || value.length === 0) throw new ValidationError('telegram client: apiBase must be a non-empty URL string');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError('telegram client: apiBase is not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ValidationError('telegram client: apiBase must be http(s)');
  // Credentials or a query in the base would end up in every request and in proxies' logs.
  if (url.username || url.password) throw new ValidationError('telegram client: apiBase must not contain credentials');
  if (url.search || url.hash) throw new ValidationError('telegram client: apiBase must not contain a query or fragment');
  return url;
}

function intOption(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(`telegram client: ${name} must be a whole number from ${min} to ${max}`);
  }
  return value;
}

async function readCapped(method: string, body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES) throw new TelegramTransportError(method, 'protocol', 'response body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseAnswer<T>(method: string, status: number, text: string): T {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // Typically an HTML error page from a proxy or load balancer in front of the API.
    throw new TelegramTransportError(method, 'protocol', `non-JSON response (HTTP ${status})`);
  }
  if (body === null || typeof body !== 'object' || typeof (body as { ok?: unknown }).ok !== 'boolean') {
    throw new TelegramTransportError(method, 'protocol', `unexpected response shape (HTTP ${status})`);
  }
  const answer = body as { ok: boolean; result?: unknown; error_code?: unknown; description?: unknown; parameters?: unknown };
  if (answer.ok) return answer.result as T;
  const code = typeof answer.error_code === 'number' ? answer.error_code : status;
  const description = typeof answer.description === 'string' ? answer.description : `HTTP ${status}`;
  const parameters = answer.parameters !== null && typeof answer.parameters === 'object' ? answer.parameters : undefined;
  throw new TelegramApiError(method, code, description, parameters);
}

function transportError(method: string, err: unknown, timedOut: boolean, timeoutMs: number): TelegramTransportError {
  const code = errorCode(err);
  if (timedOut || /^UND_ERR_(HEADERS|BODY|CONNECT)_TIMEOUT$/.test(code)) {
    return new TelegramTransportError(method, 'timeout', `no answer within ${timeoutMs} ms`, code);
  }
  // Only the code is kept: undici/socket messages can name the address, never the path, but the
  // raw error object is not attached (as `cause`) so nothing unvetted rides along into logs.
  return new TelegramTransportError(method, 'connect', code, code);
}

/** ECONNREFUSED, UND_ERR_SOCKET, ...; undici always sets one, 'unknown' is a defensive fallback. */
function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  /* c8 ignore next */
  return typeof code === 'string' ? code : 'unknown';
}

/**
 * Splits an answer into chunks of at most `limit` UTF-16 code units (Telegram's 4096 limit counts
 * UTF-16 units). Cuts after the last newline in the window, else after the last space, else hard;
 * separators stay at the end of their chunk so `chunks.join('') === text`. A hard cut never falls
 * between the halves of a surrogate pair. Empty text gives no chunks.
 */
export function splitMessage(text: string, limit = 4096): string[] {
  if (!Number.isInteger(limit) || limit < 2) throw new ValidationError('splitMessage: limit must be a whole number >= 2');
  const chunks: string[] = [];
  let rest = text;
  while (rest.length > limit) {
    const window = rest.slice(0, limit);
    let cut = window.lastIndexOf('\n') + 1;
    if (cut === 0) cut = window.lastIndexOf(' ') + 1;
    if (cut === 0) {
      cut = limit;
      const hi = rest.charCodeAt(cut - 1);
      const lo = rest.charCodeAt(cut);
      if (hi >= 0xd800 && hi <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff) cut -= 1;
    }
    chunks.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  if (rest.length > 0) chunks.push(rest);
  return chunks;
}
