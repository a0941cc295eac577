/**
 * What the stub LLM answers: a reply that proves which conversation it was sent, so a test (or a
 * person chatting through the platform) sees whether an agent kept its history across turns and
 * across sleep and wake: `stub reply: user turns 3; last: "<last user message>"`.
 */

/** The longest part of the last user message quoted in a reply. */
export const QUOTE_MAX = 200;

/** What the stub reads of one message of a chat completion (or a Responses API input item). */
export interface StubMessage {
  role?: unknown;
  content?: unknown;
}

/**
 * The text of a message's content: a string, or an array of parts of which the text ones count
 * ({type: "text" | "input_text" | "output_text", text}); images and other parts are skipped.
 */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((part: unknown) => {
      if (typeof part === 'string') return part;
      const p = part as { type?: unknown; text?: unknown } | null;
      return p && typeof p.text === 'string' && (p.type === undefined || /^(input_|output_)?text$/.test(String(p.type))) ? p.text : '';
    })
    .filter((s) => s !== '')
    .join('\n');
}

/** Whitespace collapsed; a long text keeps its end, where callers put what the user typed. */
export function quote(text: string, max = QUOTE_MAX): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  // OpenClaw prefixes the user's words with sender and time metadata: the tail is what proves the turn.
  return flat.length <= max ? flat : `…${flat.slice(flat.length - (max - 1))}`;
}

/**
 * OpenClaw adds a synthetic user message of internal context after the real one
 * (`<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>…`): not a turn of the person chatting.
 */
const INTERNAL_CONTEXT = /^\s*<<<BEGIN_[A-Z_]*INTERNAL_CONTEXT>>>/;

/**
 * What the person typed, without what an agent wrapped it in: OpenClaw puts
 * `[<time>] Conversation info: ⟦openclaw:ctx⟧` and a ```json block before it and a `Runtime: …`
 * line after it; ZeroClaw a `[Memory context]…[/Memory context]` block and a `[<time>] ` prefix.
 */
export function typedText(text: string): string {
  let t = text.replace(/\[Memory context\][\s\S]*?\[\/Memory context\]\s*/g, '');
  t = t.replace(/^\s*\[[^\]\n]{1,60}\]\s*Conversation info:[^\n]*\n```json\n[\s\S]*?\n```\s*/, '');
  t = t.replace(/\n\nRuntime: [^\n]*$/, '');
  t = t.replace(/^\s*\[[^\]\n]{1,60}\]\s+/, '');
  return t.trim();
}

export function stubReply(messages: readonly StubMessage[]): string {
  const users = messages.filter((m) => m.role === 'user' && !INTERNAL_CONTEXT.test(contentText(m.content)));
  const last = users.at(-1);
  return `stub reply: user turns ${users.length}; last: ${JSON.stringify(last ? quote(typedText(contentText(last.content))) : '')}`;
}

/** A rough token count (4 characters a token), enough for usage fields. */
export function roughTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}
