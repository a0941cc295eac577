/**
 * Per-tenant facts the delivery path needs (bot token, existence), cached in memory for a short
 * TTL so the forwarder does not read DynamoDB per update: one read per tenant per TTL, at most.
 */
import type { TenantRegistry } from '../registry/tenant-registry.js';

interface Entry {
  token: string | undefined;
  expires: number;
}

export class TenantCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<string | undefined>>();
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
    const hit = this.entries.get(tenantId);
    if (hit && hit.expires > Date.now()) return hit.token;
    let pending = this.inflight.get(tenantId);
    if (!pending) {
      pending = this.registry.get(tenantId).then((t) => {
        if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
        this.entries.set(tenantId, { token: t?.bot_token, expires: Date.now() + this.ttlMs });
        return t?.bot_token;
      }).finally(() => this.inflight.delete(tenantId));
      this.inflight.set(tenantId, pending);
    }
    return pending;
  }

  invalidate(tenantId: string): void {
    this.entries.delete(tenantId);
  }
}
