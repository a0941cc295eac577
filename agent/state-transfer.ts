/**
 * Moving the state to and from S3 through presigned URLs: a GET, and an upload that is either a
 * presigned POST form (its fields in the URL's query, lib/state/state-store.ts; S3 enforces the
 * policy's content-length-range) or a plain presigned PUT. The query string of such a URL is a
 * credential, so errors and logs only ever carry `describeUrl(url)` (origin and path).
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { RuntimeError } from '../lib/errors.js';
import { redactSecrets } from '../lib/redact.js';
import { postFormOf } from './state-url-guard.js';

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

/** Uploads `file` as the tenant's state (POST form or PUT, as the URL says); resolves once S3 accepted it. */
export async function uploadState(putUrl: string, file: string, options: TransferOptions = {}): Promise<void> {
  const { size } = await stat(file);
  const url = new URL(putUrl);
  const form = postFormOf(url);
  const what = `state ${form ? 'POST' : 'PUT'} ${describeUrl(putUrl)}`;
  await withRetries(what, options, async () => {
    const upload = form ? postBody(url, form, file, size) : {
      url: putUrl,
      method: 'PUT' as const,
      // A fresh stream per attempt; an explicit length, no chunked encoding (S3 wants one).
      body: createReadStream(file),
      headers: { 'content-length': String(size), 'content-type': 'application/octet-stream' },
    };
    const res = await request(upload.url, {
      method: upload.method,
      body: upload.body,
      headers: upload.headers,
      headersTimeout: options.timeoutMs ?? 60_000,
      bodyTimeout: options.timeoutMs ?? 60_000,
    });
    await res.body.dump();
    // A POST answers 204 (or its success_action_status); S3 refuses a file outside the policy's size range with 400 EntityTooLarge.
    if (res.statusCode !== 200 && !(form && (res.statusCode === 201 || res.statusCode === 204))) throw statusError(res.statusCode);
  });
}

/**
 * multipart/form-data of a presigned POST: every policy field, then the file last (S3 ignores
 * fields after it), streamed from disk with an exact Content-Length.
 */
function postBody(url: URL, form: Map<string, string>, file: string, size: number): { url: string; method: 'POST'; body: Readable; headers: Record<string, string> } {
  const boundary = `----shim${randomBytes(12).toString('hex')}`;
  const esc = (s: string): string => s.replace(/["\r\n]/g, '');
  let head = '';
  for (const [name, value] of form) head += `--${boundary}\r\nContent-Disposition: form-data; name="${esc(name)}"\r\n\r\n${value}\r\n`;
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="state.tar.gz"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  const preamble = Buffer.from(head, 'utf8');
  // No CRLF after the closing delimiter (it is optional): a store that bounds the file by the
  // request's length (the embedded store's gate) then knows its size exactly.
  const epilogue = Buffer.from(`\r\n--${boundary}--`, 'utf8');
  async function* body(): AsyncIterable<Buffer> {
    yield preamble;
    for await (const chunk of createReadStream(file)) yield chunk as Buffer;
    yield epilogue;
  }
  return {
    url: `${url.origin}${url.pathname}`,
    method: 'POST',
    body: Readable.from(body(), { objectMode: false }),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(preamble.length + size + epilogue.length) },
  };
}
