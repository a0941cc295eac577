/**
 * A request's JSON object body, bounded: `application/json` only (415), at most `limit` bytes (413),
 * valid JSON (400, the text never echoed: it may hold a bot token), an object whose fields are all
 * in `allowed` (400 naming the field: a typo must not be a silent no-op).
 */
import type { IncomingMessage } from 'node:http';
import { ValidationError, ZtmError } from '../errors.js';
import { readBoundedBody } from '../util/bounded-body.js';

export async function readJsonBody(req: IncomingMessage, allowed: readonly string[], limit: number): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new ZtmError('E_UNSUPPORTED_MEDIA_TYPE', 'send the body as Content-Type: application/json');
  const raw = await readBoundedBody(req, limit);
  if (raw === undefined) throw new ZtmError('E_PAYLOAD_TOO_LARGE', `body over ${limit} bytes`);
  const text = raw.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ValidationError('the body is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ValidationError('the body must be a JSON object');
  const extra = Object.keys(value).find((k) => !allowed.includes(k));
  if (extra !== undefined) throw new ValidationError(`unknown field ${JSON.stringify(extra.slice(0, 40))}: expected ${allowed.join(', ')}`);
  return value as Record<string, unknown>;
}
