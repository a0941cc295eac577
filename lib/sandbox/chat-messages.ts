/**
 * The messages of a bot's chats as a local Bot API server keeps them, so editMessageText,
 * deleteMessage and replies find what they refer to: the bot's own messages (as sendMessage
 * answered them) and, where the server saw them, its users' messages. Bounded per chat and in
 * chats; what fell out is "not found", as an old message is for Telegram.
 */
import type { MessageEntity } from './message-entities.js';

/** A Telegram Message, with the fields the sandbox models. */
export interface ChatMessage {
  message_id: number;
  from: { id: number; is_bot: boolean; first_name: string; last_name?: string; username?: string };
  chat: { id: number; type: 'private' | 'group' | 'supergroup'; first_name?: string; last_name?: string; username?: string };
  date: number;
  text: string;
  entities?: MessageEntity[];
  edit_date?: number;
  reply_to_message?: ChatMessage;
  /** Only inline keyboards are part of a message (other markups act on the user's keyboard). */
  reply_markup?: { inline_keyboard: unknown[] };
}

/** What sendMessage answered: a message of the bot. */
export type SentMessage = ChatMessage & { from: { is_bot: true } };

/** What happened in a chat, in order: for `ztm chat` (chat-history.ts). */
export type ChatEvent =
  | { type: 'message'; message: SentMessage }
  | { type: 'edited'; message: SentMessage }
  | { type: 'deleted'; chat_id: number; message_id: number }
  | { type: 'chat_action'; chat_id: number; action: string };

export interface MessageStoreOptions {
  /** Messages kept per chat (default 1000). */
  perChat?: number;
  /** Chats kept, least recently written dropped first (default 10000). */
  maxChats?: number;
}

export class MessageStore {
  private readonly chats = new Map<number, Map<number, ChatMessage>>();
  private readonly perChat: number;
  private readonly maxChats: number;

  constructor(o: MessageStoreOptions = {}) {
    this.perChat = o.perChat ?? 1_000;
    this.maxChats = o.maxChats ?? 10_000;
  }

  get(chatId: number, messageId: number): ChatMessage | undefined {
    return this.chats.get(chatId)?.get(messageId);
  }

  /** Keeps `message` (replacing one of the same id: ids are reused only after a reset). */
  put(message: ChatMessage): void {
    const chatId = message.chat.id;
    const chat = this.chats.get(chatId) ?? new Map<number, ChatMessage>();
    this.chats.delete(chatId);
    this.chats.set(chatId, chat);
    chat.delete(message.message_id);
    chat.set(message.message_id, message);
    for (const id of chat.keys()) {
      if (chat.size <= this.perChat) break;
      chat.delete(id);
    }
    for (const id of this.chats.keys()) {
      if (this.chats.size <= this.maxChats) break;
      this.chats.delete(id);
    }
  }

  delete(chatId: number, messageId: number): boolean {
    return this.chats.get(chatId)?.delete(messageId) ?? false;
  }

  clear(): void {
    this.chats.clear();
  }
}
