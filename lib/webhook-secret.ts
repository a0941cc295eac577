/**
 * Per-tenant webhook secret: HMAC-SHA256(WEBHOOK_SECRET, tenant id) in base64url, which is within
 * Telegram's secret_token alphabet (A-Za-z0-9_-) and length (1-256). Derivable with no I/O, so the
 * ingress verifies it in constant time before touching Redis.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export function deriveWebhookSecret(masterSecret: string, tenantId: string): string {
  return createHmac('sha256', masterSecret).update(`webhook:${tenantId}`).digest('base64url');
}

export function verifyWebhookSecret(masterSecret: string, tenantId: string, presented: string | undefined): boolean {
  if (!presented) return false;
  const expected = Buffer.from(deriveWebhookSecret(masterSecret, tenantId));
  const given = Buffer.from(presented);
  // Compare equal-length buffers only; a length mismatch is itself not secret (the length is fixed).
  if (given.length !== expected.length) return false;
  return timingSafeEqual(given, expected);
}

/**
 * verifyWebhookSecret for one master secret that remembers the expected secret of tenants it has
 * verified successfully, so a busy tenant costs one HMAC per process, not one per webhook. Only a
 * correct secret enters the cache (forged requests cannot churn it); bounded: when `maxTenants`
 * are cached it starts over. The comparison stays constant-time.
 */
export function createWebhookSecretVerifier(masterSecret: string, maxTenants = 100_000): (tenantId: string, presented: string | undefined) => boolean {
  const known = new Map<string, Buffer>();
  return (tenantId, presented) => {
    if (!presented) return false;
    const given = Buffer.from(presented);
    const cached = known.get(tenantId);
    const expected = cached ?? Buffer.from(deriveWebhookSecret(masterSecret, tenantId));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
    if (!cached) {
      if (known.size >= maxTenants) known.clear();
      known.set(tenantId, expected);
    }
    return true;
  };
}
