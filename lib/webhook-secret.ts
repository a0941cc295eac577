/**
 * Secrets derived per tenant from the master secret (WEBHOOK_SECRET), each under its own label so
 * that no derived value reveals another:
 * - the webhook secret Telegram sends us: HMAC-SHA256(master, `webhook:<id>:<incarnation>`) in
 *   base64url, within Telegram's secret_token alphabet (A-Za-z0-9_-) and length (1-256);
 * - the bearer the forwarder presents to a tenant's agent (ZeroClaw's pairing, the reference
 *   agent's check): HMAC-SHA256(master, `agent-bearer:<id>:<incarnation>`) in base64url. The pod
 *   only ever holds its SHA-256, so nothing in a pod opens another tenant's agent.
 * The incarnation (lib/registry/tenant.ts) makes a deleted and re-created id a different tenant:
 * none of the old one's secrets open the new one. A record created before incarnations existed has
 * none and keeps the id-only labels (`webhook:<id>`, `agent-bearer:<id>`); tenant ids cannot hold
 * `:`, so the two forms never collide. Every derivation takes the tenant's identity, never a bare
 * id, so no caller can forget the incarnation.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** What identifies one tenant for its secrets: a Tenant record is one. */
export interface TenantIdentity {
  tenant_id: string;
  incarnation?: string | undefined;
}

const label = (kind: 'webhook' | 'agent-bearer', who: TenantIdentity): string =>
  who.incarnation === undefined ? `${kind}:${who.tenant_id}` : `${kind}:${who.tenant_id}:${who.incarnation}`;

/** Length of every derived secret (base64url of 32 bytes): a presented value of another length is wrong. */
export const DERIVED_SECRET_LENGTH = 43;

export function deriveWebhookSecret(masterSecret: string, who: TenantIdentity): string {
  return createHmac('sha256', masterSecret).update(label('webhook', who)).digest('base64url');
}

/** The `Authorization: Bearer` value of the tenant's agent (zeroclaw protocol). Never log it. */
export function deriveAgentToken(masterSecret: string, who: TenantIdentity): string {
  return createHmac('sha256', masterSecret).update(label('agent-bearer', who)).digest('base64url');
}

/** Lowercase hex SHA-256 of a bearer: the form ZeroClaw accepts in `[gateway] paired_tokens`. */
export function agentTokenSha256(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Constant-time equality of a presented secret and the expected one (the length is not secret). */
export function secretsEqual(expected: string | Buffer, presented: string | undefined): boolean {
  if (!presented) return false;
  const want = typeof expected === 'string' ? Buffer.from(expected) : expected;
  const given = Buffer.from(presented);
  return given.length === want.length && timingSafeEqual(given, want);
}

/**
 * A per-tenant derivation remembered per process, so a busy tenant costs one HMAC, not one per
 * message. Keyed by id and incarnation (a re-created id is another entry). Bounded: when
 * `maxTenants` are remembered it starts over.
 */
export function memoizePerTenant(derive: (who: TenantIdentity) => string, maxTenants = 10_000): (who: TenantIdentity) => string {
  const known = new Map<string, string>();
  return (who) => {
    const key = label('webhook', who);
    let value = known.get(key);
    if (value === undefined) {
      if (known.size >= maxTenants) known.clear();
      value = derive(who);
      known.set(key, value);
    }
    return value;
  };
}

export function verifyWebhookSecret(masterSecret: string, who: TenantIdentity, presented: string | undefined): boolean {
  if (!presented || presented.length !== DERIVED_SECRET_LENGTH) return false;
  return secretsEqual(deriveWebhookSecret(masterSecret, who), presented);
}
