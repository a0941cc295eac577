/**
 * A drain that found its tenant asleep waits for the wake in place, in its slot, woken by the
 * waker's announcement (EndpointWatch on `ztm:wake-done`), with "typing…" shown in the chat, instead
 * of parking its job (delayed, promoted by the waker, fetched again: three BullMQ trips on the first
 * message's path). At most `perQueue` drains of one queue (shard) wait like this at once, so a burst
 * of wakes in one shard does not hold the slots its awake tenants' drains need; past that, and
 * without a watch, the drain parks.
 */
import type { EndpointWatch } from '../../lib/delivery/endpoint-watch.js';
import type { Endpoints } from '../../lib/delivery/endpoints.js';
import type { TypingNotifier } from './typing-notifier.js';

/** How long a drain waits in place for a wake before parking its job instead. */
export const WAKE_WAIT_MS = 20_000;

export interface WakeWaiterOptions {
  endpoints: Endpoints;
  /** Without it every drain parks. */
  watch?: EndpointWatch | undefined;
  typing?: TypingNotifier | undefined;
  /** Drains of one queue that may wait in place at once (default: unbounded). */
  perQueue?: number | undefined;
}

export class WakeWaiter {
  /** Drains waiting in place, per queue. */
  private readonly waiting = new Map<string, number>();

  constructor(private readonly o: WakeWaiterOptions) {
    if (!o.endpoints) throw new TypeError('WakeWaiter: endpoints is required');
  }

  /** True when the tenant has an endpoint now (the wake ended); false: the drain should park. */
  async wait(tenantId: string, chatId: string, queue: string): Promise<boolean> {
    const { watch } = this.o;
    const waiting = this.waiting.get(queue) ?? 0;
    if (!watch || waiting >= (this.o.perQueue ?? Infinity)) return false;
    this.waiting.set(queue, waiting + 1);
    const typing = this.o.typing?.start(tenantId, chatId, { maxDurationMs: WAKE_WAIT_MS });
    try {
      return await watch.waitFor(tenantId, WAKE_WAIT_MS, async () => (await this.o.endpoints.get(tenantId)) !== undefined);
    } finally {
      typing?.stop();
      this.waiting.set(queue, (this.waiting.get(queue) ?? 1) - 1);
    }
  }
}
