/**
 * Secrets derived per tenant from the master secret (WEBHOOK_SECRET), each under its own label so
 * that no derived value reveals another:
 * - the webhook secret Telegram sends us: HMAC-SHA256(master, `webhook:<id>`) in base64url, within
 *   Telegram's secret_token alphabet (A-Za-z0-9_-) and length (1-256). Derivable with no I/O, so the
 *   ingress verifies it in constant time before touching Redis;
 * - the bearer the forwarder presents to a tenant's ZeroClaw gateway (its pairing):
 *   HMAC-SHA256(master, `agent-bearer:<id>`) in base64url. The pod only ever holds its SHA-256
 *   (`[gateway] paired_tokens`), so nothing in a pod opens another tenant's agent.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export function deriveWebhookSecret(masterSecret: string, tenantId: string): string {
  return createHmac('sha256', masterSecret).update(`webhook:${tenantId}`).digest('base64url');
}

/** The `Authorization: Bearer` value of the tenant's agent (zeroclaw protocol). Never log it. */
export function deriveAgentToken(masterSecret: string, tenantId: string): string {
  return createHmac('sha256', masterSecret).update(`agent-bearer:${tenantId}`).digest('base64url');
}

/** Lowercase hex SHA-256 of a bearer: the form ZeroClaw accepts in `[gateway] paired_tokens`. */
export function agentTokenSha256(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * A per-tenant derivation remembered per process, so a busy tenant costs one HMAC, not one per
 * message. Bounded: when `maxTenants` are remembered it starts over.
 */
export function memoizePerTenant(derive: (tenantId: string) => string, maxTenants = 10_000): (tenantId: string) => string {
  const known = new Map<string, string>();
  return (tenantId) => {
    let value = known.get(tenantId);
    if (value === undefined) {
      if (known.size >= maxTenants) known.clear();
      value = derive(tenantId);
      known.set(tenantId, value);
    }
    return value;
  };
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
