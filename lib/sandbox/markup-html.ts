/**
 * parse_mode "HTML" as Telegram parses it (a port of TDLib's parse_html): the tags it knows
 * (b strong i em u ins s strike del a code pre blockquote tg-spoiler span.tg-spoiler tg-emoji
 * tg-time), the only named character references &lt; &gt; &amp; &quot; plus numeric ones, and its
 * errors word for word, so an agent that would be refused by Telegram is refused here. Anything
 * else is an error, `<br>` included: Telegram wants a newline character instead.
 */
import { byteOffset, checkedLink, isSpace, MarkupError, sortEntities, type MessageEntity } from './message-entities.js';

const TAGS = new Set(['a', 'b', 'strong', 'i', 'em', 's', 'strike', 'del', 'u', 'ins', 'tg-spoiler', 'tg-emoji', 'tg-time', 'span', 'pre', 'code', 'blockquote']);
const SIMPLE: Record<string, string> = {
  b: 'bold', strong: 'bold', i: 'italic', em: 'italic', s: 'strikethrough', strike: 'strikethrough', del: 'strikethrough',
  u: 'underline', ins: 'underline', 'tg-spoiler': 'spoiler', span: 'spoiler',
};
const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"' };

/** The character of the reference at `pos` and the index after it, or undefined (then `&` is text). */
export function decodeHtmlEntity(s: string, pos: number): { char: string; end: number } | undefined {
  let end = pos + 1;
  let code = 0;
  if (s[end] === '#') {
    end++;
    const hex = s[end] === 'x';
    if (hex) end++;
    const digit = hex ? /[0-9a-fA-F]/ : /[0-9]/;
    while (end < s.length && digit.test(s[end] as string)) code = code * (hex ? 16 : 10) + parseInt(s[end++] as string, 16);
    if (code === 0 || code >= 0x10ffff || end - pos >= 10) return undefined;
    // Lone surrogates are dropped by Telegram's later UTF-8 check; keep the text well-formed here.
    if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd;
  } else {
    while (end < s.length && /[a-zA-Z]/.test(s[end] as string)) end++;
    const named = NAMED[s.slice(pos + 1, end)];
    if (named === undefined) return undefined;
    code = named.charCodeAt(0);
  }
  return { char: String.fromCodePoint(code), end: s[end] === ';' ? end + 1 : end };
}

interface Open {
  tag: string;
  argument: string;
  offset: number;
}

export function parseHtml(src: string): { text: string; entities: MessageEntity[] } {
  const at = (i: number): string => (i < src.length ? (src[i] as string) : '\0');
  const fail = (message: string): never => {
    throw new MarkupError(message);
  };
  let out = '';
  const entities: MessageEntity[] = [];
  const open: Open[] = [];
  for (let i = 0; i < src.length; i++) {
    const c = src[i] as string;
    if (c === '&') {
      const ref = decodeHtmlEntity(src, i);
      if (ref) {
        out += ref.char;
        i = ref.end - 1;
        continue;
      }
    }
    if (c !== '<') {
      out += c;
      continue;
    }
    const begin = i++;
    const where = `at byte offset ${byteOffset(src, begin)}`;
    if (at(i) !== '/') {
      while (!isSpace(at(i)) && at(i) !== '>') i++;
      if (i >= src.length) fail(`Unclosed start tag ${where}`);
      const tag = src.slice(begin + 1, i).toLowerCase();
      if (!TAGS.has(tag)) fail(`Unsupported start tag "${tag}" ${where}`);
      let argument = '';
      while (at(i) !== '>') {
        while (i < src.length && isSpace(at(i))) i++;
        if (at(i) === '>') break;
        const nameStart = i;
        while (!isSpace(at(i)) && !'=>/"\''.includes(at(i))) i++;
        const name = src.slice(nameStart, i);
        if (name === '') fail(`Empty attribute name in the tag "${tag}" ${where}`);
        while (i < src.length && isSpace(at(i))) i++;
        if (at(i) !== '=') {
          if (i >= src.length) fail(`Unclosed start tag "${tag}" ${where}`);
          if (tag === 'blockquote' && name === 'expandable') argument = '1';
          continue;
        }
        i++;
        while (i < src.length && isSpace(at(i))) i++;
        if (i >= src.length) fail(`Unclosed start tag "${tag}" ${where}`);
        let value = '';
        if (at(i) !== '"' && at(i) !== '\'') {
          // An unquoted value is a name token: letters, digits, '.' and '-', case-insensitive.
          const tokenStart = i;
          while (/[a-zA-Z0-9.-]/.test(at(i))) i++;
          value = src.slice(tokenStart, i).toLowerCase();
          if (!isSpace(at(i)) && at(i) !== '>') fail(`Unexpected end of name token at byte offset ${byteOffset(src, tokenStart)}`);
        } else {
          const quote = at(i++);
          while (i < src.length && at(i) !== quote) {
            const ref = at(i) === '&' ? decodeHtmlEntity(src, i) : undefined;
            if (ref) {
              value += ref.char;
              i = ref.end;
            } else {
              value += at(i++);
            }
          }
          if (at(i) === quote) i++;
        }
        if (i >= src.length) fail(`Unclosed start tag ${where}`);
        if (tag === 'a' && name === 'href') argument = value;
        else if (tag === 'code' && name === 'class' && value.startsWith('language-')) argument = value.slice(9);
        else if (tag === 'span' && name === 'class' && value.startsWith('tg-')) argument = value.slice(3);
        else if (tag === 'tg-emoji' && name === 'emoji-id') argument = value;
        else if (tag === 'blockquote' && name === 'expandable') argument = '1';
      }
      if (tag === 'span' && argument !== 'spoiler') fail(`Tag "span" must have class "tg-spoiler" ${where}`);
      open.push({ tag, argument, offset: out.length });
    } else {
      const top = open.at(-1);
      if (!top) fail(`Unexpected end tag ${where}`);
      while (!isSpace(at(i)) && at(i) !== '>') i++;
      const endTag = src.slice(begin + 2, i).toLowerCase();
      while (i < src.length && isSpace(at(i))) i++;
      if (at(i) !== '>') fail(`Unclosed end tag ${where}`);
      const { tag, argument, offset } = top as Open;
      if (endTag !== '' && endTag !== tag) fail(`Unmatched end tag ${where}, expected "</${tag}>", found "</${endTag}>"`);
      if (out.length > offset) closeTag(entities, tag, argument, offset, out);
      open.pop();
    }
  }
  const unclosed = open.at(-1);
  if (unclosed) fail(`Can't find end tag corresponding to start tag "${unclosed.tag}"`);
  return { text: out, entities: sortEntities(dropCodeLanguages(entities)) };
}

function closeTag(entities: MessageEntity[], tag: string, argument: string, offset: number, out: string): void {
  const length = out.length - offset;
  const last = entities.at(-1);
  const sameSpan = last !== undefined && last.offset === offset && last.length === length;
  const simple = SIMPLE[tag];
  if (simple) entities.push({ type: simple, offset, length });
  else if (tag === 'tg-emoji') {
    if (!/^[0-9]{1,19}$/.test(argument) || /^0+$/.test(argument)) throw new MarkupError('Invalid custom emoji identifier specified');
    entities.push({ type: 'custom_emoji', offset, length, custom_emoji_id: argument });
  } else if (tag === 'a') {
    // An empty href links the text itself.
    const url = checkedLink(argument === '' ? out.slice(offset) : argument);
    if (url !== '') entities.push({ type: 'text_link', offset, length, url });
  } else if (tag === 'pre') {
    // <pre><code class="language-x">: one pre entity with its language.
    if (sameSpan && last.type === 'code' && last.language) last.type = 'pre';
    else entities.push({ type: 'pre', offset, length });
  } else if (tag === 'code') {
    if (sameSpan && last.type === 'pre' && argument !== '') last.language = argument;
    else entities.push({ type: 'code', offset, length, ...(argument ? { language: argument } : {}) });
  } else if (tag === 'blockquote') entities.push({ type: argument ? 'expandable_blockquote' : 'blockquote', offset, length });
  // tg-time: a formatted date; its text is kept, the entity is not modelled.
}

/** A code entity keeps no language (only pre does), as in the Bot API's answers. */
function dropCodeLanguages(entities: MessageEntity[]): MessageEntity[] {
  return entities.map((e) => (e.type === 'code' && e.language !== undefined ? { type: e.type, offset: e.offset, length: e.length } : e));
}
