/**
 * The one definition of what a secret looks like, used by the logger, error printing, Bull Board
 * and `ztm`. Two rules, both applied everywhere:
 * - by shape, in any string: bot tokens (also `%3A`/`%253A`-encoded, e.g. inside `/bot<token>/`),
 *   secret headers, signed or secret parameters (`X-Amz-Signature`, `X-Amz-Credential`,
 *   `X-Amz-Security-Token`, `token=`, `REDIS_PASSWORD=` …) and JSON fields (`"api_key":"…"`),
 *   credentials in URLs (`redis://:pw@host`, `https://user:pw@host`, `https://<token>@host`),
 *   `Bearer` credentials, `sk-` API keys and admin API tokens (`ztm_<id>_<secret>`);
 * - by name, at any depth of an object: a field whose name ends in token, secret, password,
 *   api_key, authorization, credential(s), signature … (also `{ name: 'X_TOKEN', value }` pairs).
 * What it does not catch: a password with whitespace or a double quote in a URL, credentials in a
 * fully percent-encoded URL (`%2F%2Fuser%3Apw%40`), secrets under innocent names in odd shapes.
 */
export const REDACTED = '[REDACTED]';

const V = '[A-Za-z0-9_-]';
// What a secret's name ends in, for fields (`bot_token`, `webhookSecret`, `X-Amz-Signature`),
// parameters (`password=`, `TELEGRAM_BOT_TOKEN=`) and JSON in text (`"api_key":"…"`) alike; so
// `max_tokens`, `token_count` or `secretKeyRef` are not secrets.
const SECRET_NAME_END = String.raw`token|secret|password|passwd|passphrase|api[_-]?key|authorization|credentials?|cookie|private[_-]?key|access[_-]?key|signature`;
// Each alternative starts with a literal (`:`, `=`, `"`, `//`, a name), checked backwards from
// there with a lookbehind: a scan then costs a few ns per character (a leading lookbehind tried at
// every position cost five times more).
const SECRET_TEXT = new RegExp(
  [
    // 1: a bot token (`<id>:<secret>`, also `%3A`/`%253A`-encoded); no `\b` before the id (in
    // `/bot123:…` it follows a letter). The id, public, stays.
    `(:|%3A|%253A)(?<=(?<![0-9])[0-9]{1,20}(?::|%3A|%253A))${V}{20,}`,
    // 2: a secret query, form or environment parameter (`X-Amz-Signature=`, `sig=`, `REDIS_PASSWORD=`),
    // also inside an encoded URL (`%3F`, `%26`, `%3D`).
    String.raw`(=|%3D)(?<=(?:^|[^A-Za-z0-9_-]|%3F|%26)(?:[A-Za-z0-9]+[_-])*(?:${SECRET_NAME_END}|sig|AWSAccessKeyId)(?:=|%3D))[^&\s"'#<>\\,;]+`,
    // 3: a secret-named string in JSON text (a server's error body, a manifest in a message), also
    // JSON inside a JSON string (`\"password\":\"…\"`).
    String.raw`(\\?"\s*:\s*\\?")(?<="[^"\\]*(?:${SECRET_NAME_END})\\?"\s*:\s*\\?")[^"\\]+`,
    // 4: a secret header's value, also in JSON (quotes may be escaped: `\"`) and after its scheme.
    String.raw`((?:x-telegram-bot-api-secret-token|x-amz-security-token|x-api-key|(?:proxy-)?authorization)(?:\\?["'])?\s*[:=]\s*(?:\\?["'])?(?:(?:Bearer|Basic|Digest)\s+)?)(?!(?:Bearer|Basic|Digest)\s)[A-Za-z0-9._~+/=%-]+`,
    // 5-7: credentials in a URL: `//user:password@` keeps the user, `//userinfo@` (a token) goes.
    String.raw`(\/\/)([^\s/?#@"'\\:]*)(?::([^\s/?#"\\]*))?@`,
    // 8: an `sk-` API key (OpenAI, Anthropic, …), whatever its project prefix.
    `(?<![A-Za-z0-9_-])(sk-)${V}{20,}`,
    // 9: a bearer credential outside a header (a curl line, a library's message).
    String.raw`\b(Bearer\s+)[A-Za-z0-9._~+/=-]{12,}`,
    // 10: an admin API token anywhere (a path, a query, a shell line): `ztm_<id>_` (the id is
    // public: it names the token in `ztm api-token list` and the logs) stays, the secret goes.
    `(ztm_[0-9a-f]{12}_)${V}{20,}`,
  ].join('|'),
  'gi',
);

// Passwords already shown as masked (describeRedisUrl's `***`) or empty stay as they are.
const SHOWN_PASSWORD = new Set(['', '***', REDACTED]);

function replaceSecret(match: string, ...g: Array<string | undefined>): string {
  // Whatever introduced the secret (separator, `name=`, header, scheme) is kept.
  const kept = g[0] ?? g[1] ?? g[2] ?? g[3] ?? g[7] ?? g[8] ?? g[9];
  if (kept !== undefined) return `${kept}${REDACTED}`;
  if (g[4] === undefined) return match;
  const user = g[5] ?? '';
  const password = g[6];
  if (password === undefined) return user ? `//${REDACTED}@` : match;
  return SHOWN_PASSWORD.has(password) ? match : `//${user}:${REDACTED}@`;
}

/** Free text with every secret-shaped part replaced; idempotent. */
export function redactSecrets(text: string): string {
  return text.replace(SECRET_TEXT, replaceSecret);
}

/** A bot token shown to an operator: its bot id (public) and nothing of the secret part. */
export function maskToken(token: string | undefined): string {
  if (!token) return '';
  // Only a numeric bot id before a colon is public; a malformed value is all secret.
  const id = /^([0-9]{1,20}):/.exec(token)?.[1];
  return id ? `${id}:${REDACTED}` : REDACTED;
}

const SECRET_KEY = new RegExp(`(?:${SECRET_NAME_END})$`, 'i');
const BOT_TOKEN_KEY = /bot_?token$/i;
// Field names repeat endlessly on the hot path: remember the answer, for a bounded set of names.
const keyVerdicts = new Map<string, boolean>();

export function isSecretKey(key: string): boolean {
  let verdict = keyVerdicts.get(key);
  if (verdict === undefined) {
    verdict = SECRET_KEY.test(key);
    if (keyVerdicts.size < 4096) keyVerdicts.set(key, verdict);
  }
  return verdict;
}

/** The value of a secret-named field: a bot token keeps its public id, anything else goes. */
function maskField(key: string, value: unknown): unknown {
  // Absence and yes/no flags (`has_token: true`) are not secrets and help operators.
  if (value === undefined || value === null || value === '' || typeof value === 'boolean') return value;
  return typeof value === 'string' && BOT_TOKEN_KEY.test(key) ? maskToken(value) : REDACTED;
}

export interface RedactOptions {
  /** Deeper values become `[Truncated]` (never passed through unredacted). */
  maxDepth?: number;
  /** Objects, arrays and strings visited; past it values become `[Truncated]`. */
  maxNodes?: number;
}

export const TRUNCATED = '[Truncated]';
const ERROR_FIELDS = ['code', 'errno', 'syscall', 'status', 'statusCode', 'variable'] as const;
const CIRCULAR = '[Circular]';

class Walker {
  private nodes = 0;
  private readonly ancestors: object[] = [];
  constructor(private readonly maxDepth: number, private readonly maxNodes: number) {}

  walk(value: unknown): unknown {
    if (typeof value === 'string') return ++this.nodes > this.maxNodes ? TRUNCATED : redactSecrets(value);
    if (value === null || typeof value !== 'object') return value;
    if (this.ancestors.length >= this.maxDepth || ++this.nodes > this.maxNodes) return TRUNCATED;
    if (this.ancestors.includes(value)) return CIRCULAR;
    if (ArrayBuffer.isView(value)) return `[binary, ${value.byteLength} bytes]`;
    this.ancestors.push(value);
    try {
      if (Array.isArray(value)) return value.map((v) => this.walk(v));
      if (value instanceof Error) return this.error(value);
      // What JSON.stringify would print: a URL's href, a Date's ISO string.
      const toJSON = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') return this.walk(toJSON.call(value));
      return this.fields(value as Record<string, unknown>, {});
    } finally {
      this.ancestors.pop();
    }
  }

  private fields(obj: Record<string, unknown>, out: Record<string, unknown>): Record<string, unknown> {
    // An environment entry (`{ name: 'WARM_POOL_SECRET', value }`) is secret by its name.
    const secretPair = typeof obj.name === 'string' && 'value' in obj && isSecretKey(obj.name);
    for (const k of Object.keys(obj)) {
      const v = obj[k];
      out[k] = isSecretKey(k) || (secretPair && k === 'value') ? maskField(k, v) : this.walk(v);
    }
    return out;
  }

  /**
   * An error as the logs print it: type, message, stack, cause and a few diagnostic fields. Not
   * its other own fields: a library's can hold anything (ioredis puts a failed AUTH's arguments,
   * the password, in `command.args`).
   */
  private error(err: Error): Record<string, unknown> {
    const out: Record<string, unknown> = { type: err.name, message: redactSecrets(String(err.message)) };
    if (err.stack) out.stack = redactSecrets(err.stack);
    const fields = err as unknown as Record<string, unknown>;
    for (const k of ERROR_FIELDS) if (fields[k] !== undefined) out[k] = this.walk(fields[k]);
    if (err.cause !== undefined) out.cause = this.walk(err.cause);
    return out;
  }
}

/**
 * Deep copy of a value with secrets redacted by name and by shape, at any depth; cycles become
 * `[Circular]`, anything past the bounds `[Truncated]`. The input is never modified.
 */
export function redactDeep(value: unknown, options: RedactOptions = {}): unknown {
  return new Walker(options.maxDepth ?? 64, options.maxNodes ?? Number.POSITIVE_INFINITY).walk(value);
}
