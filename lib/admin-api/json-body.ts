/**
 * A request's JSON object body, bounded: `application/json` only (415), at most `limit` bytes (413),
 * valid JSON (400, the text never echoed: it may hold a bot token), an object whose fields are all
 * in `allowed` (400 naming the field: a typo must not be a silent no-op).
 */
import type { IncomingMessage } from 'node:http';
import { ValidationError, ZtmError } from '../errors.js';

export async function readJsonBody(req: IncomingMessage, allowed: readonly string[], limit: number): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new ZtmError('E_UNSUPPORTED_MEDIA_TYPE', 'send the body as Content-Type: application/json');
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new ZtmError('E_PAYLOAD_TOO_LARGE', `body over ${limit} bytes`);
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Events, not for-await: leaving a for-await destroys the request, and with it the socket the
    // 413 must still be written to (the server answers with Connection: close instead).
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      req.pause();
      reject(new ZtmError('E_PAYLOAD_TOO_LARGE', `body over ${limit} bytes`));
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
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
