/**
 * Checks AWS Signature V4 on a request to an embedded store. The expected signature is recomputed
 * with the SDK's own signer (@smithy/signature-v4, the code that made it) from what arrived: method,
 * path, query, the signed headers and the payload hash, then compared in constant time. Header
 * signatures (the SDK clients) and presigned URLs (the shims' state URLs, X-Amz-Expires honoured)
 * are both understood; a body whose hash was signed is checked against that hash. A POST policy's
 * signature (browser-form uploads) is checked here too; its conditions in sigv4-post-form.ts.
 */
import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Checksum, SourceData } from '@smithy/types';
import type { StoreCredentials } from './store-credentials.js';

/** Why a request was refused: each store renders these in its own error shape (sigv4-gate.ts). */
export type SigV4RefusalCode =
  | 'missing' // no signature at all
  | 'malformed' // an Authorization header or X-Amz-* parameters that do not parse
  | 'unknown-key' // signed with a key id that is not the store's
  | 'mismatch' // the store's key id, but another secret or an altered request
  | 'expired' // a presigned URL past X-Amz-Date + X-Amz-Expires
  | 'not-yet-valid' // a presigned URL dated in the future
  | 'skewed' // a header signature more than 15 minutes off this clock
  | 'payload-mismatch' // the body does not hash to the signed x-amz-content-sha256
  | 'unsupported-payload' // aws-chunked signing (STREAMING-*), or an unsigned payload where none is allowed
  | 'too-large' // a body that has to be hashed, beyond the bound
  // Browser-form uploads (POST Object, sigv4-post-form.ts):
  | 'policy-expired' // the POST policy's expiration has passed
  | 'policy-failed' // a form field the policy does not allow, or a condition that does not hold
  | 'entity-too-large' // a file over the policy's content-length-range
  | 'length-required' // a form upload without Content-Length (its size is bounded by it)
  | 'form-too-large'; // more form before the file than any policy needs

export interface SigV4Refusal {
  code: SigV4RefusalCode;
  /** Where the signature was: an S3 error names the header or the query parameters. */
  where?: 'header' | 'query';
  /** Facts a real service adds to the error (times, the key id); never the signature. */
  facts?: Record<string, string>;
}

type Payload = { kind: 'unsigned' } | { kind: 'declared'; hash: string } | { kind: 'body' };

export interface SigV4Claim {
  where: 'header' | 'query';
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  headers: Record<string, string>;
  signedHeaders: string;
  signature: string;
  signingDate: Date;
  region: string;
  expiresIn: number;
  payload: Payload;
}

export type SigV4Inspection = { refusal: SigV4Refusal } | { claim: SigV4Claim; needsBody: boolean };

export interface SigV4VerifierOptions {
  credentials: StoreCredentials;
  service: 's3' | 'dynamodb';
  /** S3 signs the path exactly as sent; other services sign it normalised and encoded once more. */
  uriEscapePath: boolean;
  /** Query-string signatures (presigned URLs). */
  allowPresigned: boolean;
  /** `UNSIGNED-PAYLOAD`: the body is not covered (presigned PUTs, streamed SDK uploads). */
  allowUnsignedPayload: boolean;
  now?: () => number;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const UNSIGNED = 'UNSIGNED-PAYLOAD';
const SHA256_HEADER = 'x-amz-content-sha256';
const MAX_SKEW_MS = 15 * 60_000;
const MAX_EXPIRES_S = 604_800;
const HEX64 = /^[0-9a-f]{64}$/i;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const REGION = /^[a-z0-9-]{1,50}$/;

/** SHA-256 (and HMAC-SHA256 with a secret) in the shape the signer takes, on node:crypto. */
class NodeSha256 implements Checksum {
  private hash: Hash | Hmac;
  constructor(private readonly secret?: SourceData) {
    this.hash = this.fresh();
  }
  private fresh(): Hash | Hmac {
    if (this.secret === undefined) return createHash('sha256');
    const s = this.secret;
    return createHmac('sha256', typeof s === 'string' ? s : ArrayBuffer.isView(s) ? Buffer.from(s.buffer, s.byteOffset, s.byteLength) : Buffer.from(s));
  }
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

function sha256Hex(body: Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}

function parseAmzDate(value: string | undefined): Date | undefined {
  const m = value === undefined ? null : AMZ_DATE.exec(value);
  if (!m) return undefined;
  const date = new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** `a=1&b&a=2` as the signer wants it: decoded values (it encodes them again), repeats as arrays. */
function parseQuery(raw: string): Record<string, string | string[]> | undefined {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  if (raw === '') return out;
  try {
    for (const part of raw.split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      const key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
      const value = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
      const prev = out[key];
      out[key] = prev === undefined ? value : [...(Array.isArray(prev) ? prev : [prev]), value];
    }
  } catch {
    return undefined;
  }
  return out;
}

function single(query: Record<string, string | string[] | null> | undefined, name: string): string | undefined {
  const v = query?.[name];
  return typeof v === 'string' ? v : undefined;
}

function sameHex(a: string, b: string): boolean {
  if (!HEX64.test(a) || !HEX64.test(b)) return false;
  return timingSafeEqual(Buffer.from(a.toLowerCase(), 'hex'), Buffer.from(b.toLowerCase(), 'hex'));
}

export class SigV4Verifier {
  private readonly signer: SignatureV4;
  private readonly now: () => number;

  constructor(private readonly options: SigV4VerifierOptions) {
    this.now = options.now ?? Date.now;
    this.signer = new SignatureV4({
      credentials: { ...options.credentials },
      region: 'us-east-1', // every call passes the region the request was scoped to
      service: options.service,
      sha256: NodeSha256,
      uriEscapePath: options.uriEscapePath,
      // Verifying, not signing: never add an x-amz-content-sha256 the client did not send.
      applyChecksum: false,
    });
  }

  /** Parses the signature; says whether the body must be read before verify(). */
  inspect(req: { method?: string | undefined; url?: string | undefined; headers: IncomingHttpHeaders }): SigV4Inspection {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = parseQuery(q < 0 ? '' : url.slice(q + 1));
    const auth = req.headers.authorization;
    const presigned = query !== undefined && 'X-Amz-Algorithm' in query;
    if (auth === undefined && !presigned) return { refusal: { code: query === undefined ? 'malformed' : 'missing' } };
    if (query === undefined) return { refusal: { code: 'malformed', where: auth === undefined ? 'query' : 'header' } };
    if (auth !== undefined && presigned) return { refusal: { code: 'malformed', where: 'header' } };
    if (presigned && !this.options.allowPresigned) return { refusal: { code: 'missing' } };
    return presigned ? this.inspectQuery(req, path, query) : this.inspectHeader(req, path, query, auth!);
  }

  private inspectHeader(req: { method?: string | undefined; headers: IncomingHttpHeaders }, path: string, query: Record<string, string | string[]>, auth: string): SigV4Inspection {
    const malformed = { refusal: { code: 'malformed', where: 'header' } } as const;
    if (!auth.startsWith(`${ALGORITHM} `)) return malformed;
    const parts = new Map<string, string>();
    for (const component of auth.slice(ALGORITHM.length + 1).split(',')) {
      const eq = component.indexOf('=');
      if (eq < 0) return malformed;
      parts.set(component.slice(0, eq).trim(), component.slice(eq + 1).trim());
    }
    const credential = parts.get('Credential');
    const signedHeaders = parts.get('SignedHeaders');
    const signature = parts.get('Signature');
    if (parts.size !== 3 || !credential || !signedHeaders || !signature) return malformed;
    const date = parseAmzDate(headerValue(req.headers, 'x-amz-date'));
    if (!date) return malformed;
    const scope = this.checkScope(credential, date, 'header');
    if ('refusal' in scope) return scope;
    if (Math.abs(this.now() - date.getTime()) > MAX_SKEW_MS) {
      return { refusal: { code: 'skewed', where: 'header', facts: { RequestTime: headerValue(req.headers, 'x-amz-date') ?? '', ServerTime: new Date(this.now()).toISOString().replace(/\.\d+Z$/, 'Z') } } };
    }
    const payload = this.payloadOf(headerValue(req.headers, SHA256_HEADER), 'body');
    if ('refusal' in payload) return { refusal: { ...payload.refusal, where: 'header' } };
    return this.claim({ where: 'header', req, path, query, signedHeaders, signature, date, region: scope.region, expiresIn: 0, payload });
  }

  private inspectQuery(req: { method?: string | undefined; headers: IncomingHttpHeaders }, path: string, query: Record<string, string | string[]>): SigV4Inspection {
    const malformed = { refusal: { code: 'malformed', where: 'query' } } as const;
    const credential = single(query, 'X-Amz-Credential');
    const signedHeaders = single(query, 'X-Amz-SignedHeaders');
    const signature = single(query, 'X-Amz-Signature');
    const rawDate = single(query, 'X-Amz-Date');
    const rawExpires = single(query, 'X-Amz-Expires');
    if (single(query, 'X-Amz-Algorithm') !== ALGORITHM || !credential || !signedHeaders || !signature || !rawExpires) return malformed;
    const date = parseAmzDate(rawDate);
    const expiresIn = /^\d{1,6}$/.test(rawExpires) ? Number(rawExpires) : NaN;
    if (!date || !(expiresIn >= 1 && expiresIn <= MAX_EXPIRES_S)) return malformed;
    const scope = this.checkScope(credential, date, 'query');
    if ('refusal' in scope) return scope;
    const now = this.now();
    const serverTime = new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
    if (now > date.getTime() + expiresIn * 1000) {
      return { refusal: { code: 'expired', where: 'query', facts: { 'X-Amz-Expires': rawExpires, Expires: new Date(date.getTime() + expiresIn * 1000).toISOString().replace(/\.\d+Z$/, 'Z'), ServerTime: serverTime } } };
    }
    if (date.getTime() > now + MAX_SKEW_MS) return { refusal: { code: 'not-yet-valid', where: 'query', facts: { 'X-Amz-Date': rawDate ?? '', ServerTime: serverTime } } };
    // A presigned URL's payload is UNSIGNED-PAYLOAD unless it names a hash itself.
    const payload = this.payloadOf(single(query, 'X-Amz-Content-Sha256'), 'unsigned');
    if ('refusal' in payload) return { refusal: { ...payload.refusal, where: 'query' } };
    const rest = { ...query };
    delete rest['X-Amz-Signature'];
    return this.claim({ where: 'query', req, path, query: rest, signedHeaders, signature, date, region: scope.region, expiresIn, payload });
  }

  /**
   * A POST policy's signature: X-Amz-Signature = HMAC(signing key, the base64 policy itself), the
   * key scoped by X-Amz-Credential and X-Amz-Date (form field names are case-insensitive).
   */
  async verifyPolicySignature(field: (name: string) => string | undefined, policy: string): Promise<SigV4Refusal | undefined> {
    const credential = field('x-amz-credential');
    const signature = field('x-amz-signature');
    const date = parseAmzDate(field('x-amz-date'));
    if (field('x-amz-algorithm') !== ALGORITHM || !credential || !signature || !date || !HEX64.test(signature)) return { code: 'malformed', where: 'query' };
    const scope = this.checkScope(credential, date, 'query');
    if ('refusal' in scope) return scope.refusal;
    const expected = await this.signer.sign(policy, { signingDate: date, signingRegion: scope.region, signingService: this.options.service });
    return sameHex(expected, signature) ? undefined : { code: 'mismatch', where: 'query' };
  }

  private checkScope(credential: string, date: Date, where: 'header' | 'query'): { region: string } | { refusal: SigV4Refusal } {
    const [keyId, day, region, service, terminator, ...extra] = credential.split('/');
    if (extra.length > 0 || !keyId || !day || !region || !REGION.test(region) || terminator !== 'aws4_request') return { refusal: { code: 'malformed', where } };
    // The key id is not a secret (AWS echoes it); compared plainly.
    if (keyId !== this.options.credentials.accessKeyId) return { refusal: { code: 'unknown-key', where, facts: { AWSAccessKeyId: keyId.slice(0, 128) } } };
    if (service !== this.options.service || day !== date.toISOString().slice(0, 10).replace(/-/g, '')) return { refusal: { code: 'mismatch', where } };
    return { region };
  }

  private payloadOf(value: string | undefined, absent: 'body' | 'unsigned'): Payload | { refusal: SigV4Refusal } {
    if (value === undefined) return absent === 'unsigned' && !this.options.allowUnsignedPayload ? { refusal: { code: 'unsupported-payload' } } : { kind: absent };
    if (value === UNSIGNED) return this.options.allowUnsignedPayload ? { kind: 'unsigned' } : { refusal: { code: 'unsupported-payload' } };
    // aws-chunked uploads sign each chunk; the SDK does not send them to these stores (it streams
    // PutObject bodies as UNSIGNED-PAYLOAD over http), so they are refused rather than half-checked.
    if (value.startsWith('STREAMING-')) return { refusal: { code: 'unsupported-payload' } };
    if (HEX64.test(value)) return { kind: 'declared', hash: value };
    return { refusal: { code: 'malformed' } };
  }

  private claim(o: { where: 'header' | 'query'; req: { method?: string | undefined; headers: IncomingHttpHeaders }; path: string; query: Record<string, string | string[]>; signedHeaders: string; signature: string; date: Date; region: string; expiresIn: number; payload: Payload }): SigV4Inspection {
    const names = o.signedHeaders.split(';');
    // AWS requires the host among the signed headers, lowercase and sorted.
    if (!names.includes('host') || names.some((n, i) => n === '' || n !== n.toLowerCase() || (i > 0 && names[i - 1]! >= n))) {
      return { refusal: { code: 'malformed', where: o.where } };
    }
    const headers: Record<string, string> = {};
    for (const name of names) {
      const value = headerValue(o.req.headers, name);
      // A signed header that did not arrive: the request is not the one that was signed.
      if (value === undefined) return { refusal: { code: 'mismatch', where: o.where } };
      headers[name] = value;
    }
    return {
      claim: {
        where: o.where, method: o.req.method ?? 'GET', path: o.path, query: o.query, headers, signedHeaders: o.signedHeaders,
        signature: o.signature, signingDate: o.date, region: o.region, expiresIn: o.expiresIn, payload: o.payload,
      },
      needsBody: o.payload.kind !== 'unsigned',
    };
  }

  /** Undefined when the signature is ours and covers this request (and `body`, when it was read). */
  async verify(claim: SigV4Claim, body?: Buffer): Promise<SigV4Refusal | undefined> {
    const payloadHash = claim.payload.kind === 'unsigned' ? UNSIGNED
      : claim.payload.kind === 'declared' ? claim.payload.hash
        : sha256Hex(body ?? Buffer.alloc(0));
    // The signer reads the payload hash from this header; it is in the canonical headers only
    // when the client signed it.
    const headers = { ...claim.headers, [SHA256_HEADER]: payloadHash };
    const signable = new Set(claim.signedHeaders.split(';'));
    const unsignable = signable.has(SHA256_HEADER) ? new Set<string>() : new Set([SHA256_HEADER]);
    const request = { method: claim.method, protocol: 'http:', hostname: 'store', path: claim.path, query: claim.query, headers };
    const common = { signingDate: claim.signingDate, signingRegion: claim.region, signingService: this.options.service, signableHeaders: signable, unsignableHeaders: unsignable };
    let expected: string | undefined;
    let expectedHeaders: string | undefined;
    if (claim.where === 'header') {
      const signed = await this.signer.sign(request, common);
      const auth = String(signed.headers.authorization ?? '');
      expected = /Signature=([0-9a-f]+)/.exec(auth)?.[1];
      expectedHeaders = /SignedHeaders=([^,]+)/.exec(auth)?.[1];
    } else {
      const signed = await this.signer.presign(request, { ...common, expiresIn: claim.expiresIn, unhoistableHeaders: new Set([...signable, SHA256_HEADER]) });
      expected = single(signed.query, 'X-Amz-Signature');
      expectedHeaders = single(signed.query, 'X-Amz-SignedHeaders');
    }
    if (expected === undefined || expectedHeaders !== claim.signedHeaders || !sameHex(expected, claim.signature)) {
      return { code: 'mismatch', where: claim.where };
    }
    if (claim.payload.kind === 'declared' && (body === undefined || sha256Hex(body) !== claim.payload.hash.toLowerCase())) {
      return { code: 'payload-mismatch', where: claim.where };
    }
    return undefined;
  }
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}
