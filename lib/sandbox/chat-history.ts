/**
 * What bots sent to each chat through the sandbox's sendMessage, for `ztm chat` to read: a bounded
 * history per (bot, chat), and long-polls that wait for the first message after a given id.
 */
import type { SentMessage } from './bot-directory.js';

export interface ChatHistoryOptions {
  /** Messages kept per chat, oldest dropped first (default 1000). */
  perChat?: number;
  /** Chats kept, least recently written dropped first (default 10000). */
  maxChats?: number;
}

interface Chat {
  messages: SentMessage[];
  waiters: Set<() => void>;
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

  add(botId: number, message: SentMessage): void {
    const key = keyOf(botId, message.chat.id);
    const chat = this.chats.get(key) ?? { messages: [], waiters: new Set() };
    // Re-inserted on every write, so the map's order is least recently written first.
    this.chats.delete(key);
    this.chats.set(key, chat);
    chat.messages.push(message);
    if (chat.messages.length > this.perChat) chat.messages.splice(0, chat.messages.length - this.perChat);
    for (const wake of [...chat.waiters]) wake();
    this.evict();
  }

  /** The stored messages of the chat with message_id > afterId, oldest first. */
  after(botId: number, chatId: number, afterId: number): SentMessage[] {
    return (this.chats.get(keyOf(botId, chatId))?.messages ?? []).filter((m) => m.message_id > afterId);
  }

  /**
   * Messages after `afterId`, waiting up to `timeoutMs` for the first one; [] on timeout, on abort
   * (the client went away) and on close.
   */
  wait(botId: number, chatId: number, afterId: number, timeoutMs: number, signal?: AbortSignal): Promise<SentMessage[]> {
    const now = this.after(botId, chatId, afterId);
    if (now.length > 0 || timeoutMs <= 0 || this.closed || signal?.aborted) return Promise.resolve(now);
    const key = keyOf(botId, chatId);
    let chat = this.chats.get(key);
    if (!chat) this.chats.set(key, (chat = { messages: [], waiters: new Set() }));
    const waiting = chat;
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        waiting.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve(this.after(botId, chatId, afterId));
      };
      const timer = setTimeout(done, timeoutMs);
      waiting.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Answers every pending long-poll (with what it has) and takes no more waits. */
  close(): void {
    this.closed = true;
    for (const chat of this.chats.values()) for (const wake of [...chat.waiters]) wake();
  }

  private evict(): void {
    for (const [key, chat] of this.chats) {
      if (this.chats.size <= this.maxChats) return;
      if (chat.waiters.size === 0) this.chats.delete(key);
    }
  }
}

const keyOf = (botId: number, chatId: number): string => `${botId}:${chatId}`;
