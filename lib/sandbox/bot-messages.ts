/**
 * The Bot API's message methods with Telegram's checks, in its order, and its descriptions (from
 * the Bot API server and TDLib): sendMessage (with parse_mode, entities, reply_parameters or
 * reply_to_message_id, link_preview_options, reply_markup; disable_notification, message_thread_id
 * and the like accepted), editMessageText, deleteMessage, sendChatAction, answerCallbackQuery.
 */
import { badRequest, int, jsonValue, nowS, ok, str, type BotApiAnswer, type BotApiParams } from './bot-api-wire.js';
import type { ChatEvent, ChatMessage, MessageStore, SentMessage } from './chat-messages.js';
import { messageText, sameText, type MessageText } from './telegram-markup.js';

export interface MessageContext {
  bot: { user: { id: number; is_bot: true; first_name: string; username: string } };
  store: MessageStore;
  nextMessageId(chatId: number): number;
  /** Every message of its chats went through this server, so an unknown id is truly unknown. */
  knowsAllMessages: boolean;
  emit(event: ChatEvent): void;
}

/** Telegram's action names; the Bot API also takes the older names in ALIASES. */
export const CHAT_ACTIONS = new Set([
  'typing', 'upload_photo', 'record_video', 'upload_video', 'record_voice', 'upload_voice', 'upload_document',
  'choose_sticker', 'find_location', 'record_video_note', 'upload_video_note', 'cancel',
]);
const ALIASES: Record<string, string> = { record_audio: 'record_voice', upload_audio: 'upload_voice', pick_up_location: 'find_location' };

type Chat = { id: number; type: ChatMessage['chat']['type'] };

/** chat_id as Telegram resolves it: an unknown @channel or 0 is "chat not found". */
function chatOf(v: unknown): Chat | string {
  if (v === undefined || v === '') return 'chat_id is empty';
  const id = int(v);
  if (id === undefined || id === 0) return 'chat not found';
  return { id, type: id > 0 ? 'private' : String(id).startsWith('-100') ? 'supergroup' : 'group' };
}

/** A message id parameter: absent, negative or not a number counts as 0 (none), as in the Bot API. */
const messageIdOf = (v: unknown): number => Math.max(0, int(v) ?? 0);

/** reply_markup: any keyboard is accepted; only an inline keyboard becomes part of the message. */
function markupOf(v: unknown): { markup: ChatMessage['reply_markup'] } | string {
  if (v === undefined || v === '') return { markup: undefined };
  const m = jsonValue(v);
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return "can't parse reply keyboard markup JSON object";
  const inline = (m as { inline_keyboard?: unknown }).inline_keyboard;
  return { markup: Array.isArray(inline) ? { inline_keyboard: inline } : undefined };
}

function linkPreviewError(v: unknown): string | undefined {
  if (v === undefined || v === '') return undefined;
  const o = jsonValue(v);
  if (o === undefined) return "can't parse link preview options JSON object";
  return o === null || typeof o !== 'object' || Array.isArray(o) ? 'object expected as link preview options' : undefined;
}

/** reply_parameters (or the older reply_to_message_id): the message replied to, if any. */
function replyOf(p: BotApiParams): { messageId: number; allowWithout: boolean } | string {
  if (p.reply_parameters === undefined) {
    return { messageId: messageIdOf(p.reply_to_message_id), allowWithout: truthy(p.allow_sending_without_reply) };
  }
  if (p.reply_parameters === '') return { messageId: 0, allowWithout: false };
  const r = jsonValue(p.reply_parameters);
  if (r === undefined) return "can't parse reply parameters JSON object";
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return 'object expected as reply parameters';
  const o = r as Record<string, unknown>;
  if (Object.keys(o).length === 0) return { messageId: 0, allowWithout: false };
  if (int(o.message_id) === undefined) return 'can\'t parse reply parameters: Field "message_id" must be of type Number';
  return { messageId: messageIdOf(o.message_id), allowWithout: o.allow_sending_without_reply === true };
}

/** The text, link preview and markup of a sendMessage or editMessageText, checked as Telegram checks them; or the 400. */
function contentOf(p: BotApiParams): { text: Exclude<ReturnType<typeof messageText>, { error: string }>; markup: Exclude<ReturnType<typeof markupOf>, string> } | BotApiAnswer {
  const text = messageText(p.text, p.parse_mode, p.entities);
  if ('error' in text) return { status: 400, body: { ok: false, error_code: 400, description: text.error } };
  const preview = linkPreviewError(p.link_preview_options);
  if (preview) return badRequest(preview);
  const markup = markupOf(p.reply_markup);
  if (typeof markup === 'string') return badRequest(markup);
  return { text, markup };
}

export function sendMessage(ctx: MessageContext, p: BotApiParams): BotApiAnswer {
  const content = contentOf(p);
  if ('status' in content) return content;
  const { text, markup } = content;
  const reply = replyOf(p);
  if (typeof reply === 'string') return badRequest(reply);
  const chat = chatOf(p.chat_id);
  if (typeof chat === 'string') return badRequest(chat);
  let replyTo: ChatMessage | undefined;
  if (reply.messageId > 0) {
    replyTo = ctx.store.get(chat.id, reply.messageId);
    if (!replyTo && ctx.knowsAllMessages && !reply.allowWithout) return badRequest('message to be replied not found');
  }
  const { id, is_bot, first_name, username } = ctx.bot.user;
  const message: SentMessage = {
    message_id: ctx.nextMessageId(chat.id), from: { id, is_bot, first_name, username }, chat, date: nowS(), ...textFields(text),
    ...(replyTo ? { reply_to_message: withoutReply(replyTo) } : {}),
    ...(markup.markup ? { reply_markup: markup.markup } : {}),
  };
  ctx.store.put(message);
  ctx.emit({ type: 'message', message });
  return ok(message);
}

export function editMessageText(ctx: MessageContext, p: BotApiParams): BotApiAnswer {
  const content = contentOf(p);
  if ('status' in content) return content;
  const { text, markup } = content;
  const messageId = messageIdOf(p.message_id);
  if ((p.chat_id === undefined || p.chat_id === '') && messageId === 0) {
    // The sandbox has no inline mode, so it never handed out an inline_message_id.
    return badRequest(str(p.inline_message_id) ? 'invalid inline message identifier specified' : 'message identifier is not specified');
  }
  const chat = chatOf(p.chat_id);
  if (typeof chat === 'string') return badRequest(chat);
  const current = ctx.store.get(chat.id, messageId);
  if (!current) return badRequest('message to edit not found');
  if (current.from.id !== ctx.bot.user.id) return badRequest("message can't be edited");
  if (sameText(text, { text: current.text, entities: current.entities ?? [] }) && JSON.stringify(markup.markup) === JSON.stringify(current.reply_markup)) {
    return badRequest('message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message');
  }
  const { entities: _e, reply_markup: _m, ...rest } = current;
  const edited = { ...rest, ...textFields(text), ...(markup.markup ? { reply_markup: markup.markup } : {}), edit_date: nowS() } as SentMessage;
  ctx.store.put(edited);
  ctx.emit({ type: 'edited', message: edited });
  return ok(edited);
}

export function deleteMessage(ctx: MessageContext, p: BotApiParams): BotApiAnswer {
  if (p.chat_id === undefined || p.chat_id === '') return badRequest('chat identifier is not specified');
  const messageId = messageIdOf(p.message_id);
  if (messageId === 0) return badRequest('message identifier is not specified');
  const chat = chatOf(p.chat_id);
  if (typeof chat === 'string') return badRequest(chat);
  const known = ctx.store.delete(chat.id, messageId);
  if (!known && ctx.knowsAllMessages) return badRequest('message to delete not found');
  if (known) ctx.emit({ type: 'deleted', chat_id: chat.id, message_id: messageId });
  return ok(true);
}

export function sendChatAction(ctx: MessageContext, p: BotApiParams): BotApiAnswer {
  const given = (str(p.action) ?? '').toLowerCase();
  const action = ALIASES[given] ?? given;
  // Checked before the chat, as the Bot API does.
  if (!CHAT_ACTIONS.has(action)) return badRequest('wrong parameter action in request');
  const chat = chatOf(p.chat_id);
  if (typeof chat === 'string') return badRequest(chat);
  ctx.emit({ type: 'chat_action', chat_id: chat.id, action });
  return ok(true);
}

/** The sandbox sends no callback queries of its own; any well-formed id is answered. */
export function answerCallbackQuery(p: BotApiParams): BotApiAnswer {
  const id = int(p.callback_query_id);
  if (id === undefined || id === 0) return badRequest('query is too old and response timeout expired or query ID is invalid');
  return ok(true);
}

function textFields(t: MessageText): { text: string; entities?: MessageText['entities'] } {
  return t.entities.length > 0 ? { text: t.text, entities: t.entities } : { text: t.text };
}

/** A replied-to message is shown without its own reply, as Telegram nests only one level. */
function withoutReply(m: ChatMessage): ChatMessage {
  const { reply_to_message: _r, ...rest } = m;
  return rest;
}

export const truthy = (v: unknown): boolean => v === true || v === 'true' || v === '1' || v === 1;
