/**
 * The ingress side of the upgrade from the single-slot delivery layout (`{mbox}`, `{forward}`) to
 * the sharded one (lib/delivery/shards.ts): while the legacy layout still holds undelivered mail,
 * the ingress answers 503 (Telegram retries), so no chat ever has updates in both layouts and its
 * order holds; the forwarders drain the legacy layout meanwhile (services/forwarder/forwarder.ts).
 * Drain-then-switch, without a migration of keys: nothing acknowledged is moved or lost.
 *
 * The check is one ZCARD of the legacy sweeper index (`{mbox}:scheduled`: every chat with a
 * responsible generation, i.e. with mail) every `intervalMs`, never per request; it keeps running
 * after the layout emptied, so an ingress of the old version still running (a rolling update)
 * closes the gate again for as long as it writes there.
 */
import type { Logger } from '../../lib/logger.js';
import type { RedisClient } from '../../lib/redis.js';
import type { Mailbox } from '../../lib/delivery/mailbox.js';
import { scheduledKey } from '../../lib/keys.js';
import { DeliveryLayout } from '../../lib/delivery/shards.js';

/** accept() refused because the legacy layout still has mail: the ingress answers 503, Telegram retries. */
export class LegacyLayoutPendingError extends Error {
  readonly code = 'LEGACY_LAYOUT_PENDING';
  constructor() {
    super('the delivery layout of the previous version is still draining');
  }
}

const LEGACY_INDEX = scheduledKey(DeliveryLayout.LEGACY.shards[0]!.tag);

export class LegacyGate {
  /** True until the first check found the legacy layout empty (closed: refuse). */
  private closed = true;
  private readonly timer: NodeJS.Timeout;
  private checked: Promise<void>;
  private warned = false;

  constructor(private readonly redis: Pick<RedisClient, 'zcard'>, private readonly log: Logger, intervalMs = 1000) {
    this.checked = this.check();
    this.timer = setInterval(() => void this.check(), intervalMs);
    this.timer.unref();
  }

  /** Resolves after the first check (tests, start-up). */
  ready(): Promise<void> {
    return this.checked;
  }

  get open(): boolean {
    return !this.closed;
  }

  private async check(): Promise<void> {
    try {
      const chats = await this.redis.zcard(LEGACY_INDEX);
      const closed = chats > 0;
      if (closed && !this.warned) this.log.warn({ chats }, 'the previous delivery layout still has mail: answering webhooks 503 until the forwarders drained it');
      if (!closed && this.closed && this.warned) this.log.info('the previous delivery layout is drained: accepting webhooks');
      this.warned = closed;
      this.closed = closed;
    } catch {
      // Redis unreachable: accepts fail anyway; keep the last verdict.
    }
  }

  /** The mailbox's accept behind the gate. */
  wrap(mailbox: Pick<Mailbox, 'accept'>): Pick<Mailbox, 'accept'> {
    return {
      accept: (...args: Parameters<Mailbox['accept']>) => (this.closed ? Promise.reject(new LegacyLayoutPendingError()) : mailbox.accept(...args)),
    };
  }

  close(): void {
    clearInterval(this.timer);
  }
}
