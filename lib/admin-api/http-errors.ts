/**
 * How the admin API answers an error: `{ error: { code, message } }` with the status its stable
 * code stands for. The message is one line, redacted again here (defence in depth: typed errors
 * never carry a secret, and an unexpected error is said without its details).
 */
import type { ServerResponse } from 'node:http';
import { RateLimitedError, ZtmError, type ErrorCode } from '../errors.js';
import { redactSecrets } from '../redact.js';

export const STATUS_OF: Readonly<Record<ErrorCode, number>> = {
  E_VALIDATION: 400,
  E_UNAUTHORIZED: 401,
  E_FORBIDDEN: 403,
  E_NOT_FOUND: 404,
  E_METHOD_NOT_ALLOWED: 405,
  E_EXISTS: 409,
  E_VERSION_CONFLICT: 409,
  E_PAYLOAD_TOO_LARGE: 413,
  E_UNSUPPORTED_MEDIA_TYPE: 415,
  E_RATE_LIMITED: 429,
  E_INTERNAL: 500,
  E_CONFIG: 500,
  // The command reached Telegram or the runtime, which failed it.
  E_TELEGRAM: 502,
  E_RUNTIME: 502,
  E_SANDBOX: 502,
  E_NO_WORKER: 503,
  E_REDIS_UNAVAILABLE: 503,
  E_TIMEOUT: 504,
};

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

/** The status, body and extra headers of an error; unexpected errors become E_INTERNAL without details. */
export function errorResponse(err: unknown): { status: number; body: ErrorBody; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  if (!(err instanceof ZtmError)) {
    return { status: 500, body: { error: { code: 'E_INTERNAL', message: 'internal error: see the admin API log' } }, headers };
  }
  if (err instanceof RateLimitedError) headers['retry-after'] = String(err.retryAfterS);
  if (err.code === 'E_NO_WORKER' || err.code === 'E_REDIS_UNAVAILABLE') headers['retry-after'] = '5';
  if (err.code === 'E_UNAUTHORIZED') headers['www-authenticate'] = 'Bearer realm="ztm-admin"';
  const message = redactSecrets(err.message.split('\n')[0] ?? '').slice(0, 500);
  return { status: STATUS_OF[err.code] ?? 500, body: { error: { code: err.code, message } }, headers };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}
