/**
 * What bots did in each chat through the sandbox, for `ztm chat` to read: per (bot, chat) the
 * messages the bot sent as they are now (edits applied, deletions removed), and the events in the
 * order they happened (sent, edited, deleted, chat action), numbered by a per-chat `seq`. Both are
 * bounded; long-polls wait for the first message after a message id, or the first event after a
 * seq. A chat action right after another replaces it, so a bot typing for minutes fills nothing.
 */
import { nowS } from './bot-api-wire.js';
import type { ChatEvent, SentMessage } from './chat-messages.js';

export type HistoryEvent = ChatEvent & { seq: number; date: number };

export interface ChatHistoryOptions {
  /** Messages, and events, kept per chat, oldest dropped first (default 1000). */
  perChat?: number;
  /** Chats kept, least recently written dropped first (default 10000). */
  maxChats?: number;
}

interface Waiter {
  wake: () => void;
  /** Woken by new messages only (not by edits, deletions or chat actions). */
  messagesOnly: boolean;
}

interface Chat {
  messages: SentMessage[];
  events: HistoryEvent[];
  seq: number;
  waiters: Set<Waiter>;
}

export class ChatHistory {
  private readonly chats = new Map<string, Chat>();
  private readonly perChat: number;
  private readonly maxChats: number;
  private closed = false;

  constructor(options: ChatHistoryOptions = {}) {
    this.perChat = options.perChat ?? 1_000;
    this.maxChats = options.maxChats ?? 10_000;
  }

  add(botId: number, event: ChatEvent): void {
    const chatId = event.type === 'message' || event.type === 'edited' ? event.message.chat.id : event.chat_id;
    const key = keyOf(botId, chatId);
    const chat = this.chats.get(key) ?? { messages: [], events: [], seq: 0, waiters: new Set() };
    // Re-inserted on every write, so the map's order is least recently written first.
    this.chats.delete(key);
    this.chats.set(key, chat);
    this.apply(chat, event);
    if (event.type === 'chat_action' && chat.events.at(-1)?.type === 'chat_action') chat.events.pop();
    chat.events.push({ ...event, seq: ++chat.seq, date: nowS() });
    trim(chat.events, this.perChat);
    for (const w of [...chat.waiters]) if (!w.messagesOnly || event.type === 'message') w.wake();
    this.evict();
  }

  /** The bot's messages in the chat with message_id > afterId, oldest first, as they are now. */
  after(botId: number, chatId: number, afterId: number): SentMessage[] {
    return (this.chats.get(keyOf(botId, chatId))?.messages ?? []).filter((m) => m.message_id > afterId);
  }

  /** The chat's events with seq > afterSeq, oldest first. */
  eventsAfter(botId: number, chatId: number, afterSeq: number): HistoryEvent[] {
    return (this.chats.get(keyOf(botId, chatId))?.events ?? []).filter((e) => e.seq > afterSeq);
  }

  /** The seq of the chat's latest event (0 for none): where a reader starts to see only what follows. */
  lastSeq(botId: number, chatId: number): number {
    return this.chats.get(keyOf(botId, chatId))?.seq ?? 0;
  }

  /**
   * Messages after `afterId`, waiting up to `timeoutMs` for the first one; [] on timeout, on abort
   * (the client went away) and on close.
   */
  wait(botId: number, chatId: number, afterId: number, timeoutMs: number, signal?: AbortSignal): Promise<SentMessage[]> {
    return this.waitFor(botId, chatId, () => this.after(botId, chatId, afterId), true, timeoutMs, signal);
  }

  /** Events after `afterSeq`, waiting up to `timeoutMs` for the first one, like `wait`. */
  waitEvents(botId: number, chatId: number, afterSeq: number, timeoutMs: number, signal?: AbortSignal): Promise<HistoryEvent[]> {
    return this.waitFor(botId, chatId, () => this.eventsAfter(botId, chatId, afterSeq), false, timeoutMs, signal);
  }

  /** Answers every pending long-poll (with what it has) and takes no more waits. */
  close(): void {
    this.closed = true;
    for (const chat of this.chats.values()) for (const w of [...chat.waiters]) w.wake();
  }

  private apply(chat: Chat, event: ChatEvent): void {
    if (event.type === 'message') {
      chat.messages.push(event.message);
      trim(chat.messages, this.perChat);
    } else if (event.type === 'edited') {
      const i = chat.messages.findIndex((m) => m.message_id === event.message.message_id);
      if (i >= 0) chat.messages[i] = event.message;
    } else if (event.type === 'deleted') {
      chat.messages = chat.messages.filter((m) => m.message_id !== event.message_id);
    }
  }

  private waitFor<T>(botId: number, chatId: number, read: () => T[], messagesOnly: boolean, timeoutMs: number, signal?: AbortSignal): Promise<T[]> {
    const now = read();
    if (now.length > 0 || timeoutMs <= 0 || this.closed || signal?.aborted) return Promise.resolve(now);
    const key = keyOf(botId, chatId);
    let chat = this.chats.get(key);
    if (!chat) this.chats.set(key, (chat = { messages: [], events: [], seq: 0, waiters: new Set() }));
    const waiting = chat;
    return new Promise((resolve) => {
      const waiter: Waiter = {
        messagesOnly,
        wake: () => {
          clearTimeout(timer);
          waiting.waiters.delete(waiter);
          signal?.removeEventListener('abort', waiter.wake);
          resolve(read());
        },
      };
      const timer = setTimeout(waiter.wake, timeoutMs);
      waiting.waiters.add(waiter);
      signal?.addEventListener('abort', waiter.wake, { once: true });
    });
  }

  private evict(): void {
    for (const [key, chat] of this.chats) {
      if (this.chats.size <= this.maxChats) return;
      if (chat.waiters.size === 0) this.chats.delete(key);
    }
  }
}

function trim<T>(list: T[], max: number): void {
  if (list.length > max) list.splice(0, list.length - max);
}

const keyOf = (botId: number, chatId: number): string => `${botId}:${chatId}`;
