/**
 * Tenant id → incarnation in Redis (`ztm:incarnation:<id>`), for the services that verify a tenant's
 * secrets but do not read the registry (the ingress). The registry stays the truth: the index is
 * written when a tenant is created (before its webhook is set, so Telegram's first call finds it),
 * removed when it is deleted, and written again by anyone holding the record (repair after a lost
 * Redis). An absent entry means "id-only secrets" (a record from before incarnations, or no tenant).
 */
import type { RedisClient } from '../redis.js';
import { incarnationKey } from '../keys.js';
import { INCARNATION_PATTERN } from '../registry/tenant.js';
import { assertTenantId } from '../validate.js';
import type { TenantIdentity } from '../webhook-secret.js';

export class IncarnationIndex {
  constructor(private readonly redis: Pick<RedisClient, 'get' | 'set' | 'del'>) {}

  /** Records the tenant's incarnation; a record without one removes any entry (id-only secrets). */
  async publish(who: TenantIdentity): Promise<void> {
    const id = assertTenantId(who.tenant_id);
    if (who.incarnation === undefined) await this.redis.del(incarnationKey(id));
    else await this.redis.set(incarnationKey(id), who.incarnation);
  }

  async remove(tenantId: string): Promise<void> {
    await this.redis.del(incarnationKey(assertTenantId(tenantId)));
  }

  /** The identity to verify against: the stored incarnation, or none. A malformed entry is treated as none. */
  async identity(tenantId: string): Promise<TenantIdentity> {
    const value = await this.redis.get(incarnationKey(tenantId));
    return value !== null && INCARNATION_PATTERN.test(value) ? { tenant_id: tenantId, incarnation: value } : { tenant_id: tenantId };
  }
}
