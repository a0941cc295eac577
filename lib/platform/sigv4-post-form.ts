/**
 * Browser-form uploads (S3 POST Object with a signed POST policy): how a shim uploads its state
 * (lib/state/state-store.ts presigns a form whose policy names the key and bounds the size). s3rver
 * takes any form without looking at its policy, so the gate reads the fields before the file with
 * the parser s3rver itself uses (its busboy: both see the same key and fields), checks the policy's
 * signature (sigv4-verify.ts) and its conditions here, and only then hands s3rver the request.
 */
import { createRequire } from 'node:module';
import type { IncomingMessage } from 'node:http';
import type { SigV4Refusal } from './sigv4-verify.js';

/** busboy 0.3 (s3rver's copy), the slice used here. */
interface Busboy {
  write(chunk: Buffer): boolean;
  on(event: 'field', listener: (name: string, value: string) => void): this;
  on(event: 'file', listener: (name: string, file: NodeJS.ReadableStream) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  removeAllListeners(): this;
}
type BusboyCtor = new (options: { headers: IncomingMessage['headers'] }) => Busboy;

const requireFromS3rver = createRequire(createRequire(import.meta.url).resolve('s3rver'));
const BusboyParser = requireFromS3rver('busboy') as BusboyCtor;

/** S3 allows 20 KB of form fields before the file; a state form's are about 1.5 KB. */
export const MAX_FORM_PREFIX_BYTES = 64 * 1024;
// Fed to the parser this many bytes at a time, so where the file begins is known to within a slice.
const SLICE = 64;

export interface FormPrefix {
  /** Every byte read so far; the store gets these first, then the rest of the stream. */
  prefix: Buffer;
  /** The fields before the file, by lowercase name (names are case-insensitive in a policy). */
  fields: Map<string, { name: string; value: string }>;
  /**
   * The largest the file can be, given Content-Length: never less than its size, at most 2 bytes
   * more (whether the closing `--` is followed by CRLF is not known before the end).
   */
  maxFileBytes: number;
}

/**
 * Reads the request up to the start of its file part (pausing it there) and returns the fields
 * before it. A field repeated, a file part not named `file`, or no file at all is malformed.
 */
export function readFormPrefix(req: IncomingMessage): Promise<FormPrefix | { refusal: SigV4Refusal }> {
  const length = Number(req.headers['content-length']);
  if (!Number.isSafeInteger(length) || length < 0) return Promise.resolve({ refusal: { code: 'length-required' } });
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(String(req.headers['content-type'] ?? ''));
  let parser: Busboy;
  try {
    parser = new BusboyParser({ headers: req.headers });
  } catch {
    return Promise.resolve({ refusal: { code: 'malformed', where: 'query' } });
  }
  // After the file's data at least: CRLF -- boundary, then `--` (the end) or CRLF (another part).
  const delimiter = 6 + (boundary?.[1] ?? boundary?.[2] ?? '').length;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let read = 0;
    let fed = 0;
    let settled = false;
    const fields = new Map<string, { name: string; value: string }>();
    const finish = (result: FormPrefix | { refusal: SigV4Refusal }) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      req.pause();
      parser.removeAllListeners();
      parser.on('error', () => undefined);
      resolve(result);
    };
    const malformed = () => finish({ refusal: { code: 'malformed', where: 'query' } });
    const done = (fileStart: number, inlineBytes?: number) => {
      const prefix = Buffer.concat(chunks, read);
      finish({ prefix, fields, maxFileBytes: inlineBytes ?? Math.max(0, length - fileStart - delimiter) });
    };
    let sliceStart = 0;
    parser.on('field', (name, value) => {
      const lower = name.toLowerCase();
      // s3rver takes a part without filename named `file` as the file itself.
      if (lower === 'file') return done(0, Buffer.byteLength(value));
      if (fields.has(lower)) return malformed();
      fields.set(lower, { name, value });
    });
    parser.on('file', (name, file) => {
      file.resume();
      if (name !== 'file') return malformed();
      // The header block ends with CRLF CRLF inside (or just before) this slice: the first one
      // from there is it, or an earlier one in a field's value (a bound then larger, never smaller).
      const prefix = Buffer.concat(chunks, read);
      const end = prefix.indexOf('\r\n\r\n', Math.max(0, sliceStart - 4));
      done(end >= 0 ? end + 4 : sliceStart);
    });
    parser.on('error', malformed);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      read += chunk.length;
      const all = chunks.length === 1 ? chunk : Buffer.concat(chunks, read);
      while (!settled && fed < read) {
        sliceStart = fed;
        const slice = all.subarray(fed, Math.min(read, fed + SLICE));
        fed += slice.length;
        parser.write(slice);
      }
      if (!settled && read > MAX_FORM_PREFIX_BYTES) finish({ refusal: { code: 'form-too-large' } });
    };
    const onEnd = () => malformed();
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onEnd);
  });
}

type Condition = { field: string; test: (value: string) => boolean } | { range: [number, number] };

function parseConditions(raw: unknown): Condition[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const out: Condition[] = [];
  for (const c of raw) {
    if (Array.isArray(c)) {
      const [op, a, b] = c as unknown[];
      if (op === 'content-length-range' && Number.isSafeInteger(a) && Number.isSafeInteger(b)) {
        out.push({ range: [a as number, b as number] });
      } else if ((op === 'eq' || op === 'starts-with') && typeof a === 'string' && a.startsWith('$') && typeof b === 'string') {
        out.push({ field: a.slice(1).toLowerCase(), test: op === 'eq' ? (v) => v === b : (v) => v.startsWith(b) });
      } else return undefined;
    } else if (c !== null && typeof c === 'object' && Object.keys(c).length === 1) {
      const [[name, value]] = Object.entries(c as Record<string, unknown>) as [[string, unknown]];
      if (typeof value !== 'string') return undefined;
      out.push({ field: name.toLowerCase(), test: (v) => v === value });
    } else return undefined;
  }
  return out;
}

// Form fields a policy need not name (S3: the signature, the file, the policy, x-ignore-*).
const UNCONDITIONED = new Set(['x-amz-signature', 'policy', 'file']);

/**
 * S3's rules for a POST policy: not expired; every condition holds (`bucket` is the bucket the
 * form was posted to); every form field is named by a condition; the file within its
 * content-length-range. Returns the refusal, or undefined when the form may be stored.
 */
export function checkPolicy(policy: string, form: FormPrefix, bucket: string, now: number): SigV4Refusal | undefined {
  let doc: { expiration?: unknown; conditions?: unknown };
  try {
    doc = JSON.parse(Buffer.from(policy, 'base64').toString('utf8')) as typeof doc;
  } catch {
    return { code: 'malformed', where: 'query' };
  }
  const expiration = typeof doc?.expiration === 'string' ? Date.parse(doc.expiration) : NaN;
  const conditions = parseConditions(doc?.conditions);
  if (Number.isNaN(expiration) || !conditions) return { code: 'malformed', where: 'query' };
  if (now >= expiration) return { code: 'policy-expired', facts: { Expires: new Date(expiration).toISOString() } };
  const value = (field: string) => (field === 'bucket' ? bucket : form.fields.get(field)?.value);
  const named = new Set<string>();
  for (const c of conditions) {
    if ('range' in c) {
      if (form.maxFileBytes > c.range[1]) return { code: 'entity-too-large', facts: { MaxSizeAllowed: String(c.range[1]) } };
      continue;
    }
    named.add(c.field);
    const v = value(c.field);
    if (v === undefined || !c.test(v)) return { code: 'policy-failed', facts: { Condition: c.field } };
  }
  for (const field of form.fields.keys()) {
    if (!UNCONDITIONED.has(field) && !field.startsWith('x-ignore-') && !named.has(field)) {
      return { code: 'policy-failed', facts: { Condition: `extra input field: ${field}` } };
    }
  }
  // The bucket a form names must be the one it is posted to (s3rver stores into the path's).
  const formBucket = form.fields.get('bucket')?.value;
  if (formBucket !== undefined && formBucket !== bucket) return { code: 'policy-failed', facts: { Condition: 'bucket' } };
  return undefined;
}
