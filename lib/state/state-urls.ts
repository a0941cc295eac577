/**
 * Lifetime of the presigned state URLs a pod holds. The waker presigns at wake and records when; the
 * reconciler hands a running pod fresh URLs well before they expire, so a tenant that never goes
 * idle still checkpoints (and a pod never holds a long-lived credential).
 */
import type { RedisClient } from '../redis.js';
import { STATE_URLS_ISSUED_KEY as ISSUED_KEY } from '../keys.js';

/** How long presigned URLs are valid. With STS session credentials (IRSA) they die with the session sooner: refresh covers that. */
export const STATE_URL_TTL_S = 3600;
/** Refresh when URLs are older than this: short, since URLs signed with STS session credentials die with the session. */
export const STATE_URL_REFRESH_AFTER_MS = 15 * 60 * 1000;


export class StateUrlLedger {
  constructor(private readonly redis: RedisClient) {}

  async issued(tenantId: string, at = Date.now()): Promise<void> {
    await this.redis.hset(ISSUED_KEY, tenantId, String(at));
  }

  /** When the tenant's current URLs were issued (undefined: unknown, e.g. before an upgrade). */
  async issuedAt(tenantId: string): Promise<number | undefined> {
    const v = await this.redis.hget(ISSUED_KEY, tenantId);
    return v === null ? undefined : Number(v);
  }

  async forget(tenantId: string): Promise<void> {
    await this.redis.hdel(ISSUED_KEY, tenantId);
  }
}
