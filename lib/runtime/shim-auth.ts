/**
 * Authentication of the platform's control calls to a shim (`POST /claim`, `/state-urls`,
 * `/checkpoint`). Two properties the old shared bearer lacked:
 *
 * - Per shim: each shim checks calls against a secret derived for it alone,
 *   HMAC(WARM_POOL_SECRET, `shim-control:<shim name>`). The agent runs beside its shim and can read
 *   the shim's environment (same uid: /proc/<shim>/environ), so whatever it learns there must open
 *   nothing but that one shim, which is already its own.
 * - No replay: a call carries `x-shim-auth: v1.<ms>.<nonce>.<mac>`, the MAC over the method, path,
 *   time, nonce and the body's SHA-256. A shim accepts a call within MAX_SKEW_MS of its own clock and
 *   each nonce once, so a call seen on the wire can be neither replayed nor altered.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SHIM_AUTH_HEADER = 'x-shim-auth';
/** How far a call's time may be from the shim's clock (and how long its nonce is remembered, twice). */
export const MAX_SKEW_MS = 60_000;
const MAX_NONCES = 10_000;

export function shimControlSecret(masterSecret: string, shimName: string): string {
  if (!masterSecret || !shimName) throw new TypeError('shimControlSecret: master secret and shim name are required');
  return createHmac('sha256', masterSecret).update(`shim-control:${shimName}`).digest('base64url');
}

function mac(secret: string, method: string, path: string, ts: string, nonce: string, body: string): Buffer {
  const bodyHash = createHash('sha256').update(body).digest('hex');
  return createHmac('sha256', secret).update(`${method}\n${path}\n${ts}\n${nonce}\n${bodyHash}`).digest();
}

/** The `x-shim-auth` value for one call. */
export function signShimCall(secret: string, method: string, path: string, body: string, now = Date.now()): string {
  const ts = String(now);
  const nonce = randomBytes(12).toString('base64url');
  return `v1.${ts}.${nonce}.${mac(secret, method, path, ts, nonce, body).toString('base64url')}`;
}

export type ShimAuthResult = 'ok' | 'missing' | 'malformed' | 'bad-signature' | 'expired' | 'replayed';

/** The shim's side: checks a call's header against its own secret; remembers nonces (bounded). */
export class ShimCallVerifier {
  private readonly seen = new Map<string, number>();

  constructor(private readonly secret: string, private readonly clock: () => number = Date.now) {
    if (typeof secret !== 'string' || secret.length < 16) throw new TypeError('ShimCallVerifier: a secret of at least 16 characters is required');
  }

  verify(header: string | undefined, method: string, path: string, body: string): ShimAuthResult {
    if (!header) return 'missing';
    const m = /^v1\.([0-9]{1,16})\.([A-Za-z0-9_-]{8,64})\.([A-Za-z0-9_-]{43})$/.exec(header.trim());
    if (!m) return 'malformed';
    const [, ts, nonce, given] = m as unknown as [string, string, string, string];
    const expected = mac(this.secret, method, path, ts, nonce, body);
    const presented = Buffer.from(given, 'base64url');
    if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) return 'bad-signature';
    const now = this.clock();
    if (Math.abs(now - Number(ts)) > MAX_SKEW_MS) return 'expired';
    this.forgetOld(now);
    if (this.seen.has(nonce)) return 'replayed';
    if (this.seen.size >= MAX_NONCES) return 'replayed'; // flooded with valid calls: refuse rather than forget
    this.seen.set(nonce, now);
    return 'ok';
  }

  private forgetOld(now: number): void {
    for (const [nonce, at] of this.seen) {
      if (now - at <= 2 * MAX_SKEW_MS) break; // insertion order: the rest are younger
      this.seen.delete(nonce);
    }
  }
}
