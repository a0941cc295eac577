/**
 * The embedded stores' own access key pair (dynalite and s3rver behind lib/platform/sigv4-gate.ts).
 * Clients get it in the endpoint URL's user info, `http://<key id>:<secret>@127.0.0.1:<port>`, the
 * way REDIS_URL carries Redis's password: a service configured by DYNAMODB_ENDPOINT / S3_ENDPOINT
 * alone signs with the right key, and no other setting has to travel beside the URL.
 */
import { randomBytes } from 'node:crypto';
import { ValidationError } from '../errors.js';

export interface StoreCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** What generateStoreCredentials makes: an AWS-shaped 20-character key id, a 40-character secret. */
const ACCESS_KEY_ID = /^ZTM[A-Z2-7]{17}$/;
const SECRET_ACCESS_KEY = /^[A-Za-z0-9_-]{40}$/;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function generateStoreCredentials(): StoreCredentials {
  const id = [...randomBytes(17)].map((b) => BASE32[b & 31]).join('');
  return { accessKeyId: `ZTM${id}`, secretAccessKey: randomBytes(30).toString('base64url') };
}

/** True for a pair generateStoreCredentials could have made (a stored pair is checked before use). */
export function isGeneratedStoreCredentials(value: { accessKeyId?: unknown; secretAccessKey?: unknown }): value is StoreCredentials {
  return typeof value.accessKeyId === 'string' && ACCESS_KEY_ID.test(value.accessKeyId)
    && typeof value.secretAccessKey === 'string' && SECRET_ACCESS_KEY.test(value.secretAccessKey);
}

/** A pair given to a store: two non-empty strings that fit in a URL's user info once encoded. */
export function assertStoreCredentials(value: unknown, name: string): StoreCredentials {
  const v = value as Partial<StoreCredentials> | null;
  if (v === null || typeof v !== 'object' || typeof v.accessKeyId !== 'string' || typeof v.secretAccessKey !== 'string'
    || !/^[\x21-\x7e]{1,128}$/.test(v.accessKeyId) || !/^[\x21-\x7e]{1,128}$/.test(v.secretAccessKey)) {
    throw new ValidationError(`invalid ${name} credentials: expected { accessKeyId, secretAccessKey } of 1-128 printable characters`);
  }
  return v as StoreCredentials;
}

export function endpointWithCredentials(endpoint: string, credentials: StoreCredentials): string {
  const url = new URL(endpoint);
  url.username = encodeURIComponent(credentials.accessKeyId);
  url.password = encodeURIComponent(credentials.secretAccessKey);
  return url.toString().replace(/\/$/, '');
}

/**
 * The endpoint without user info, and the credentials it carried (none when it carried none).
 * A key id without a secret (or the reverse) is a configuration error, said in one line.
 */
export function splitStoreEndpoint(endpoint: string, name: string): { endpoint: string; credentials?: StoreCredentials } {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new ValidationError(`invalid ${name} endpoint: expected an http(s) URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ValidationError(`invalid ${name} endpoint: expected an http(s) URL`);
  }
  if (url.username === '' && url.password === '') return { endpoint };
  if (url.username === '' || url.password === '') {
    throw new ValidationError(`invalid ${name} endpoint: credentials in it must be <access key id>:<secret access key>@`);
  }
  let credentials: StoreCredentials;
  try {
    credentials = { accessKeyId: decodeURIComponent(url.username), secretAccessKey: decodeURIComponent(url.password) };
  } catch {
    throw new ValidationError(`invalid ${name} endpoint: badly percent-encoded credentials`);
  }
  url.username = '';
  url.password = '';
  return { endpoint: url.toString().replace(/\/$/, ''), credentials };
}

/** For banners and logs: the endpoint with its credentials left out. */
export function describeStoreEndpoint(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    const signed = url.username !== '' || url.password !== '';
    url.username = '';
    url.password = '';
    return `${url.toString().replace(/\/$/, '')}${signed ? ' (signed requests only)' : ''}`;
  } catch {
    return '<invalid endpoint>';
  }
}
