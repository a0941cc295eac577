/**
 * "typing…" for a chat while it waits: for its tenant's wake (the drain waiting in place) and for
 * the agent's answer (zeroclaw protocol). Telegram clients show a chat action for about 5 s, so it
 * is refreshed every INTERVAL (4.5 s). The first action goes out only after FIRST_AFTER (1 s): an
 * agent that answers fast costs nothing. Bounded: it stops when the wait ends (the handle's stop),
 * at a per-wait maximum, or for good for that wait when Telegram refuses the chat (403 blocked, 400
 * chat not found). A 429 is honoured: a 429 is Telegram telling the *bot* to slow down, so no
 * action goes to that bot before its retry_after, whoever got the 429 (the answers' ReplySender
 * shares its gate: a 429 to an answer quiets the typing, and one to a typing action the answers).
 * Never more than one call in flight per chat; the per-chat pacing outlives a wait briefly, so a drain that parks
 * and resumes, or goes from the wake to the agent, keeps the cadence instead of starting over.
 * In memory only: no Redis command per update.
 */
import type { Logger } from '../../lib/logger.js';
import type { Metrics } from '../../lib/metrics.js';
import { TelegramApiError, type TelegramClient } from '../../lib/telegram-client.js';

/** Per bot token: how long it must stay quiet (a 429's retry_after), shared with the answers' sender. */
export interface BotQuietGate {
  /** Milliseconds the bot must still stay quiet (0: it may call). */
  quietFor(token: string): number;
  /** A 429 told the bot to wait `ms`. */
  quiet(token: string, ms: number): void;
}

export interface TypingNotifierOptions {
  telegram: Pick<TelegramClient, 'sendChatAction'>;
  /** The bots' 429 gate (ReplySender); default: this notifier's own. */
  gate?: BotQuietGate;
  metrics?: Metrics | undefined;
  /** The tenant's bot token (TenantCache: in memory); undefined sends nothing. */
  tokenOf: (tenantId: string) => Promise<string | undefined>;
  log: Logger;
  /** Delay of a wait's first action (default 1000 ms). */
  firstAfterMs?: number;
  /** Between two actions of a chat (default 4500 ms; Telegram shows one for about 5 s). */
  intervalMs?: number;
  /** The longest a wait gets actions (default 10 min; a wait may ask for less). */
  maxDurationMs?: number;
  /** Chats followed at once; beyond, new waits get none (default 10 000). */
  maxChats?: number;
}

export interface TypingHandle {
  /** The wait ended (an answer, a failure): no further action for it. Idempotent. */
  stop(): void;
}

/** One chat's pacing; kept a little after its last wait ended. */
interface ChatState {
  tenantId: string;
  chatId: string;
  /** Waits in progress for this chat (normally one: a chat has one drain at a time). */
  waits: Set<Wait>;
  timer: NodeJS.Timeout | undefined;
  inFlight: boolean;
  lastSentAt: number | undefined;
  /** No action before this (a 429's retry_after). */
  notBefore: number;
}

interface Wait {
  deadline: number;
  /** Telegram refused this chat's actions: none for the rest of this wait. */
  refused: boolean;
}

const NOOP: TypingHandle = { stop: () => undefined };

export class TypingNotifier {
  private readonly chats = new Map<string, ChatState>();
  private readonly firstAfterMs: number;
  private readonly intervalMs: number;
  private readonly maxDurationMs: number;
  private readonly maxChats: number;
  private readonly gate: BotQuietGate;
  private closed = false;
  /** Actions Telegram took, and 429s it answered (for tests and logs). */
  sent = 0;
  throttled = 0;

  constructor(private readonly o: TypingNotifierOptions) {
    if (!o?.telegram || !o.tokenOf || !o.log) throw new TypeError('TypingNotifier: telegram, tokenOf and log are required');
    this.firstAfterMs = positive('firstAfterMs', o.firstAfterMs, 1000);
    this.intervalMs = positive('intervalMs', o.intervalMs, 4500);
    this.maxDurationMs = positive('maxDurationMs', o.maxDurationMs, 600_000);
    this.maxChats = positive('maxChats', o.maxChats, 10_000);
    this.gate = o.gate ?? localGate();
  }

  /** Starts "typing…" for one wait of a chat; call stop() when the wait ends. */
  start(tenantId: string, chatId: string, options: { maxDurationMs?: number } = {}): TypingHandle {
    if (this.closed) return NOOP;
    const key = `${tenantId}\u0000${chatId}`;
    let chat = this.chats.get(key);
    if (!chat) {
      if (this.chats.size >= this.maxChats) return NOOP;
      chat = { tenantId, chatId, waits: new Set(), timer: undefined, inFlight: false, lastSentAt: undefined, notBefore: 0 };
      this.chats.set(key, chat);
    }
    const wasLive = this.live(chat);
    const wait: Wait = { deadline: Date.now() + Math.min(options.maxDurationMs ?? this.maxDurationMs, this.maxDurationMs), refused: false };
    chat.waits.add(wait);
    // Never sooner than FIRST_AFTER from now (a fast answer costs nothing), nor sooner than the
    // chat's cadence or its 429 allow. A chat already typing for another wait keeps its timer.
    const at = Math.max(Date.now() + this.firstAfterMs, (chat.lastSentAt ?? 0) + this.intervalMs, chat.notBefore);
    if (!wasLive && !chat.inFlight) this.schedule(key, chat, at);
    const state = chat;
    return {
      stop: () => {
        if (!state.waits.delete(wait)) return;
        if (!this.live(state)) this.idle(key, state);
      },
    };
  }

  /** Runs `work` with "typing…" for its chat until it settles. */
  async during<T>(tenantId: string, chatId: string, work: () => Promise<T>, options: { maxDurationMs?: number } = {}): Promise<T> {
    const handle = this.start(tenantId, chatId, options);
    try {
      return await work();
    } finally {
      handle.stop();
    }
  }

  /** Chats with a wait in progress. */
  get activeChats(): number {
    let n = 0;
    for (const chat of this.chats.values()) if (this.live(chat)) n++;
    return n;
  }

  /** Stops every wait's actions; later starts send nothing. */
  close(): void {
    this.closed = true;
    for (const chat of this.chats.values()) {
      chat.waits.clear();
      if (chat.timer) clearTimeout(chat.timer);
    }
    this.chats.clear();
  }

  /** A wait still wants actions: not past its bound, not refused. */
  private live(chat: ChatState): boolean {
    const now = Date.now();
    for (const w of chat.waits) if (!w.refused && now <= w.deadline) return true;
    return false;
  }

  private schedule(key: string, chat: ChatState, at: number): void {
    if (chat.timer) clearTimeout(chat.timer);
    chat.timer = setTimeout(() => void this.tick(key, chat), Math.max(0, at - Date.now()));
    chat.timer.unref();
  }

  /**
   * No wait wants actions: the pacing stays until it no longer matters (the cadence or a 429's
   * allow has passed), so a wait that follows at once keeps it; then the chat is forgotten.
   */
  private idle(key: string, chat: ChatState): void {
    if (chat.inFlight) return; // tick() comes back here when the call ends
    const keepUntil = Math.max((chat.lastSentAt ?? 0) + this.intervalMs, chat.notBefore);
    if (chat.timer) clearTimeout(chat.timer);
    chat.timer = undefined;
    if (keepUntil <= Date.now()) {
      if (this.chats.get(key) === chat) this.chats.delete(key);
      return;
    }
    chat.timer = setTimeout(() => {
      chat.timer = undefined;
      if (!this.live(chat) && this.chats.get(key) === chat) this.chats.delete(key);
    }, keepUntil - Date.now());
    chat.timer.unref();
  }

  private async tick(key: string, chat: ChatState): Promise<void> {
    chat.timer = undefined;
    if (this.closed || this.chats.get(key) !== chat) return;
    if (!this.live(chat)) return this.idle(key, chat);
    if (Date.now() < chat.notBefore) return this.schedule(key, chat, chat.notBefore);
    chat.inFlight = true;
    let next = Date.now() + this.intervalMs;
    try {
      const token = await this.o.tokenOf(chat.tenantId);
      if (token === undefined) {
        for (const w of chat.waits) w.refused = true;
      } else if (this.gate.quietFor(token) > 0) {
        // The bot was told to wait (a 429 to one of its answers or actions): this one is skipped.
        next = Math.max(next, Date.now() + this.gate.quietFor(token));
      } else {
        const sent = await this.o.telegram.sendChatAction(token, { chat_id: chat.chatId, action: 'typing' }).then(
          () => true,
          (err: unknown) => {
            next = this.failed(chat, token, err, next);
            return false;
          },
        );
        if (sent) {
          this.o.metrics?.telegramCalls.inc({ method: 'sendChatAction', outcome: 'ok' });
          chat.lastSentAt = Date.now();
          this.sent++;
          next = chat.lastSentAt + this.intervalMs;
        }
      }
    } catch (err) {
      // tokenOf failed (the registry): try again at the next interval.
      this.o.log.debug({ tenant: chat.tenantId, err }, 'typing action: no token');
    } finally {
      chat.inFlight = false;
    }
    if (this.closed || this.chats.get(key) !== chat) return;
    if (!this.live(chat)) return this.idle(key, chat);
    this.schedule(key, chat, next);
  }

  /** When the chat's next action may go, after Telegram refused this one. */
  private failed(chat: ChatState, token: string, err: unknown, next: number): number {
    const log = { tenant: chat.tenantId, chat: chat.chatId };
    const outcome = err instanceof TelegramApiError ? (err.errorCode === 429 ? '429' : err.retryable ? 'error' : 'refused') : 'error';
    this.o.metrics?.telegramCalls.inc({ method: 'sendChatAction', outcome });
    if (err instanceof TelegramApiError && err.errorCode === 429) {
      this.throttled++;
      const waitMs = Math.max(1, err.retryAfter ?? 1) * 1000;
      this.gate.quiet(token, waitMs);
      chat.notBefore = Date.now() + waitMs;
      this.o.log.debug({ ...log, retry_after: err.retryAfter }, 'typing action rate limited: backing off');
      return Math.max(next, chat.notBefore);
    }
    if (err instanceof TelegramApiError && err.errorCode >= 400 && err.errorCode < 500) {
      // Blocked, chat gone, token revoked: asking again this wait cannot help.
      for (const w of chat.waits) w.refused = true;
      this.o.log.debug({ ...log, status: err.errorCode }, 'typing action refused: none more for this wait');
      return next;
    }
    // Transport errors and 5xx: the next one may get through; "typing…" is never worth a retry now.
    this.o.log.debug({ ...log, err }, 'typing action failed');
    return next;
  }
}

/** The gate of a notifier without a ReplySender beside it. */
function localGate(): BotQuietGate {
  const until = new Map<string, number>();
  return {
    quietFor(token) {
      const left = (until.get(token) ?? 0) - Date.now();
      if (left <= 0) until.delete(token);
      return Math.max(0, left);
    },
    quiet(token, ms) {
      until.set(token, Math.max(until.get(token) ?? 0, Date.now() + ms));
    },
  };
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`TypingNotifier: ${name} must be a positive number`);
  return value;
}
