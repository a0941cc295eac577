/**
 * Per-token rate limit of the admin API: a token bucket in Redis (token-bucket-lua.ts). In Redis and
 * not in each replica's memory: with N replicas behind a Service a per-replica bucket would allow N
 * times the budget, unevenly, and forget it at every restart; one EVALSHA per request is nothing
 * beside the admin command the request then runs (a queue round trip and a registry write).
 */
import { RateLimitedError } from '../errors.js';
import { apiRateKey } from '../keys.js';
import { callScript } from '../redis-scripts.js';
import type { RedisClient } from '../redis.js';

export interface RateLimit {
  /** Tokens added per minute. */
  perMin: number;
  /** Bucket size: requests allowed at once after a quiet spell. */
  burst: number;
}

export interface RateDecision {
  allowed: boolean;
  remaining: number;
  /** Whole seconds until a request is allowed again (0 when allowed). */
  retryAfterS: number;
}

export class RateLimiter {
  constructor(private readonly redis: RedisClient) {
    if (!redis) throw new TypeError('RateLimiter: redis is required');
  }

  async take(tokenId: string, limit: RateLimit): Promise<RateDecision> {
    // Kept until the bucket would be full again, plus a minute: an idle token costs no memory.
    const ttlMs = Math.ceil((limit.burst / limit.perMin) * 60_000) + 60_000;
    const [allowed, remaining, waitMs] = await callScript<[number, number, number]>(this.redis, 'ztmApiTokenBucket', apiRateKey(tokenId), limit.burst, limit.perMin, ttlMs);
    return { allowed: allowed === 1, remaining, retryAfterS: allowed === 1 ? 0 : Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** Takes one request from the token's bucket or throws RateLimitedError (HTTP 429 with Retry-After). */
  async enforce(tokenId: string, limit: RateLimit): Promise<RateDecision> {
    const d = await this.take(tokenId, limit);
    if (!d.allowed) throw new RateLimitedError(`rate limit of ${limit.perMin} requests per minute (burst ${limit.burst}) reached: retry in ${d.retryAfterS}s`, d.retryAfterS);
    return d;
  }
}
