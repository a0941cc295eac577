/**
 * What the delivery path needs from a Telegram Update, and the envelope it travels in. The raw
 * body is kept verbatim (no re-serialisation on the hot path): `<update_id>|<accepted_ms>|<json>`.
 */

export interface Envelope {
  updateId: number;
  acceptedAt: number;
  raw: string;
}

/** Chat key of updates that belong to no chat (e.g. inline queries without a chat). */
export const NO_CHAT = '_';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates the minimum of a Telegram Update: an object with a non-negative integer update_id. */
export function parseUpdate(body: string): Obj | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (!isObj(value)) return undefined;
  const id = value.update_id;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) return undefined;
  return value;
}

/**
 * A chat id usable as a mailbox key: an integer (Telegram's ids are; strings of digits pass too).
 * Anything else (a float, 1e21, "abc", a line break) would make a key the forwarder refuses as
 * malformed, stranding the update in a mailbox nobody drains: such an id is ignored here instead.
 */
function chatKey(id: unknown): string | undefined {
  if (typeof id === 'number') return Number.isSafeInteger(id) ? String(id) : undefined;
  if (typeof id === 'string' && /^-?[0-9]{1,20}$/.test(id)) return id;
  return undefined;
}

const CHAT_CARRIERS = ['message', 'edited_message', 'channel_post', 'edited_channel_post', 'business_message',
  'edited_business_message', 'my_chat_member', 'chat_member', 'chat_join_request', 'message_reaction',
  'message_reaction_count', 'chat_boost', 'removed_chat_boost'];

/** The chat an update belongs to: its order domain. Falls back to the sender, then NO_CHAT. */
export function chatIdOf(update: Obj): string {
  for (const field of CHAT_CARRIERS) {
    const carrier = update[field];
    const key = isObj(carrier) && isObj(carrier.chat) ? chatKey(carrier.chat.id) : undefined;
    if (key !== undefined) return key;
  }
  const cq = update.callback_query;
  if (isObj(cq)) {
    const key = (isObj(cq.message) && isObj(cq.message.chat) ? chatKey(cq.message.chat.id) : undefined)
      ?? (isObj(cq.from) ? chatKey(cq.from.id) : undefined);
    if (key !== undefined) return key;
  }
  for (const v of Object.values(update)) {
    const key = isObj(v) && isObj(v.from) ? chatKey(v.from.id) : undefined;
    if (key !== undefined) return key;
  }
  return NO_CHAT;
}

/** Text the `zeroclaw` protocol forwards: message text or caption (also of edits and posts). */
export function textOf(update: Obj): string | undefined {
  for (const field of ['message', 'edited_message', 'channel_post', 'edited_channel_post', 'business_message']) {
    const m = update[field];
    if (!isObj(m)) continue;
    if (typeof m.text === 'string' && m.text.length > 0) return m.text;
    if (typeof m.caption === 'string' && m.caption.length > 0) return m.caption;
  }
  const cq = update.callback_query;
  if (isObj(cq) && typeof cq.data === 'string' && cq.data.length > 0) return cq.data;
  return undefined;
}

export function encodeEnvelope(updateId: number, acceptedAt: number, raw: string): string {
  return `${updateId}|${acceptedAt}|${raw}`;
}

/** `update_id|accepted_at|`: what tells an envelope from any other in its mailbox (the whole envelope if malformed). */
export function envelopeIdentity(s: string): string {
  const b = s.indexOf('|', s.indexOf('|') + 1);
  return b < 0 ? s : s.slice(0, b + 1);
}

export function decodeEnvelope(s: string): Envelope {
  const a = s.indexOf('|');
  const b = s.indexOf('|', a + 1);
  if (a < 1 || b < 0) throw new Error('malformed mailbox envelope');
  const updateId = Number(s.slice(0, a));
  const acceptedAt = Number(s.slice(a + 1, b));
  if (!Number.isSafeInteger(updateId) || !Number.isFinite(acceptedAt)) throw new Error('malformed mailbox envelope');
  return { updateId, acceptedAt, raw: s.slice(b + 1) };
}
