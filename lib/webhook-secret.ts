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
