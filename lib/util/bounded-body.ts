/**
 * A node:http request's whole body, bounded: the one reader of the admin API, the shim, the Bot API
 * sandbox and the reference agent. Nothing past `limit` is buffered. A body declared larger than
 * `limit`, or one that grows past it while streaming, resolves `undefined` at once (the caller
 * answers 413) and is read on and dropped, so the client finishes its upload and sees that answer,
 * until `drainLimit`: a client still sending past that is cut off (destroyed). The declared case
 * goes through the same bound: left unread, node:http would read the whole declared length after
 * the answer.
 */
import type { IncomingMessage } from 'node:http';

export interface BoundedBodyOptions {
  /** Bytes read and dropped after the limit before the request is destroyed (default 8 × limit). */
  drainLimit?: number;
}

export function readBoundedBody(req: IncomingMessage, limit: number, options: BoundedBodyOptions = {}): Promise<Buffer | undefined> {
  if (!Number.isInteger(limit) || limit < 0) throw new TypeError('readBoundedBody: limit must be a non-negative integer');
  const drainLimit = options.drainLimit ?? limit * 8;
  if (!(drainLimit >= limit)) throw new TypeError('readBoundedBody: drainLimit must be at least the limit');
  const declared = Number(req.headers['content-length']);
  return new Promise((resolve, reject) => {
    let over = Number.isFinite(declared) && declared > limit;
    if (over) resolve(undefined);
    let chunks: Buffer[] = [];
    let size = 0;
    // Events, not for-await: leaving a for-await destroys the request, and with it the socket the
    // 413 is still to be written to.
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (!over && size <= limit) {
        chunks.push(chunk);
        return;
      }
      over = true;
      chunks = [];
      resolve(undefined); // the first call settles; the rest is dropped
      if (size > drainLimit) req.destroy();
    });
    req.once('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.once('error', (err) => (over ? resolve(undefined) : reject(err)));
  });
}
