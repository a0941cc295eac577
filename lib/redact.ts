/**
 * Scrubbing of secrets from free text. Bot tokens are recognisable by shape, also inside URLs
 * such as `/bot<token>/sendMessage`, so any string that leaves the process passes through here.
 */
// No `\b` before the id: in `/bot123:…` the id follows a letter, where there is no word boundary.
const TOKEN_IN_TEXT = /(?<![0-9])([0-9]{1,20}):[A-Za-z0-9_-]{20,}/g;
// Quotes may be escaped (`\"`) when the header was JSON-encoded into a string, e.g. by `%j`.
const SECRET_HEADER = /(x-telegram-bot-api-secret-token(?:\\?["'])?\s*[:=]\s*(?:\\?["'])?)[A-Za-z0-9_-]+/gi;

export const REDACTED = '[REDACTED]';

export function redactSecrets(text: string): string {
  return text.replace(TOKEN_IN_TEXT, `$1:${REDACTED}`).replace(SECRET_HEADER, `$1${REDACTED}`);
}

/** A bot token shown to an operator: its bot id (public) and nothing of the secret part. */
export function maskToken(token: string | undefined): string {
  if (!token) return '';
  // Only a numeric bot id before a colon is public; a malformed value is all secret.
  const id = /^([0-9]{1,20}):/.exec(token)?.[1];
  return id ? `${id}:${REDACTED}` : REDACTED;
}

/** Deep copy of a value with every string scrubbed; used by the logger and the CLI printer. */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, depth + 1));
  if (value instanceof Error) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactDeep(v, depth + 1);
  return out;
}
