/**
 * The Telegram Bot API's wire format as a server speaks it: answers `{ok: true, result}` and
 * `{ok: false, error_code, description}`, parameters merged from the query string and a JSON or
 * urlencoded body, method names matched case-insensitively, string values coerced by type.
 * Shared by the local sandbox (bot-api-sandbox.ts) and the test suite's Telegram emulator.
 */
import type { ServerResponse } from 'node:http';

export type BotApiParams = Record<string, unknown>;

export interface BotApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

export const BOT_API_METHODS = [
  'getMe', 'setWebhook', 'deleteWebhook', 'getWebhookInfo', 'sendMessage', 'getUpdates',
  'editMessageText', 'deleteMessage', 'sendChatAction', 'answerCallbackQuery', 'setMyCommands', 'getMyCommands', 'deleteMyCommands',
] as const;
export type BotApiMethod = (typeof BOT_API_METHODS)[number];

/** The real API matches method names case-insensitively; callers record the canonical name. */
const CANONICAL = new Map<string, BotApiMethod>(BOT_API_METHODS.map((m) => [m.toLowerCase(), m]));

export function canonicalMethod(name: string): BotApiMethod | undefined {
  return CANONICAL.get(name.toLowerCase());
}

export const ok = (result: unknown, description?: string): BotApiAnswer =>
  ({ status: 200, body: description ? { ok: true, result, description } : { ok: true, result } });

export const fail = (status: number, description: string, parameters?: BotApiParams): BotApiAnswer =>
  ({ status, body: { ok: false, error_code: status, description, ...(parameters ? { parameters } : {}) } });

export const badRequest = (what: string): BotApiAnswer => fail(400, `Bad Request: ${what}`);

/** Writes `answer` as JSON unless the response is already gone. */
export function sendAnswer(res: ServerResponse, answer: BotApiAnswer): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(answer.body);
  res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** `/bot<token>/<method>` split into its parts; undefined for any other path. */
export function parseBotPath(pathname: string): { token: string; method: string; extra: boolean } | undefined {
  if (!pathname.startsWith('/bot')) return undefined;
  const [tokenPart = '', method = '', ...rest] = pathname.slice(4).split('/');
  return { token: safeDecode(tokenPart), method, extra: rest.some((s) => s !== '') };
}

/** Query string, then the body (JSON or urlencoded) on top, as the real API merges them. */
export function parseParams(query: URLSearchParams, contentType: string, raw: Buffer): BotApiParams | undefined {
  const params: BotApiParams = Object.fromEntries(query);
  if (raw.length === 0) return params;
  const type = contentType.split(';', 1)[0]?.trim().toLowerCase();
  if (type === 'application/json') {
    const body = parseJsonObject(raw);
    return body === undefined ? undefined : { ...params, ...body };
  }
  if (type === 'application/x-www-form-urlencoded') return { ...params, ...Object.fromEntries(new URLSearchParams(raw.toString('utf8'))) };
  return params; // multipart (file uploads) is not supported
}

/** A JSON object (not an array, not null), or undefined. */
export function parseJsonObject(raw: Buffer | string): BotApiParams | undefined {
  try {
    const value: unknown = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as BotApiParams) : undefined;
  } catch {
    return undefined;
  }
}

/** Form and query values arrive as strings; Telegram coerces them by the parameter's type. */
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);

export const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) ? v
  : typeof v === 'string' && /^-?[0-9]{1,20}$/.test(v.trim()) ? Number(v.trim()) : undefined);

export function jsonValue(v: unknown): unknown {
  try {
    return typeof v === 'string' ? JSON.parse(v) : v;
  } catch {
    return undefined;
  }
}

export function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Unix time in seconds, as Telegram's `date` fields. */
export const nowS = (): number => Math.floor(Date.now() / 1000);
