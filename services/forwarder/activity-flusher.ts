/**
 * The forwarder's per-delivery bookkeeping outside the mailbox, coalesced: the activity index
 * (`ztm:activity`, `ztm:idle-deadline`: lib/tenants/activity.ts) and the tenants' messages of the
 * day (lib/tenants/tenant-stats.ts). Each delivery only notes its tenant in memory; every
 * `intervalMs` (1 s) one multi-member ZADD per index and one script per delivery shard for the
 * day's counts write what was noted. At 2,000 deliveries/s that is a few commands a second instead
 * of three per delivery; the indexes sit in one slot each, the counts in their tenants' shards (a
 * HINCRBY per tenant: in one slot they would load one master with every tenant's count).
 *
 * What this changes: the idle deadline and the day's count lag a delivery by at most `intervalMs`
 * (the idle check runs every IDLE_CHECK_INTERVAL_S, 30 s; idle timeouts are minutes), and a
 * forwarder killed between flushes loses at most that second's counts of the day (activity is
 * rewritten by the next delivery). Only tenants in the index are written (the waker adds one at its
 * wake): a flush after a delete or a sleep does not bring the tenant back. close() flushes.
 */
import type { Logger } from '../../lib/logger.js';
import type { RedisClient } from '../../lib/redis.js';
import { activityKey, IDLE_DEADLINE_KEY } from '../../lib/keys.js';
import { MESSAGES_DAY_TTL_S, messagesDayKeyOf, utcDay } from '../../lib/tenants/tenant-stats.js';
import { callScript } from '../../lib/redis-scripts.js';

interface Noted {
  at: number;
  idleTimeoutS: number | undefined;
  messages: number;
}

export class ActivityFlusher {
  private noted = new Map<string, Noted>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly redis: RedisClient, private readonly log: Logger, intervalMs = 1000) {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /**
   * One delivery of `tenantId` (its idle timeout, when the tenant's record is known: without it the
   * activity is not written, as before). `message`: count it in the day's messages.
   */
  note(tenantId: string, idleTimeoutS: number | undefined, message = true, now = Date.now()): void {
    const n = this.noted.get(tenantId);
    if (n) {
      n.at = now;
      n.idleTimeoutS = idleTimeoutS ?? n.idleTimeoutS;
      if (message) n.messages++;
    } else {
      this.noted.set(tenantId, { at: now, idleTimeoutS, messages: message ? 1 : 0 });
    }
  }

  /** Writes what was noted since the last flush (one at a time; a failure is logged and dropped). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write()).catch((err: unknown) => this.log.warn({ err }, 'activity flush failed'));
    return this.flushing;
  }

  private async write(): Promise<void> {
    if (this.noted.size === 0) return;
    const batch = this.noted;
    this.noted = new Map();
    const activity: Array<string | number> = [];
    const deadlines: Array<string | number> = [];
    const counts = new Map<string, Array<string | number>>();
    const day = utcDay();
    for (const [tenantId, n] of batch) {
      if (n.idleTimeoutS !== undefined) {
        activity.push(n.at, tenantId);
        deadlines.push(n.at + n.idleTimeoutS * 1000, tenantId);
      }
      if (n.messages > 0) {
        const key = messagesDayKeyOf(tenantId, day);
        const pairs = counts.get(key);
        if (pairs) pairs.push(tenantId, n.messages);
        else counts.set(key, [tenantId, n.messages]);
      }
    }
    await Promise.all([
      // XX: only tenants still in the index (the waker adds a tenant when it wakes). A tenant put to
      // sleep or deleted since its delivery was noted is not written back; GT: a late flush never
      // moves a newer activity back.
      activity.length ? this.redis.zadd(activityKey, 'XX', 'GT', ...activity) : undefined,
      deadlines.length ? this.redis.zadd(IDLE_DEADLINE_KEY, 'XX', 'GT', ...deadlines) : undefined,
      ...[...counts].map(([key, pairs]) => callScript(this.redis, 'ztmCountMessages', key, MESSAGES_DAY_TTL_S, ...pairs)),
    ]);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
