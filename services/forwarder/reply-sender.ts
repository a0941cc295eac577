/**
 * Sends the agent's answer to the chat: split at Telegram's 4096-character limit, 429 honoured by
 * waiting `retry_after` (short waits inline, long ones hand the update back for later).
 */
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import { TelegramApiError, TelegramTransportError, splitMessage, type TelegramClient } from '../../lib/telegram-client.js';

export type SendOutcome =
  | { kind: 'sent'; messages: number }
  /** Telegram will not take it (blocked bot, chat gone…): drop the answer, move on. */
  | { kind: 'refused'; reason: string }
  /** Try again after `delayMs` (429 with a long retry_after, 5xx, network). */
  | { kind: 'later'; delayMs: number; reason: string };

const MAX_INLINE_WAIT_MS = 5_000;

export class ReplySender {
  constructor(private readonly o: { telegram: TelegramClient; log: Logger; metrics?: Metrics | undefined }) {}

  /** At-least-once: an answer retried after a partial send may repeat its first chunks. */
  async send(token: string, chatId: string, text: string): Promise<SendOutcome> {
    const chunks = splitMessage(text).filter((c) => c.trim().length > 0);
    for (const chunk of chunks) {
      const outcome = await this.sendOne(token, chatId, chunk);
      if (outcome !== 'ok') return outcome;
    }
    return { kind: 'sent', messages: chunks.length };
  }

  private async sendOne(token: string, chatId: string, text: string): Promise<'ok' | Exclude<SendOutcome, { kind: 'sent' }>> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.o.telegram.sendMessage(token, { chat_id: chatId, text });
        this.o.metrics?.telegramCalls.inc({ method: 'sendMessage', outcome: 'ok' });
        return 'ok';
      } catch (err) {
        if (err instanceof TelegramApiError && err.errorCode === 429) {
          this.o.metrics?.telegramCalls.inc({ method: 'sendMessage', outcome: '429' });
          const waitMs = (err.retryAfter ?? 1) * 1000;
          if (waitMs > MAX_INLINE_WAIT_MS) return { kind: 'later', delayMs: waitMs, reason: `telegram 429, retry after ${err.retryAfter}s` };
          this.o.log.warn({ retry_after: err.retryAfter }, 'telegram rate limit: waiting retry_after');
          await new Promise((r) => setTimeout(r, waitMs));
          continue;
        }
        if (err instanceof TelegramApiError && !err.retryable) {
          this.o.metrics?.telegramCalls.inc({ method: 'sendMessage', outcome: 'refused' });
          return { kind: 'refused', reason: `telegram ${err.errorCode}: ${err.description}` };
        }
        this.o.metrics?.telegramCalls.inc({ method: 'sendMessage', outcome: 'error' });
        const reason = err instanceof TelegramApiError ? `telegram ${err.errorCode}` : err instanceof TelegramTransportError ? `telegram unreachable (${err.kind})` : String(err);
        return { kind: 'later', delayMs: 1000 * 2 ** attempt, reason };
      }
    }
    return { kind: 'later', delayMs: 1000, reason: 'telegram rate limit persisted' };
  }
}
