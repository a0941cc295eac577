/**
 * Sends the agent's answer to the chat: split at Telegram's 4096-character limit, 429 honoured by
 * waiting `retry_after` (short waits inline, long ones hand the update back for later). A 429 is
 * Telegram telling the *bot* to slow down: until its retry_after has passed, no call of this
 * process goes to that bot, whichever chat it is for (other bots are not held back). Each
 * forwarder replica learns it from its own first 429.
 */
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import { TelegramApiError, TelegramTransportError, splitMessage, type TelegramClient } from '../../lib/telegram-client.js';

/** `sent`: chunks of the text Telegram took so far (including those of earlier tries). */
export type SendOutcome =
  | { kind: 'sent'; messages: number }
  /** Telegram will not take it (blocked bot, chat gone, token revoked…): drop the answer, move on. */
  | { kind: 'refused'; reason: string; errorCode: number; sent: number }
  /** Try again after `delayMs` (429 with a long retry_after, 5xx, network). */
  | { kind: 'later'; delayMs: number; reason: string; sent: number };

/** Where a long answer's send stands, so a retry goes on where the last one stopped. */
export interface SendProgress {
  /** Chunks an earlier try already sent: they are skipped. */
  from?: number;
  /** Awaited after each chunk Telegram took, with the chunks sent so far and their total. */
  onSent?: (sent: number, total: number) => Promise<void>;
}

const MAX_INLINE_WAIT_MS = 5_000;

export class ReplySender {
  /** Per bot token: no call before this time (ms since the epoch), from a 429's retry_after. */
  private readonly quietUntil = new Map<string, number>();

  constructor(private readonly o: { telegram: TelegramClient; log: Logger; metrics?: Metrics | undefined }) {}

  /** Milliseconds this bot must still stay quiet (0 when it may call); also the typing notifier's gate. */
  quietFor(token: string): number {
    const until = this.quietUntil.get(token);
    if (until === undefined) return 0;
    const left = until - Date.now();
    if (left <= 0) this.quietUntil.delete(token);
    return Math.max(0, left);
  }

  /** A 429 told this bot to wait `ms` (from an answer, or from a typing action: typing-notifier.ts). */
  quiet(token: string, ms: number): void {
    this.quietUntil.set(token, Math.max(this.quietUntil.get(token) ?? 0, Date.now() + ms));
  }

  /**
   * Sends `text` in chunks of at most 4096 characters (the split is deterministic, so chunk numbers
   * stay valid across processes). At-least-once per chunk: with `progress` recorded after each one, a
   * retry repeats at most the chunk that was in flight.
   */
  async send(token: string, chatId: string, text: string, progress: SendProgress = {}): Promise<SendOutcome> {
    const chunks = splitMessage(text).filter((c) => c.trim().length > 0);
    const from = Math.max(0, progress.from ?? 0);
    for (let i = from; i < chunks.length; i++) {
      const outcome = await this.sendOne(token, chatId, chunks[i] as string);
      if (outcome !== 'ok') return { ...outcome, sent: i };
      await progress.onSent?.(i + 1, chunks.length);
    }
    return { kind: 'sent', messages: Math.max(0, chunks.length - from) };
  }

  private async sendOne(token: string, chatId: string, text: string): Promise<'ok' | DistributiveOmit<Exclude<SendOutcome, { kind: 'sent' }>, 'sent'>> {
    for (let attempt = 0; attempt < 3; attempt++) {
      // Another chat of this bot may have been told to wait: so is this one (re-checked after each
      // wait, as a 429 to yet another chat may have extended it).
      for (let quiet = this.quietFor(token); quiet > 0; quiet = this.quietFor(token)) {
        if (quiet > MAX_INLINE_WAIT_MS) return { kind: 'later', delayMs: quiet, reason: 'telegram rate limit: bot is waiting retry_after' };
        await new Promise((r) => setTimeout(r, quiet));
      }
      try {
        await this.o.telegram.sendMessage(token, { chat_id: chatId, text });
        this.o.metrics?.telegramCalls.inc({ method: 'sendMessage', outcome: 'ok' });
        return 'ok';
      } catch (err) {
        if (err instanceof TelegramApiError && err.errorCode === 429) {
          this.o.metrics?.telegramCalls.inc({ method: 'sendMessage', outcome: '429' });
          const waitMs = (err.retryAfter ?? 1) * 1000;
          this.quiet(token, waitMs);
          if (waitMs > MAX_INLINE_WAIT_MS) return { kind: 'later', delayMs: waitMs, reason: `telegram 429, retry after ${err.retryAfter}s` };
          this.o.log.warn({ retry_after: err.retryAfter }, 'telegram rate limit: waiting retry_after');
          continue; // the wait is at the top of the loop, shared with this bot's other chats
        }
        if (err instanceof TelegramApiError && !err.retryable) {
          this.o.metrics?.telegramCalls.inc({ method: 'sendMessage', outcome: 'refused' });
          return { kind: 'refused', reason: `telegram ${err.errorCode}: ${err.description}`, errorCode: err.errorCode };
        }
        this.o.metrics?.telegramCalls.inc({ method: 'sendMessage', outcome: 'error' });
        const reason = err instanceof TelegramApiError ? `telegram ${err.errorCode}` : err instanceof TelegramTransportError ? `telegram unreachable (${err.kind})` : String(err);
        return { kind: 'later', delayMs: 1000 * 2 ** attempt, reason };
      }
    }
    return { kind: 'later', delayMs: 1000, reason: 'telegram rate limit persisted' };
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
