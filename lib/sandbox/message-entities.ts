/**
 * Telegram's MessageEntity as the Bot API returns it, and what the markup parsers (markup-html.ts,
 * markup-markdown.ts) share: Telegram's link check for text links, its byte offsets in error
 * messages, and the final clean-up of a message text (trimmed, entities moved and clipped with it).
 * Offsets and lengths are in UTF-16 code units, as Telegram counts them: a JS string index.
 */

export interface MessageEntity {
  type: string;
  offset: number;
  length: number;
  url?: string;
  language?: string;
  custom_emoji_id?: string;
}

/** A parse failure: TDLib's message (`Can't find end of Bold entity at byte offset 0`). */
export class MarkupError extends Error {
  override readonly name = 'MarkupError';
}

/** Telegram reports positions in UTF-8 bytes of the text as sent. */
export function byteOffset(source: string, index: number): number {
  return Buffer.byteLength(source.slice(0, index), 'utf8');
}

/** TDLib's is_space: what its parsers treat as white space, the end of the text included. */
export const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n' || c === '\0' || c === '\v';

/** Schemes a bot may link to; anything else makes Telegram drop the link (the text stays). */
const LINK_SCHEMES = new Set(['http:', 'https:', 'tg:', 'ton:']);

/**
 * The URL of a text link as Telegram keeps it, or '' when it would drop the link: a missing scheme
 * means http://, only web, tg: and ton: links are kept, and a web link needs a host.
 */
export function checkedLink(raw: string): string {
  const s = raw.trim();
  if (s === '') return '';
  const withScheme = /^[a-z][a-z0-9+.-]*:/i.test(s) ? s : `http://${s}`;
  try {
    const url = new URL(withScheme);
    if (!LINK_SCHEMES.has(url.protocol)) return '';
    if ((url.protocol === 'http:' || url.protocol === 'https:') && url.hostname === '') return '';
    return withScheme;
  } catch {
    return '';
  }
}

/** By offset, the longer (enclosing) entity first, as Telegram sorts them. */
export function sortEntities(entities: MessageEntity[]): MessageEntity[] {
  return entities.sort((a, b) => a.offset - b.offset || b.length - a.length);
}

/**
 * The text without its leading and trailing white space, entities moved and clipped to what is
 * left, empty ones and those inside code dropped: what Telegram stores of a sent message.
 */
export function trimText(text: string, entities: MessageEntity[]): { text: string; entities: MessageEntity[] } {
  const start = text.length - text.trimStart().length;
  const trimmed = text.trim();
  const kept: MessageEntity[] = [];
  for (const e of entities) {
    const from = Math.max(0, e.offset - start);
    const to = Math.min(trimmed.length, e.offset + e.length - start);
    if (to > from) kept.push({ ...e, offset: from, length: to - from });
  }
  return { text: trimmed, entities: withoutNestedInCode(sortEntities(kept)) };
}

/** Telegram keeps no entity inside code or pre (their text is shown as is); one around it stays. */
function withoutNestedInCode(sorted: MessageEntity[]): MessageEntity[] {
  const code = sorted.filter((e) => e.type === 'code' || e.type === 'pre');
  const inside = (e: MessageEntity, c: MessageEntity): boolean =>
    c.offset <= e.offset && e.offset + e.length <= c.offset + c.length && (c.offset !== e.offset || c.length !== e.length);
  return sorted.filter((e) => !code.some((c) => c !== e && inside(e, c)));
}
