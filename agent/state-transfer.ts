/**
 * Moving brain.db to and from S3 through presigned URLs. The query string of such a URL is a
 * credential, so errors and logs only ever carry `describeUrl(url)` (origin and path).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { RuntimeError } from '../lib/errors.js';
import { redactSecrets } from '../lib/redact.js';

/** Origin and path of a URL, without its query (where presigned URLs keep their signature). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    // The origin has no userinfo; the path could still hold a token (`/bot<token>/`).
    return redactSecrets(`${u.origin}${u.pathname}`);
  } catch {
    return '(invalid url)';
  }
}

/** Removes secrets (signed queries, credentials, tokens) from free text, e.g. a library's message. */
export function scrubUrls(text: string): string {
  return redactSecrets(text);
}

export interface TransferOptions {
  /** Total tries for network errors, 5xx and 429 (4xx such as an expired URL's 403 are final). */
  attempts?: number;
  backoffMs?: number;
  timeoutMs?: number;
}

class Retryable extends Error {}

async function withRetries<T>(what: string, options: TransferOptions, attempt: () => Promise<T>): Promise<T> {
  const attempts = options.attempts ?? 4;
  const backoffMs = options.backoffMs ?? 250;
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      const message = scrubUrls(err instanceof Error ? err.message : String(err));
      // Undici's own errors (connection refused/reset, timeouts) are worth another try.
      const retryable = err instanceof Retryable || (err as { code?: string }).code?.startsWith('UND_ERR') === true
        || ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN'].includes((err as { code?: string }).code ?? '');
      if (!retryable || i >= attempts) throw new RuntimeError(`${what} failed after ${i} attempt(s): ${message}`);
      await sleep(backoffMs * 2 ** (i - 1));
    }
  }
}

function statusError(status: number): Error {
  const msg = `HTTP ${status}`;
  return status >= 500 || status === 429 ? new Retryable(msg) : new Error(msg);
}

/**
 * GETs the saved state into `dest` (via a temp file and rename, so `dest` is never partial).
 * Returns found=false on 404: the tenant has no saved state yet.
 */
export async function downloadState(getUrl: string, dest: string, options: TransferOptions = {}): Promise<{ found: boolean; bytes: number }> {
  const tmp = `${dest}.download`;
  return withRetries(`state GET ${describeUrl(getUrl)}`, options, async () => {
    const res = await request(getUrl, {
      method: 'GET',
      headersTimeout: options.timeoutMs ?? 30_000,
      bodyTimeout: options.timeoutMs ?? 30_000,
    });
    if (res.statusCode === 404) {
      await res.body.dump();
      return { found: false, bytes: 0 };
    }
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw statusError(res.statusCode);
    }
    try {
      await pipeline(res.body, createWriteStream(tmp));
      const { size } = await stat(tmp);
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared !== size) throw new Retryable(`short body: ${size} of ${declared} bytes`);
      await rename(tmp, dest);
      return { found: true, bytes: size };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  });
}

/** PUTs `file` as the tenant's state; resolves once S3 answered 200. */
export async function uploadState(putUrl: string, file: string, options: TransferOptions = {}): Promise<void> {
  const { size } = await stat(file);
  await withRetries(`state PUT ${describeUrl(putUrl)}`, options, async () => {
    const res = await request(putUrl, {
      method: 'PUT',
      // A fresh stream per attempt; an explicit length, no chunked encoding (S3 wants one).
      body: createReadStream(file),
      headers: { 'content-length': String(size), 'content-type': 'application/octet-stream' },
      headersTimeout: options.timeoutMs ?? 60_000,
      bodyTimeout: options.timeoutMs ?? 60_000,
    });
    await res.body.dump();
    if (res.statusCode !== 200) throw statusError(res.statusCode);
  });
}
