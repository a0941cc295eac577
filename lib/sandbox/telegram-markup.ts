/**
 * The text of a sendMessage or editMessageText call as Telegram turns it into a message: parsed by
 * its parse_mode (HTML, MarkdownV2, Markdown; case-insensitive; none = the `entities` given),
 * trimmed, and checked, with the Bot API's descriptions for each refusal. The stored message then
 * holds the plain text and its entities, as Telegram's own answer does.
 */
import { int, jsonValue, str } from './bot-api-wire.js';
import { parseHtml } from './markup-html.js';
import { parseMarkdown, parseMarkdownV2 } from './markup-markdown.js';
import { MarkupError, sortEntities, trimText, type MessageEntity } from './message-entities.js';

export const MAX_MESSAGE_LENGTH = 4096;
/** The Bot API refuses a text above 32 KiB (in UTF-8) before parsing it. */
const MAX_RAW_BYTES = 1 << 15;

export interface MessageText {
  text: string;
  entities: MessageEntity[];
}

/** The message's text and entities, or the Bot API's description of why it is refused. */
export function messageText(rawText: unknown, parseMode: unknown, givenEntities: unknown): MessageText | { error: string } {
  const raw = str(rawText) ?? '';
  // The platform's clients rely on this wording for a blank text (TDLib itself says "text must be non-empty").
  if (raw.trim() === '') return { error: 'Bad Request: message text is empty' };
  if (Buffer.byteLength(raw, 'utf8') > MAX_RAW_BYTES) return { error: 'Bad Request: text is too long' };
  const mode = (str(parseMode) ?? '').toLowerCase();
  let parsed: MessageText;
  try {
    if (mode === '' || mode === 'none') parsed = { text: raw, entities: explicitEntities(givenEntities, raw.length) };
    else if (mode === 'html') parsed = parseHtml(raw);
    else if (mode === 'markdownv2') parsed = parseMarkdownV2(raw);
    else if (mode === 'markdown') parsed = parseMarkdown(raw);
    else return { error: 'Bad Request: unsupported parse_mode' };
  } catch (err) {
    if (err instanceof MarkupError) return { error: `Bad Request: can't parse entities: ${err.message}` };
    throw err;
  }
  const message = trimText(parsed.text, parsed.entities);
  if (message.text === '') return { error: 'Bad Request: text must be non-empty' };
  // Telegram counts characters (code points), not UTF-16 units.
  if ([...message.text].length > MAX_MESSAGE_LENGTH) return { error: 'Bad Request: message is too long' };
  return message;
}

/** `entities` as the caller gave them (JSON or a JSON string): well-formed ones inside the text. */
function explicitEntities(v: unknown, textLength: number): MessageEntity[] {
  const list = jsonValue(v);
  if (!Array.isArray(list)) return [];
  const kept: MessageEntity[] = [];
  for (const item of list) {
    const e = item as Record<string, unknown> | null;
    const offset = int(e?.offset);
    const length = int(e?.length);
    const type = str(e?.type);
    if (!e || offset === undefined || length === undefined || !type || offset < 0 || length <= 0 || offset + length > textLength) continue;
    const entity: MessageEntity = { type, offset, length };
    for (const k of ['url', 'language', 'custom_emoji_id'] as const) if (typeof e[k] === 'string') entity[k] = e[k] as string;
    kept.push(entity);
  }
  return sortEntities(kept);
}

/** Same text and entities: what editMessageText calls "not modified". */
export function sameText(a: MessageText, b: MessageText): boolean {
  return a.text === b.text && JSON.stringify(a.entities) === JSON.stringify(b.entities);
}
