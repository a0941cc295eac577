/**
 * The activity index the idle check reads instead of scanning the registry: two sorted sets,
 * last activity (ms) per awake tenant and its idle deadline (last activity + idle_timeout_s).
 * Written with one ZADD pair per delivery; DynamoDB's last_active_at is written lazily at stop.
 */
import type { RedisClient } from '../redis.js';
import { activityKey } from '../keys.js';
import { callScript } from '../redis-scripts.js';
import { IDLE_DEADLINE_KEY } from '../keys.js';

export { IDLE_DEADLINE_KEY } from '../keys.js';


export class Activity {
  constructor(private readonly redis: RedisClient) {}

  /**
   * Last activity and idle deadline: two ZADDs, sent together by an auto-pipelined client with
   * whatever else the caller sends in this turn (the forwarder, after every delivery). Not atomic:
   * each is idempotent and the next activity writes both again.
   */
  static write(redis: RedisClient, tenantId: string, idleTimeoutS: number, now = Date.now()): Promise<unknown> {
    return Promise.all([redis.zadd(activityKey, now, tenantId), redis.zadd(IDLE_DEADLINE_KEY, now + idleTimeoutS * 1000, tenantId)]);
  }

  async touch(tenantId: string, idleTimeoutS: number, now = Date.now()): Promise<void> {
    await Activity.write(this.redis, tenantId, idleTimeoutS, now);
  }

  /** Moves the deadline when an operator changes the idle timeout of an awake tenant. */
  async retime(tenantId: string, idleTimeoutS: number): Promise<void> {
    const last = await this.redis.zscore(activityKey, tenantId);
    if (last !== null) await this.redis.zadd(IDLE_DEADLINE_KEY, Number(last) + idleTimeoutS * 1000, tenantId);
  }

  async lastActive(tenantId: string): Promise<number | undefined> {
    const v = await this.redis.zscore(activityKey, tenantId);
    return v === null ? undefined : Number(v);
  }

  async takeExpired(now: number, limit: number): Promise<string[]> {
    return callScript<string[]>(this.redis, 'ztmTakeExpired', IDLE_DEADLINE_KEY, now, limit);
  }

  /** Tenants the platform believes awake (for the reconciler), oldest activity first. */
  async awake(limit = 100_000): Promise<string[]> {
    return this.redis.zrange(activityKey, 0, limit - 1);
  }

  /**
   * Removes the tenant from both sets: two commands, not a MULTI (the two keys hash to different
   * slots on a Redis Cluster). Each is idempotent; a clear that failed half-way is redone whole.
   */
  async clear(tenantId: string): Promise<void> {
    await Promise.all([this.redis.zrem(activityKey, tenantId), this.redis.zrem(IDLE_DEADLINE_KEY, tenantId)]);
  }
}
