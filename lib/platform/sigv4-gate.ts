/**
 * The check in front of an embedded store (dynalite, s3rver): agents share the host's network, so
 * the store's port is reachable from any of them, and neither store verifies a signature itself.
 * Only requests signed with the store's own key (sigv4-verify.ts) reach it; the rest are answered
 * with the error the real service sends, and logged without their signature or query.
 */
import { IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { StoreCredentials } from './store-credentials.js';
import { SigV4Verifier, type SigV4Refusal, type SigV4RefusalCode } from './sigv4-verify.js';
import { checkPolicy, readFormPrefix, MAX_FORM_PREFIX_BYTES } from './sigv4-post-form.js';

export type GatedStore = 's3' | 'dynamodb';

export interface SigV4GateOptions {
  store: GatedStore;
  credentials: StoreCredentials;
  /** Where refusals are reported; silent when omitted (tests, benches). */
  log?: Logger | undefined;
  /** Bodies whose hash was signed are read before the store sees them, up to this many bytes. */
  maxBodyBytes?: number;
  now?: () => number;
}

/** DynamoDB's own request bound (dynalite's too); an S3 body over it has to be sent UNSIGNED-PAYLOAD. */
export const MAX_VERIFIED_BODY_BYTES = 16 * 1024 * 1024;

interface Rendered {
  status: number;
  code: string;
  message: string;
}

// The real services' answers (S3: RESTErrorResponses; DynamoDB: CommonErrors), so SDK callers
// see the error names they would get from AWS.
const S3_ERRORS: Record<SigV4RefusalCode, Rendered> = {
  missing: { status: 403, code: 'AccessDenied', message: 'Access Denied' },
  malformed: { status: 400, code: 'AuthorizationHeaderMalformed', message: 'The authorization header is malformed.' },
  'unknown-key': { status: 403, code: 'InvalidAccessKeyId', message: 'The AWS Access Key Id you provided does not exist in our records.' },
  mismatch: { status: 403, code: 'SignatureDoesNotMatch', message: 'The request signature we calculated does not match the signature you provided. Check your key and signing method.' },
  expired: { status: 403, code: 'AccessDenied', message: 'Request has expired' },
  'not-yet-valid': { status: 403, code: 'AccessDenied', message: 'Request is not valid yet' },
  skewed: { status: 403, code: 'RequestTimeTooSkewed', message: 'The difference between the request time and the current time is too large.' },
  'payload-mismatch': { status: 400, code: 'XAmzContentSHA256Mismatch', message: 'The provided \'x-amz-content-sha256\' header does not match what was computed.' },
  'unsupported-payload': { status: 501, code: 'NotImplemented', message: 'A header you provided implies functionality that is not implemented (this store takes UNSIGNED-PAYLOAD or a SHA-256 payload hash).' },
  'too-large': { status: 400, code: 'MaxMessageLengthExceeded', message: `Your request was too big: a body over ${MAX_VERIFIED_BODY_BYTES} bytes must be sent with UNSIGNED-PAYLOAD (a presigned URL).` },
  'policy-expired': { status: 403, code: 'AccessDenied', message: 'Invalid according to Policy: Policy expired.' },
  'policy-failed': { status: 403, code: 'AccessDenied', message: 'Invalid according to Policy: Policy Condition failed' },
  'entity-too-large': { status: 400, code: 'EntityTooLarge', message: 'Your proposed upload exceeds the maximum allowed size' },
  'length-required': { status: 411, code: 'MissingContentLength', message: 'You must provide the Content-Length HTTP header.' },
  'form-too-large': { status: 400, code: 'MaxPostPreDataLengthExceeded', message: `Your POST request fields preceding the upload file were too large (over ${MAX_FORM_PREFIX_BYTES} bytes).` },
};

// Form uploads are S3's alone: DynamoDB never sees those codes.
const DYNAMODB_ERRORS: Record<Exclude<SigV4RefusalCode, 'policy-expired' | 'policy-failed' | 'entity-too-large' | 'length-required' | 'form-too-large'>, Rendered> = {
  missing: { status: 400, code: 'MissingAuthenticationTokenException', message: 'Request is missing Authentication Token' },
  malformed: { status: 400, code: 'IncompleteSignatureException', message: 'The request signature does not conform to AWS standards.' },
  'unknown-key': { status: 400, code: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' },
  mismatch: { status: 400, code: 'InvalidSignatureException', message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.' },
  expired: { status: 400, code: 'InvalidSignatureException', message: 'Signature expired.' },
  'not-yet-valid': { status: 400, code: 'InvalidSignatureException', message: 'Signature not yet current.' },
  skewed: { status: 400, code: 'InvalidSignatureException', message: 'Signature expired: the request time is more than 15 minutes from the server time.' },
  'payload-mismatch': { status: 400, code: 'InvalidSignatureException', message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.' },
  'unsupported-payload': { status: 400, code: 'InvalidSignatureException', message: 'The request payload must be signed.' },
  'too-large': { status: 413, code: 'RequestEntityTooLarge', message: 'Request size exceeded 16777216 bytes' },
};

function xmlEscape(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function respond(store: GatedStore, req: IncomingMessage, res: ServerResponse, refusal: SigV4Refusal): void {
  const requestId = randomBytes(8).toString('hex').toUpperCase();
  const rendered = store === 's3' ? S3_ERRORS[refusal.code] : DYNAMODB_ERRORS[refusal.code as keyof typeof DYNAMODB_ERRORS] ?? DYNAMODB_ERRORS.mismatch;
  const code = store === 's3' && refusal.code === 'malformed' && refusal.where === 'query' ? 'AuthorizationQueryParametersError' : rendered.code;
  let body: string;
  if (store === 's3') {
    const facts = Object.entries(refusal.facts ?? {}).map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`).join('');
    body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xmlEscape(rendered.message)}</Message>${facts}<RequestId>${requestId}</RequestId><HostId>${requestId}</HostId></Error>`;
    res.setHeader('content-type', 'application/xml');
    res.setHeader('x-amz-request-id', requestId);
  } else {
    body = JSON.stringify({ __type: `com.amazon.coral.service#${code}`, message: rendered.message });
    res.setHeader('content-type', 'application/x-amz-json-1.0');
    res.setHeader('x-amzn-requestid', requestId);
  }
  // The body (possibly large, possibly never sent) is not read: the connection ends with the answer.
  res.setHeader('connection', 'close');
  res.statusCode = rendered.status;
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

/** The whole body, or undefined once it passes `max` bytes (reading stops there). */
function readBounded(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        cleanup();
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/**
 * The request again, with what the gate already read of its body first: what the store is handed
 * once the signature was checked. Same socket, method, URL and headers, so the store cannot tell
 * the difference. With `rest`, the unread remainder follows as it arrives (a form's file), with
 * backpressure; without, the body was read whole.
 */
function replay(req: IncomingMessage, read: Buffer, rest: boolean): IncomingMessage {
  const copy = new IncomingMessage(req.socket);
  copy.method = req.method!;
  copy.url = req.url!;
  copy.headers = req.headers;
  copy.rawHeaders = req.rawHeaders;
  copy.httpVersion = req.httpVersion;
  copy.httpVersionMajor = req.httpVersionMajor;
  copy.httpVersionMinor = req.httpVersionMinor;
  if (read.length > 0) copy.push(read);
  if (!rest) {
    copy.complete = true;
    copy.push(null);
    return copy;
  }
  copy._read = () => {
    req.resume();
  };
  req.on('data', (chunk: Buffer) => {
    if (!copy.push(chunk)) req.pause();
  });
  req.once('end', () => {
    copy.complete = true;
    copy.push(null);
  });
  req.once('error', (err) => copy.destroy(err));
  req.once('aborted', () => copy.destroy(new Error('request aborted')));
  return copy;
}

const FORM_BUCKET = /^\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/?$/;

function isFormUpload(req: IncomingMessage): boolean {
  return req.method === 'POST' && req.headers.authorization === undefined
    && /^multipart\/form-data\b/i.test(String(req.headers['content-type'] ?? ''));
}

/** Wraps a store's request listener: only requests signed with `credentials` reach `next`. */
export function sigv4Gate(options: SigV4GateOptions, next: RequestListener): RequestListener {
  const { store, log } = options;
  const max = options.maxBodyBytes ?? MAX_VERIFIED_BODY_BYTES;
  const verifier = new SigV4Verifier({
    credentials: options.credentials,
    service: store,
    uriEscapePath: store !== 's3',
    allowPresigned: store === 's3',
    allowUnsignedPayload: store === 's3',
    ...(options.now ? { now: options.now } : {}),
  });
  const refuse = (req: IncomingMessage, res: ServerResponse, refusal: SigV4Refusal) => {
    // The path only: the query holds the signature and credential of a presigned URL.
    const path = (req.url ?? '').split('?')[0]!.slice(0, 300);
    log?.warn({ store, method: req.method, path, refusal: refusal.code, remote: req.socket.remoteAddress }, 'embedded store refused a request that is not signed with its key');
    respond(store, req, res, refusal);
  };
  /** POST Object: the policy's signature and conditions, then s3rver reads the same form. */
  const handleForm = async (req: IncomingMessage, res: ServerResponse) => {
    // Only `POST /<bucket>` with nothing in the query is an upload (`?delete` is DeleteObjects).
    const bucket = FORM_BUCKET.exec(req.url ?? '')?.[1];
    if (bucket === undefined) return refuse(req, res, { code: 'missing' });
    const form = await readFormPrefix(req);
    if ('refusal' in form) return refuse(req, res, form.refusal);
    const field = (name: string) => form.fields.get(name)?.value;
    const policy = field('policy');
    // s3rver stores under the field named exactly `key`; S3 names are case-insensitive.
    if (policy === undefined || form.fields.get('key')?.name !== 'key') return refuse(req, res, { code: policy === undefined ? 'missing' : 'malformed', where: 'query' });
    const refusal = (await verifier.verifyPolicySignature(field, policy)) ?? checkPolicy(policy, form, bucket, (options.now ?? Date.now)());
    if (refusal) return refuse(req, res, refusal);
    next(replay(req, form.prefix, true), res);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (store === 's3' && isFormUpload(req) && !/[?&]X-Amz-Algorithm=/.test(req.url ?? '')) return handleForm(req, res);
    const inspection = verifier.inspect(req);
    if ('refusal' in inspection) return refuse(req, res, inspection.refusal);
    let body: Buffer | undefined;
    if (inspection.needsBody) {
      body = await readBounded(req, max);
      if (body === undefined) return refuse(req, res, { code: 'too-large' });
    }
    const refusal = await verifier.verify(inspection.claim, body);
    if (refusal) return refuse(req, res, refusal);
    // An unsigned payload was never read: it streams to the store as it arrives.
    next(body === undefined ? req : replay(req, body, false), res);
  };
  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      log?.error({ store, err }, 'embedded store gate failed');
      if (res.headersSent) res.destroy();
      else {
        res.statusCode = 500;
        res.setHeader('connection', 'close');
        res.end();
      }
    });
  };
}
