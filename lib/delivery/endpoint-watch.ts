/**
 * Lets a drain that found its tenant asleep wait in place for the wake instead of parking its job:
 * the waker announces every finished wake (ready or failed) on one pub/sub channel, and the waiting
 * drains of that tenant go on at once. Parking (a delayed job the waker promotes) stays the
 * fallback: when too many drains wait already, when the wake takes longer than the wait, or while
 * the subscription is not up. Waiting saves the park → promote → fetch trip through BullMQ, which
 * dominated the first message's latency after a warm wake.
 */
import { closeRedis, type RedisClient } from '../redis.js';
import type { Logger } from '../logger.js';
import { WAKE_DONE_CHANNEL } from '../keys.js';

/** Channel of finished wakes; the message is the tenant id. */
export { WAKE_DONE_CHANNEL } from '../keys.js';

export interface EndpointWatchOptions {
  /** A client to duplicate: subscribing takes a connection of its own. */
  redis: RedisClient;
  log: Logger;
  /** Most drains waiting at once (each holds a worker slot); beyond that they park. */
  maxWaiters: number;
}

interface Waiter {
  resolve: (announced: boolean) => void;
  timer: NodeJS.Timeout;
}

export class EndpointWatch {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly subscriber: RedisClient;
  private readonly maxWaiters: number;
  private count = 0;
  private subscribed = false;
  private closed = false;

  constructor(private readonly o: EndpointWatchOptions) {
    if (!o.redis || !o.log) throw new TypeError('EndpointWatch: redis and log are required');
    if (!Number.isInteger(o.maxWaiters) || o.maxWaiters < 0) throw new TypeError('EndpointWatch: maxWaiters must be a whole number');
    this.maxWaiters = o.maxWaiters;
    this.subscriber = o.redis.duplicate();
    this.subscriber.on('error', (err: Error) => o.log.debug({ err }, 'wake watch connection error'));
    this.subscriber.on('message', (_channel: string, tenantId: string) => this.release(tenantId, true));
  }

  /** Subscribes; until this resolves, waitFor() answers false at once (the drain parks). */
  async start(): Promise<void> {
    if (this.maxWaiters === 0) return;
    await this.subscriber.subscribe(WAKE_DONE_CHANNEL);
    this.subscribed = !this.closed;
  }

  /**
   * Resolves true when a wake of the tenant finished within `timeoutMs`, false on timeout, when
   * waiting is not possible (not subscribed, too many waiters) or when closing. `recheck` runs after
   * the waiter is registered and ends the wait at once when it finds the wake already done, so an
   * announcement between the caller's last look and the registration is never missed.
   */
  async waitFor(tenantId: string, timeoutMs: number, recheck: () => Promise<boolean>): Promise<boolean> {
    if (!this.subscribed || this.closed || this.count >= this.maxWaiters) return false;
    const announced = new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => this.remove(tenantId, waiter, false), timeoutMs),
      };
      let set = this.waiters.get(tenantId);
      if (!set) this.waiters.set(tenantId, (set = new Set()));
      set.add(waiter);
      this.count++;
      void recheck().then((done) => done && this.remove(tenantId, waiter, true), () => undefined);
    });
    return announced;
  }

  /** Drains waiting now (for tests and metrics). */
  get waiting(): number {
    return this.count;
  }

  private remove(tenantId: string, waiter: Waiter, announced: boolean): void {
    const set = this.waiters.get(tenantId);
    if (!set?.delete(waiter)) return;
    if (set.size === 0) this.waiters.delete(tenantId);
    this.count--;
    clearTimeout(waiter.timer);
    waiter.resolve(announced);
  }

  private release(tenantId: string, announced: boolean): void {
    for (const waiter of [...(this.waiters.get(tenantId) ?? [])]) this.remove(tenantId, waiter, announced);
  }

  /** Ends every wait (the drains park), then closes the subscription. */
  async close(): Promise<void> {
    this.closed = true;
    this.subscribed = false;
    for (const tenantId of [...this.waiters.keys()]) this.release(tenantId, false);
    await closeRedis(this.subscriber);
  }
}
