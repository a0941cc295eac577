/**
 * Synthetic Telegram traffic: tenants with their derived webhook secrets, and ~1 KB private-chat
 * message updates built from a template (cheap enough not to dominate the load generator). The
 * same template drives the JavaScript builder (autocannon, e2e) and the Lua one (wrk).
 */
import { deriveWebhookSecret } from '../../lib/webhook-secret.js';

export interface BenchTenants {
  ids: string[];
  secrets: string[];
}

export function makeTenants(count: number, masterSecret: string, prefix = 'bench-t'): BenchTenants {
  const ids: string[] = [];
  const secrets: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${prefix}${String(i).padStart(5, '0')}`;
    ids.push(id);
    // Id-only secrets: bench tenants are written to the registry directly, with no incarnation index entry.
    secrets.push(deriveWebhookSecret(masterSecret, { tenant_id: id }));
  }
  return { ids, secrets };
}

const FILLER = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. ';

/** A template part: literal text, or a value: update id, message id (update id mod 1e6), chat id, text. */
export type Part = string | { v: 'id' | 'mid' | 'chat' | 'text' };

/** The parts of a ~`size`-byte private-chat message update (chat id = user id). */
export function updateTemplate(size = 1024): Part[] {
  const parts = (pad: string): Part[] => [
    '{"update_id":', { v: 'id' }, ',"message":{"message_id":', { v: 'mid' }, ',"from":{"id":', { v: 'chat' },
    ',"is_bot":false,"first_name":"Bench","last_name":"User","username":"bench_user_', { v: 'chat' },
    '","language_code":"en"},"chat":{"id":', { v: 'chat' }, ',"first_name":"Bench","last_name":"User","username":"bench_user_', { v: 'chat' },
    '","type":"private"},"date":1700000000,"text":"', { v: 'text' }, `${pad}"}}`,
  ];
  // Typical widths: a 7-digit update id, 6-digit message id, 10-digit chat id, empty text.
  const typical = { id: '1000000', mid: '100000', chat: '1000000000', text: '' };
  const bare = parts('').map((p) => (typeof p === 'string' ? p : typical[p.v])).join('').length;
  let pad = '';
  while (pad.length < size - bare) pad += FILLER;
  return parts(` ${pad.slice(0, Math.max(0, size - bare - 1))}`);
}

/** A JavaScript builder of the template: `(updateId, chatId, text?) => body`. */
export function makeUpdateFactory(size = 1024): (updateId: number, chatId: number, text?: string) => string {
  const t = updateTemplate(size);
  return (updateId, chatId, text = '') => {
    let s = '';
    for (const p of t) {
      if (typeof p === 'string') s += p;
      else s += p.v === 'id' ? updateId : p.v === 'mid' ? updateId % 1_000_000 : p.v === 'chat' ? chatId : text;
    }
    return s;
  };
}
