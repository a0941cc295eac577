/**
 * A bot's message as `ztm chat` prints it. The sandbox has already turned the bot's HTML or
 * Markdown into Telegram's plain text and entities (lib/sandbox/telegram-markup.ts), exactly as a
 * Telegram app receives it; here a text link also shows its target, `docs (https://…)`, since a
 * terminal cannot make text clickable, and control characters are dropped, so an agent's output
 * cannot move the cursor or recolour the terminal.
 */
import type { MessageEntity } from '../lib/sandbox/message-entities.js';

/** C0 controls but tab and newline, DEL and C1 (ESC starts every terminal escape sequence). */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

export function renderMessage(m: { text: string; entities?: readonly MessageEntity[] }): string {
  let text = m.text;
  // From the end, so the offsets of the links still to do stay valid.
  const links = (m.entities ?? []).filter((e) => e.type === 'text_link' && e.url).sort((a, b) => b.offset - a.offset);
  for (const link of links) {
    const end = link.offset + link.length;
    const label = text.slice(link.offset, end);
    if (!sameTarget(label, link.url as string)) text = `${text.slice(0, end)} (${link.url})${text.slice(end)}`;
  }
  return text.replace(CONTROL, '');
}

/** "example.org" linking to http://example.org/ needs no repeating. */
function sameTarget(label: string, url: string): boolean {
  const bare = (s: string): string => s.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/+$/, '').toLowerCase();
  return bare(label) === bare(url);
}
