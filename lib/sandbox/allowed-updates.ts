/**
 * setWebhook's allowed_updates as the Bot API server reads it: a JSON array of update type names,
 * lowercased, unknown names ignored; no value or an unusable one keeps the previous setting; [] or
 * a list of unknown names means the default (every type but chat_member, message_reaction,
 * message_reaction_count), as does a list equal to it; getWebhookInfo does not list the default.
 * Kept in Telegram's own order.
 */
import { jsonValue } from './bot-api-wire.js';

export const UPDATE_TYPES = [
  'message', 'edited_message', 'channel_post', 'edited_channel_post', 'inline_query', 'chosen_inline_result', 'callback_query',
  'shipping_query', 'pre_checkout_query', 'poll', 'poll_answer', 'my_chat_member', 'chat_member', 'chat_join_request',
  'chat_boost', 'removed_chat_boost', 'message_reaction', 'message_reaction_count', 'business_connection', 'business_message',
  'edited_business_message', 'deleted_business_messages', 'purchased_paid_media', 'managed_bot', 'guest_message',
] as const;

const OPT_IN = new Set(['chat_member', 'message_reaction', 'message_reaction_count']);
const DEFAULT = UPDATE_TYPES.filter((u) => !OPT_IN.has(u));

/**
 * The bot's allowed updates after a setWebhook with `value`: `previous` when it is absent or names
 * no known type, undefined for the default, else the known names in Telegram's order.
 */
export function allowedUpdatesAfter(value: unknown, previous: string[] | undefined): string[] | undefined {
  if (value === undefined || value === '') return previous;
  const list = jsonValue(value);
  if (!Array.isArray(list) || !list.every((u) => typeof u === 'string')) return previous;
  const named = new Set(list.map((u: string) => u.toLowerCase()));
  const types = UPDATE_TYPES.filter((u) => named.has(u));
  if (types.length === 0) return undefined; // [] or only unknown names: the default
  return types.length === DEFAULT.length && types.every((u, i) => u === DEFAULT[i]) ? undefined : types;
}

/** Whether a bot with these allowed updates receives updates of `type`. */
export function receives(allowed: readonly string[] | undefined, type: string): boolean {
  return allowed ? allowed.includes(type) : !OPT_IN.has(type);
}
