/**
 * Keeps a wake's lock (`tenant:waking:<id>`, WAKE_LOCK_TTL_S) while the wake is legitimately in
 * progress: a cold start that waits minutes for a node must not lose its lock at 240 s (another
 * waker would start a second pod, and the drains would ask again). Renewed on a timer (a third of
 * the TTL) and on the runtime's progress heartbeats, compare-and-renew by the owner's token
 * (ztmRenewWakeLock), and never past `untilMs` (the start's bound, COLD_START_TIMEOUT_S): a start
 * that hangs keeps its lock at most one TTL beyond its bound.
 */
import type { Logger } from '../../lib/logger.js';
import type { RedisClient } from '../../lib/redis.js';
import { wakeLockKey } from '../../lib/keys.js';
import { callScript } from '../../lib/redis-scripts.js';

export interface WakeLockHolderOptions {
  redis: RedisClient;
  log: Logger;
  tenantId: string;
  /** The value this wake set the lock to. */
  token: string;
  ttlS: number;
  /** No renewal after this (epoch ms). */
  untilMs: number;
  /** After each renewal that kept the lock (e.g. to extend what lives beside it). */
  onRenewed?: () => void;
}

export class WakeLockHolder {
  /** True once another wake holds the lock (this one lost it). */
  lost = false;
  renewals = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly minGapMs: number;
  private lastRenew = Date.now();
  private inFlight = false;
  private stopped = false;

  constructor(private readonly o: WakeLockHolderOptions) {
    const intervalMs = Math.max(1000, Math.floor((o.ttlS * 1000) / 3));
    // Heartbeats renew at most this often: a runtime reporting every second costs nothing extra.
    this.minGapMs = Math.max(500, Math.floor(intervalMs / 2));
    this.timer = setInterval(() => void this.renew(), intervalMs);
    this.timer.unref();
  }

  /** The runtime reported progress: renew if the last renewal is not recent. */
  heartbeat(): void {
    if (Date.now() - this.lastRenew >= this.minGapMs) void this.renew();
  }

  async renew(): Promise<void> {
    if (this.stopped || this.lost || this.inFlight) return;
    if (Date.now() > this.o.untilMs) {
      this.stop();
      this.o.log.warn({ tenant: this.o.tenantId }, 'wake lock no longer renewed: the start reached its bound (COLD_START_TIMEOUT_S)');
      return;
    }
    this.inFlight = true;
    this.lastRenew = Date.now();
    try {
      const r = await callScript<number>(this.o.redis, 'ztmRenewWakeLock', wakeLockKey(this.o.tenantId), this.o.token, this.o.ttlS);
      if (this.stopped) return;
      if (r === 0) {
        this.lost = true;
        this.o.log.error({ tenant: this.o.tenantId }, 'wake lock lost to another wake while starting');
        return;
      }
      if (r === 2) this.o.log.warn({ tenant: this.o.tenantId }, 'wake lock had expired or been cleared while starting: taken again');
      this.renewals++;
      this.o.onRenewed?.();
    } catch (err) {
      // Redis briefly away: the next tick tries again (the lock has most of its TTL left).
      this.o.log.warn({ tenant: this.o.tenantId, err }, 'wake lock renewal failed: will retry');
    } finally {
      this.inFlight = false;
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
