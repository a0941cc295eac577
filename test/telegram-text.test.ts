/**
 * A bot's formatted text as Telegram turns it into a message (lib/sandbox/telegram-markup.ts and
 * its parsers: HTML, MarkdownV2, legacy Markdown) and as `ztm chat` prints it (cli/telegram-text.ts):
 * plain text, entities with UTF-16 offsets, Telegram's refusals word for word, links shown with
 * their target, terminal control characters dropped.
 */
import t from 'tap';
import { messageText, type MessageText } from '../lib/sandbox/telegram-markup.js';
import { renderMessage } from '../cli/telegram-text.js';

const parse = (text: string, mode?: string): MessageText => {
  const r = messageText(text, mode, undefined);
  if ('error' in r) throw new Error(r.error);
  return r;
};
const refusal = (text: string, mode: string): string => {
  const r = messageText(text, mode, undefined);
  return 'error' in r ? r.error : `accepted as ${JSON.stringify(r.text)}`;
};
/** What `ztm chat` shows for a text sent with `mode`. */
const shown = (text: string, mode: string): string => renderMessage(parse(text, mode));

t.test('HTML: tags stripped, Telegram\'s character references decoded, links kept as entities', async (t) => {
  t.equal(shown('<b>bold</b>, <strong>strong</strong>, <i>i</i> <em>em</em> <u>u</u> <ins>ins</ins> <s>s</s> <strike>x</strike> <del>d</del>', 'HTML'),
    'bold, strong, i em u ins s x d');
  t.equal(shown('1 &lt; 2 &amp;&amp; 3 &gt; 2 &quot;q&quot; &#39;s&#x27; &#128512;', 'HTML'), '1 < 2 && 3 > 2 "q" \'s\' 😀');
  t.equal(shown('&apos;&nbsp;&copy; &amp', 'HTML'), '&apos;&nbsp;&copy; &', 'only lt gt amp quot are named; a missing ; is fine');
  t.equal(shown('<B>Upper</B> <tg-spoiler>hidden</tg-spoiler> <span class="tg-spoiler">too</span>', 'HTML'), 'Upper hidden too');
  t.equal(shown('<blockquote expandable>long\nquote</blockquote>\n<code>x &lt; y</code>', 'HTML'), 'long\nquote\nx < y');
  t.same(parse('<a href="https://example.org/a?b=1&amp;c=2">the docs</a> and <a href=Example.ORG>x</a>', 'HTML').entities, [
    { type: 'text_link', offset: 0, length: 8, url: 'https://example.org/a?b=1&c=2' },
    { type: 'text_link', offset: 13, length: 1, url: 'http://example.org' },
  ], 'references decoded inside attributes; an unquoted value is a lowercased name token');
  t.match(refusal('<a href=https://example.org>x</a>', 'HTML'), /Unexpected end of name token at byte offset 8$/, 'an unquoted URL is not a name token');
  t.same(parse('<a href="javascript:alert(1)">click</a> <a href="">example.org</a>', 'HTML'), {
    text: 'click example.org', entities: [{ type: 'text_link', offset: 6, length: 11, url: 'http://example.org' }],
  }, 'a link Telegram would not keep is dropped (its text stays); an empty href links the text');
  t.same(parse('<pre><code class="language-python">print("hi")</code></pre> <code class="language-js">x</code>', 'HTML').entities, [
    { type: 'pre', offset: 0, length: 11, language: 'python' }, { type: 'code', offset: 12, length: 1 },
  ], 'a language belongs to pre only');
  t.same(parse('😀 <b>é</b>', 'HTML').entities, [{ type: 'bold', offset: 3, length: 1 }], 'offsets in UTF-16 units, as Telegram counts');
  t.same(parse('\n  <b> hi </b>  \n', 'HTML'), { text: 'hi', entities: [{ type: 'bold', offset: 0, length: 2 }] }, 'trimmed, the entity moved and clipped with it');
});

t.test('HTML: what Telegram refuses, in its words (byte offsets in UTF-8)', async (t) => {
  const p = "Bad Request: can't parse entities: ";
  t.equal(refusal('if a < b', 'HTML'), `${p}Unsupported start tag "" at byte offset 5`, 'a bare < must be &lt;');
  t.equal(refusal('line one<br>line two', 'HTML'), `${p}Unsupported start tag "br" at byte offset 8`, '<br> is not Telegram HTML: a newline is');
  t.equal(refusal('<p>para</p>', 'HTML'), `${p}Unsupported start tag "p" at byte offset 0`);
  t.equal(refusal('é <b>x</i>', 'HTML'), `${p}Unmatched end tag at byte offset 7, expected "</b>", found "</i>"`);
  t.equal(refusal('x</b>', 'HTML'), `${p}Unexpected end tag at byte offset 1`);
  t.equal(refusal('<b>x', 'HTML'), `${p}Can't find end tag corresponding to start tag "b"`);
  t.equal(refusal('<b', 'HTML'), `${p}Unclosed start tag at byte offset 0`);
  t.equal(refusal('<a href="x>', 'HTML'), `${p}Unclosed start tag at byte offset 0`);
  t.equal(refusal('<span>x</span>', 'HTML'), `${p}Tag "span" must have class "tg-spoiler" at byte offset 0`);
  t.equal(refusal('<tg-emoji emoji-id="abc">👍</tg-emoji>', 'HTML'), `${p}Invalid custom emoji identifier specified`);
  t.equal(refusal('<b></b>', 'HTML'), 'Bad Request: text must be non-empty');
  t.equal(refusal('<b>fine</b>', 'HTML'), 'accepted as "fine"');
  t.equal(refusal('fine', 'html'), 'accepted as "fine"', 'parse_mode is case-insensitive');
});

t.test('MarkdownV2: markers and escapes removed; reserved characters refused', async (t) => {
  t.equal(shown('*bold* _italic_ __underline__ ~strike~ ||spoiler|| `code`', 'MarkdownV2'), 'bold italic underline strike spoiler code');
  t.same(parse('*bold _both_*', 'MarkdownV2').entities, [{ type: 'bold', offset: 0, length: 9 }, { type: 'italic', offset: 5, length: 4 }]);
  t.equal(shown('1\\. Costs \\$5 \\(approx\\)\\! a\\_b \\\\ done\\.', 'MarkdownV2'), '1. Costs $5 (approx)! a_b \\ done.');
  t.same(parse('```ts\nconst a = \\`x\\`; (1 + 2) * 3!\n```', 'MarkdownV2'), { text: 'const a = `x`; (1 + 2) * 3!', entities: [{ type: 'pre', offset: 0, length: 27, language: 'ts' }] },
    'inside pre only ` (and \\) need escaping');
  t.same(parse('```\nconst a = `x`;\n```', 'MarkdownV2'), { text: 'const a = x;', entities: [{ type: 'pre', offset: 0, length: 12 }] },
    'an unescaped ` inside pre is markup (dropped), not text, as Telegram parses it');
  t.same(parse('`a.b(c)` and [the *docs*](https://example.org/a\\)b)', 'MarkdownV2'), {
    text: 'a.b(c) and the docs',
    entities: [{ type: 'code', offset: 0, length: 6 }, { type: 'text_link', offset: 11, length: 8, url: 'https://example.org/a)b' }, { type: 'bold', offset: 15, length: 4 }],
  }, 'no escaping needed inside code; a link\'s text may hold entities; \\) inside its URL');
  t.same(parse('___italic underline_\r__', 'MarkdownV2').entities.map((e) => e.type).sort(), ['italic', 'underline'], 'Telegram\'s own way to end both');
  t.match(refusal('___italic underline___', 'MarkdownV2'), /Can't find end of Italic entity at byte offset 21$/, 'ambiguous: refused by Telegram too');
  t.same(parse('![👍](tg://emoji?id=5368324170671202286) ok', 'MarkdownV2'), { text: '👍 ok', entities: [{ type: 'custom_emoji', offset: 0, length: 2, custom_emoji_id: '5368324170671202286' }] });
  t.same(parse('>quoted\n>still\nnot', 'MarkdownV2'), { text: 'quoted\nstill\nnot', entities: [{ type: 'blockquote', offset: 0, length: 13 }] });

  const p = "Bad Request: can't parse entities: ";
  for (const c of ['.', '!', '-', '(', ')', '#', '+', '=', '{', '}', '|', '>']) {
    t.equal(refusal(`a ${c} b`, 'MarkdownV2'), `${p}Character '${c}' is reserved and must be escaped with the preceding '\\'`, `unescaped ${c}`);
  }
  t.equal(refusal('é *open', 'MarkdownV2'), `${p}Can't find end of Bold entity at byte offset 3`);
  t.equal(refusal('__under', 'MarkdownV2'), `${p}Can't find end of Underline entity at byte offset 0`);
  t.equal(refusal('[text](https://x.y', 'MarkdownV2'), `${p}Can't find end of a URL at byte offset 7`);
  t.equal(refusal('*bold\nstill bold*', 'MarkdownV2'), 'accepted as "bold\\nstill bold"', 'an entity may span lines');
});

t.test('legacy Markdown: markers removed, only _ * ` [ escapable, no nesting', async (t) => {
  t.equal(shown('*bold* _italic_ `code` ```\npre\n``` [link](http://example.org)', 'Markdown'), 'bold italic code pre\n link (http://example.org)');
  t.equal(shown('snake\\_case and 2\\*3 and a.b!', 'Markdown'), 'snake_case and 2*3 and a.b!', 'escapes removed, other characters need none');
  t.same(parse('*bold _not italic_*', 'Markdown'), { text: 'bold _not italic_', entities: [{ type: 'bold', offset: 0, length: 17 }] });
  t.same(parse('[http://example.org]', 'Markdown').entities, [{ type: 'text_link', offset: 0, length: 18, url: 'http://example.org' }], '[url] links itself');
  t.equal(refusal('snake_case', 'Markdown'), "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 5");
});

t.test('no parse_mode: the text as sent (markup is not interpreted), given entities kept when they fit', async (t) => {
  t.same(parse('<b>*as is*</b>'), { text: '<b>*as is*</b>', entities: [] });
  const r = messageText('hello world', undefined, JSON.stringify([{ type: 'bold', offset: 0, length: 5 }, { type: 'italic', offset: 8, length: 40 }, { nope: 1 }]));
  t.same(r, { text: 'hello world', entities: [{ type: 'bold', offset: 0, length: 5 }] });
  t.equal(refusal('x'.repeat(4097), 'None'), 'Bad Request: message is too long');
  t.equal(refusal('😀'.repeat(4096), 'HTML'), 'accepted as ' + JSON.stringify('😀'.repeat(4096)), 'the limit counts characters, not UTF-16 units');
  t.equal(refusal(`<b>${'x'.repeat(33_000)}</b>`, 'HTML'), 'Bad Request: text is too long', 'above 32 KiB before parsing');
  t.equal(refusal('   ', 'HTML'), 'Bad Request: message text is empty');
});

t.test('ztm chat: a link shows its target; the terminal is safe from the text', async (t) => {
  t.equal(shown('See <a href="https://example.org/docs">the docs</a> or <a href="https://example.org/">example.org</a>.', 'HTML'),
    'See the docs (https://example.org/docs) or example.org.', 'a link whose text is its target is not repeated');
  t.equal(shown('<b>Read <a href="https://a.example/x">this</a></b> and [that](https://b.example/y)', 'HTML'),
    'Read this (https://a.example/x) and [that](https://b.example/y)', 'HTML mode: Markdown-looking text is just text');
  t.equal(shown('*1* [a](https://a.example) [b](https://b.example)', 'MarkdownV2'), '1 a (https://a.example) b (https://b.example)');
  t.equal(renderMessage({ text: 'red \u001b[31malert\u001b[0m\rover\u0007 tab\tline\nnext\u009b2J' }), 'red [31malert[0mover tab\tline\nnext2J',
    'escape sequences, carriage returns and bells never reach the terminal');
  t.equal(renderMessage({ text: '😀 docs', entities: [{ type: 'text_link', offset: 3, length: 4, url: 'https://d.example' }] }), '😀 docs (https://d.example)');
});

t.test('entities inside code or pre are dropped; around it they stay', async (t) => {
  t.same(parse('<code>a <b>b</b></code>', 'HTML').entities, [{ type: 'code', offset: 0, length: 3 }]);
  t.same(parse('<b><code>x</code></b>', 'HTML').entities.map((e) => e.type).sort(), ['bold', 'code'], 'the same span: both');
  t.same(parse('<b>a <code>x</code></b>', 'HTML').entities, [{ type: 'bold', offset: 0, length: 3 }, { type: 'code', offset: 2, length: 1 }]);
});
