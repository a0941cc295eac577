/**
 * Which webhook secret is current for a tenant, checked on the ingress's hot path. The secret
 * depends on the tenant's incarnation (lib/webhook-secret.ts), which the ingress reads from Redis
 * (lib/tenants/incarnation-index.ts); what it costs:
 * - a presented value of the wrong shape (absent, not 43 characters): nothing, refused at once;
 * - a tenant verified within `ttlMs`: one constant-time comparison with no I/O (the entry is kept
 *   only after a correct secret, so forged requests cannot fill or churn it; bounded, oldest out);
 * - anything else: one Redis GET per tenant id per `lookupTtlMs` at most (concurrent requests share
 *   it; an unverified result is remembered in a second, bounded map that forged traffic may churn
 *   at the cost of more GETs only), and at most `maxInflight` lookups at once: past that the answer
 *   is 'unavailable' (503, Telegram retries) rather than a queue an attacker can grow.
 * A tenant deleted and re-created keeps being verified against the old incarnation in this process
 * until the first webhook with the new secret (a mismatch looks again) or the entry's expiry
 * (`ttlMs`), whichever is first.
 */
import { DERIVED_SECRET_LENGTH, deriveWebhookSecret, secretsEqual, type TenantIdentity } from '../../lib/webhook-secret.js';

export type Verdict = 'ok' | 'bad' | 'unavailable';

export interface WebhookVerifierOptions {
  masterSecret: string;
  /** The tenant's current identity (its incarnation, or none). Rejects on a storage failure. */
  lookup: (tenantId: string) => Promise<TenantIdentity>;
  /** How long a verified tenant is trusted without a look (default 30 s). */
  ttlMs?: number;
  /** How long a looked-up identity is reused, verified or not (default 1 s). */
  lookupTtlMs?: number;
  maxTenants?: number;
  maxLookups?: number;
  maxInflight?: number;
  lookupTimeoutMs?: number;
  /** Told of every failed lookup (the ingress's one warning per Redis outage). */
  onLookupError?: (err: unknown) => void;
}

interface Known {
  expected: Buffer;
  expires: number;
}

export class WebhookVerifier {
  private readonly verified = new Map<string, Known>();
  private readonly looked = new Map<string, Known>();
  private readonly inflight = new Map<string, Promise<Known>>();
  private readonly o: Required<WebhookVerifierOptions>;

  constructor(options: WebhookVerifierOptions) {
    if (typeof options.masterSecret !== 'string' || options.masterSecret === '') throw new TypeError('WebhookVerifier: masterSecret is required');
    if (typeof options.lookup !== 'function') throw new TypeError('WebhookVerifier: lookup is required');
    this.o = { ttlMs: 30_000, lookupTtlMs: 1000, maxTenants: 100_000, maxLookups: 10_000, maxInflight: 256, lookupTimeoutMs: 2000, onLookupError: () => undefined, ...options };
  }

  /** Synchronous when it can be decided without I/O (the common case), else a promise. */
  verify(tenantId: string, presented: string | undefined): Verdict | Promise<Verdict> {
    if (!presented || presented.length !== DERIVED_SECRET_LENGTH) return 'bad';
    const now = Date.now();
    const known = this.verified.get(tenantId);
    if (known && known.expires > now && secretsEqual(known.expected, presented)) return 'ok';
    // Unknown, expired, or a mismatch (a forgery, or a re-created tenant's new secret): look.
    const looked = this.looked.get(tenantId);
    if (looked && looked.expires > now) return this.check(tenantId, looked, presented);
    let pending = this.inflight.get(tenantId);
    if (!pending) {
      if (this.inflight.size >= this.o.maxInflight) return 'unavailable';
      pending = this.look(tenantId).finally(() => this.inflight.delete(tenantId));
      this.inflight.set(tenantId, pending);
    }
    return pending.then((entry) => this.check(tenantId, entry, presented), (err: unknown) => {
      this.o.onLookupError(err);
      return 'unavailable' as const;
    });
  }

  /** Forgets what this process knows of a tenant (tests; an operator's delete seen by this process). */
  forget(tenantId: string): void {
    this.verified.delete(tenantId);
    this.looked.delete(tenantId);
  }

  private check(tenantId: string, entry: Known, presented: string): Verdict {
    if (!secretsEqual(entry.expected, presented)) return 'bad';
    // Promoted: a later mismatch (maybe the secret of a re-created tenant) looks again at once.
    this.looked.delete(tenantId);
    this.verified.delete(tenantId);
    if (this.verified.size >= this.o.maxTenants) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(tenantId, { expected: entry.expected, expires: Date.now() + this.o.ttlMs });
    return 'ok';
  }

  private async look(tenantId: string): Promise<Known> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const who = await Promise.race([
        this.o.lookup(tenantId),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('incarnation lookup timed out')), this.o.lookupTimeoutMs);
        }),
      ]);
      if (who.tenant_id !== tenantId) throw new Error('incarnation lookup answered for another tenant');
      const entry = { expected: Buffer.from(deriveWebhookSecret(this.o.masterSecret, who)), expires: Date.now() + this.o.lookupTtlMs };
      if (this.looked.size >= this.o.maxLookups) this.looked.clear();
      this.looked.set(tenantId, entry);
      return entry;
    } finally {
      clearTimeout(timer);
    }
  }
}
