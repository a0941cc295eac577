/**
 * Per-tenant facts the delivery path needs (bot token, existence, incarnation), cached in memory for a short
 * TTL so the forwarder does not read DynamoDB per update: one read per tenant per TTL, at most.
 */
import type { TenantRegistry } from '../registry/tenant-registry.js';
import type { TenantIdentity } from '../webhook-secret.js';

/** What the delivery path needs of a tenant. */
export interface TenantFacts {
  botToken: string;
  idleTimeoutS: number;
  /** Absent for a record from before incarnations (id-only secrets). */
  incarnation?: string;
}

interface Entry {
  facts: TenantFacts | undefined;
  expires: number;
}

export class TenantCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<TenantFacts | undefined>>();
  private readonly registry: TenantRegistry;
  private readonly ttlMs: number;
  private readonly maxEntries: number;

  constructor(options: { registry: TenantRegistry; ttlMs?: number; maxEntries?: number }) {
    if (!options.registry) throw new TypeError('TenantCache: registry is required');
    this.registry = options.registry;
    this.ttlMs = options.ttlMs ?? 60_000;
    this.maxEntries = options.maxEntries ?? 50_000;
  }

  /** The tenant's bot token, or undefined when the tenant does not exist. */
  async botToken(tenantId: string): Promise<string | undefined> {
    return (await this.facts(tenantId))?.botToken;
  }

  /**
   * What the tenant's secrets are derived for (lib/webhook-secret.ts). A tenant that does not exist
   * gets the id-only identity: whatever agent answers there cannot be its incarnation's.
   */
  async identity(tenantId: string): Promise<TenantIdentity> {
    const incarnation = (await this.facts(tenantId))?.incarnation;
    return incarnation === undefined ? { tenant_id: tenantId } : { tenant_id: tenantId, incarnation };
  }

  /** Token and idle timeout, or undefined when the tenant does not exist. */
  async facts(tenantId: string): Promise<TenantFacts | undefined> {
    const hit = this.entries.get(tenantId);
    if (hit && hit.expires > Date.now()) return hit.facts;
    let pending = this.inflight.get(tenantId);
    if (!pending) {
      pending = this.registry.get(tenantId).then((t) => {
        if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
        const facts: TenantFacts | undefined = t
          ? { botToken: t.bot_token, idleTimeoutS: t.idle_timeout_s, ...(t.incarnation === undefined ? {} : { incarnation: t.incarnation }) }
          : undefined;
        this.entries.set(tenantId, { facts, expires: Date.now() + this.ttlMs });
        return facts;
      }).finally(() => this.inflight.delete(tenantId));
      this.inflight.set(tenantId, pending);
    }
    return pending;
  }

  invalidate(tenantId: string): void {
    this.entries.delete(tenantId);
  }
}
