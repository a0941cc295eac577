/**
 * The hostile requests of test/fuzz.test.ts: each maker picks one variant of its kind with the
 * test's seeded PRNG and says what answer it deserves. Bodies and secrets come from the test (its
 * tenants, the master secret, its update factory); HTTP goes through its `post` (undici) or raw
 * sockets (test/support/raw-http.ts) where a URL-parsing client would repair the request.
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { deriveWebhookSecret } from '../../lib/webhook-secret.js';
import { rawExchange, type RawOutcome } from './raw-http.js';
import { mulberry32 } from '../../bench/lib/mulberry32.js';

/** Input pickers over one seeded sequence (FUZZ_SEED replays it). */
export function seeded(seed: number): { rand: () => number; int: (n: number) => number; pick: <T>(xs: readonly T[]) => T; bytes: (n: number) => Buffer } {
  const rand = mulberry32(seed);
  const int = (n: number): number => Math.floor(rand() * n);
  return { rand, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)] as T, bytes: (n) => Buffer.from(Array.from({ length: n }, () => int(256))) };
}

/** A status; any refusal (or no answer, for malformed HTTP); or 413, or a reset while the client still sends. */
export type Expect = number | 'refused' | '413-or-reset';
export interface Case { kind: string; expect: Expect; run: () => Promise<number | RawOutcome> }
export const REFUSALS = new Set([400, 401, 404, 405, 413, 414, 431]);

export interface FuzzContext {
  random: ReturnType<typeof seeded>;
  tenants: readonly string[];
  /** The platform's master webhook secret (forged-secret cases present it and secrets derived from guesses). */
  master: string;
  bodyLimit: number;
  /** The ingress's port, for the raw-socket cases. */
  port: number;
  secretOf: (tenant: string) => string;
  update: (chat: number, text: string) => string;
  post: (tenant: string, body: string | Buffer, headers?: Record<string, string>, method?: string, path?: string) => Promise<{ status: number }>;
}

/** The case makers with how many of each a run makes. */
export function fuzzCaseMakers(ctx: FuzzContext): Array<[() => Case, number]> {
  const { random: { rand, int, pick, bytes }, tenants: TENANTS, master: MASTER, bodyLimit: BODY_LIMIT, port, secretOf, update, post } = ctx;

  /** A valid update with the wrong credentials: only the secret is at fault. */
  function forgedSecretCase(): Case {
    const tenant = pick(TENANTS);
    const right = secretOf(tenant);
    const other = secretOf(pick(TENANTS.filter((x) => x !== tenant)));
    const flip = (s: string, i: number): string => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    const variants: Array<[string, Record<string, string>]> = [
      ['no secret header', {}],
      ['empty secret', { 'x-telegram-bot-api-secret-token': '' }],
      ['random secret of the right length', { 'x-telegram-bot-api-secret-token': randomBytes(32).toString('base64url').slice(0, right.length) }],
      ["another tenant's secret", { 'x-telegram-bot-api-secret-token': other }],
      ['the master secret', { 'x-telegram-bot-api-secret-token': MASTER }],
      ['one character off', { 'x-telegram-bot-api-secret-token': flip(right, int(right.length)) }],
      ['truncated', { 'x-telegram-bot-api-secret-token': right.slice(0, int(right.length)) }],
      ['padded', { 'x-telegram-bot-api-secret-token': right + 'A' }],
      ['upper-cased', { 'x-telegram-bot-api-secret-token': right.toUpperCase() === right ? flip(right, 0) : right.toUpperCase() }],
      ['with spaces', { 'x-telegram-bot-api-secret-token': ` ${right} x` }],
      ['2 KB secret', { 'x-telegram-bot-api-secret-token': 'A'.repeat(2048) }],
      ['the secret under another header name', { 'x-telegram-bot-api-secret': right }],
      ['a bearer token instead', { authorization: `Bearer ${right}` }],
      ['HMAC of another message', { 'x-telegram-bot-api-secret-token': deriveWebhookSecret(MASTER, { tenant_id: `${tenant}x` }) }],
      ['derived from a guessed master', { 'x-telegram-bot-api-secret-token': deriveWebhookSecret('guess-the-master-secret', { tenant_id: tenant }) }],
    ];
    const [label, headers] = pick(variants);
    return { kind: `forged: ${label}`, expect: 401, run: async () => (await post(tenant, update(7, 'forged'), headers)).status };
  }

  const VALID_UPDATE_ID_LIKE = [
    '"1"', '1.5', '-1', 'null', 'true', 'false', '[]', '{}', '[1]', '1e300', '9007199254740993', '-9007199254740993', '"0x10"', '"NaN"', '""', '18446744073709551616',
  ];
  /** The right secret, a body that is not a Telegram Update. */
  function badBodyCase(): Case {
    const tenant = pick(TENANTS);
    const valid = update(int(1000), 'x'.repeat(int(200)));
    const makers: Array<[string, () => string | Buffer]> = [
      ['random bytes', () => bytes(int(2000))],
      ['truncated JSON', () => valid.slice(0, int(valid.length))],
      ['wrong type for update_id', () => valid.replace(/"update_id":\d+/, `"update_id":${pick(VALID_UPDATE_ID_LIKE)}`)],
      ['no update_id', () => valid.replace(/"update_id":\d+,/, '')],
      ['update_id under another name', () => valid.replace('"update_id"', pick(['"update_ID"', '"updateId"', '"update id"', '"update_id "']))],
      ['update_id only nested', () => JSON.stringify({ message: { update_id: 5, text: 'x' } })],
      ['JSON that is not an object', () => pick(['[]', `[${valid}]`, '1', '"update_id"', 'null', 'true', '{', '}', ''])],
      ['JSON with a trailing extra', () => `${valid}${pick(['}', ',', 'x', '{}', ']'])}`],
      ['comments and single quotes', () => pick([`/*c*/${valid}`, valid.replace(/"/g, "'"), `{update_id: 1}`])],
      ['UTF-16 body', () => Buffer.from(valid, 'utf16le')],
      ['deeply nested garbage', () => `{"update_id":1,"x":${'['.repeat(5000 + int(5000))}`],
      ['empty body', () => ''],
    ];
    const [label, make] = pick(makers);
    const body = make();
    return { kind: `bad body: ${label}`, expect: 400, run: async () => (await post(tenant, body)).status };
  }

  function wrongMethodCase(): Case {
    const method = pick(['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']);
    const tenant = pick(TENANTS);
    const withSecret = rand() < 0.5;
    if (method === 'HEAD') {
      // On a raw socket: the answer to HEAD must be read without a body, which undici insists on.
      const head = `HEAD /tg/${tenant} HTTP/1.1\r\nHost: 127.0.0.1\r\n${withSecret ? `X-Telegram-Bot-Api-Secret-Token: ${secretOf(tenant)}\r\n` : ''}\r\n`;
      return { kind: 'wrong method: HEAD /tg/<tenant>', expect: 405, run: () => rawExchange(port, head, { waitMs: 3000 }) };
    }
    return {
      kind: `wrong method: ${method} /tg/<tenant>`, expect: 405,
      run: async () => (await post(tenant, update(1, 'm'), withSecret ? { 'x-telegram-bot-api-secret-token': secretOf(tenant) } : {}, method)).status,
    };
  }

  const ODD_PATHS = [
    '/', '/tg', '/tg/', '/tg//alpha', '/tg/alpha/', '/tg/alpha/x', '/tg/Alpha', '/tg/1alpha', '/tg/-alpha', '/tg/al_pha', '/tg/al.pha',
    `/tg/${'a'.repeat(41)}`, '/tg/%61lpha', '/tg/alpha%00', '/tg/..%2Falpha', '/TG/alpha', '/tgx/alpha', '//tg/alpha',
    '/webhook', '/telegram-webhook', '/metrics/x', '/healthz/x', '/readyz/', '/.env', '/admin', `/${'x'.repeat(3000)}`, '/tg/%ZZ', '/tg/alpha;x',
  ];
  /** Dot segments go on raw sockets: a URL-parsing client (undici) would resolve them away. */
  const DOT_PATHS = ['/tg/../tg/alpha', '/tg/./alpha', '/x/../tg/alpha', '/tg/alpha/..', '/tg/alpha/.'];
  function oddPathCase(): Case {
    const p = pick([...ODD_PATHS, ...DOT_PATHS]);
    const tenant = pick(TENANTS);
    const withSecret = rand() < 0.5;
    if (DOT_PATHS.includes(p)) {
      const body = update(1, 'p');
      const head = `POST ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${withSecret ? `X-Telegram-Bot-Api-Secret-Token: ${secretOf('alpha')}\r\n` : ''}Content-Length: ${body.length}\r\n\r\n${body}`;
      return { kind: `odd path: POST ${p}`, expect: 404, run: () => rawExchange(port, head, { waitMs: 3000 }) };
    }
    return {
      kind: `odd path: POST ${p.length > 40 ? `${p.slice(0, 20)}…` : p}`, expect: 404,
      run: async () => (await post(tenant, update(1, 'p'), withSecret ? { 'x-telegram-bot-api-secret-token': secretOf(tenant) } : {}, 'POST', p)).status,
    };
  }

  function headerFloodCase(): Case {
    const tenant = pick(TENANTS);
    const headers: Record<string, string> = {};
    const n = 20 + int(20); // uWebSockets.js takes up to 50 headers; more is malformed HTTP (raw cases)
    for (let i = 0; i < n; i++) headers[`x-flood-${i}-${int(1e6)}`] = randomBytes(int(60) + 1).toString('base64url');
    const forged = rand() < 0.5;
    if (!forged) headers['x-telegram-bot-api-secret-token'] = secretOf(tenant);
    return {
      kind: `header flood (${forged ? 'no secret' : 'secret, bad body'})`, expect: forged ? 401 : 400,
      run: async () => (await post(tenant, forged ? update(1, 'f') : '{"update_id":"x"}', headers)).status,
    };
  }

  /** Oversized bodies on raw sockets (the server answers 413 while the client is still sending). */
  function oversizedCase(): Case {
    const tenant = pick(TENANTS);
    const head = (extra: string): string =>
      `POST /tg/${tenant} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: ${secretOf(tenant)}\r\n${extra}\r\n`;
    const variants: Array<[string, Expect, string | Buffer | ((s: net.Socket) => void)]> = [
      ['declared Content-Length above the limit, no body', 413, head(`Content-Length: ${BODY_LIMIT + 1 + int(10 * BODY_LIMIT)}\r\n`)],
      // The server answers 413 and closes while the client is still sending: the client may see the
      // 413, or a reset that discarded it (as a real client would). Never anything else.
      ['declared Content-Length above the limit, body follows', '413-or-reset', (s) => {
        s.write(head(`Content-Length: ${BODY_LIMIT + 1}\r\n`));
        s.write(Buffer.alloc(BODY_LIMIT + 1, 0x20));
      }],
      ['chunked body past the limit', '413-or-reset', (s) => {
        s.write(head('Transfer-Encoding: chunked\r\n'));
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        for (let i = 0; i < 18; i++) s.write(`${chunk.length.toString(16)}\r\n`), s.write(chunk), s.write('\r\n');
        s.write('0\r\n\r\n');
      }],
      ['Content-Length beyond 32 bits', 'refused', head(`Content-Length: ${pick(['4294967296', '99999999999999', '18446744073709551616'])}\r\n`)],
    ];
    const [label, expect, payload] = pick(variants);
    return { kind: `oversized: ${label}`, expect, run: () => rawExchange(port, payload, { waitMs: 3000 }) };
  }

  /**
   * Malformed HTTP: an error status or no answer (dropped now or by the idle timeout), never a success.
   * Half carry the tenant's real secret and a valid update, so that only the broken framing stands
   * between them and a 200. What a lenient parser may rightly accept (a large header, bare LF line
   * ends, many headers) carries a forged secret instead: it must be refused whichever way it is parsed.
   */
  function malformedHttpCase(): Case {
    const tenant = pick(TENANTS);
    let secret = rand() < 0.5 ? secretOf(tenant) : 'forged';
    const H = 'Host: 127.0.0.1\r\n';
    let S = '';
    const body = update(1, 'raw');
    const variants: Array<[string, () => string | Buffer]> = [
      ['random bytes', () => bytes(1 + int(3000))],
      ['random bytes after a request line', () => Buffer.concat([Buffer.from(`POST /tg/${tenant} HTTP/1.1\r\n`), bytes(1 + int(500))])],
      ['unknown method', () => `${pick(['FOO', 'post', 'G ET', 'PRI', 'BREW'])} /tg/${tenant} HTTP/1.1\r\n${H}${S}Content-Length: ${body.length}\r\n\r\n${body}`],
      ['bad HTTP version', () => `POST /tg/${tenant} ${pick(['HTTP/9.9', 'HTTP/1', 'HTTPS/1.1', 'http/1.1', ''])}\r\n${H}${S}Content-Length: ${body.length}\r\n\r\n${body}`],
      ['HTTP/1.0', () => `POST /tg/${tenant} HTTP/1.0\r\n${H}${S}Content-Length: ${body.length}\r\n\r\n${body}`],
      ['no Host header', () => `POST /tg/${tenant} HTTP/1.1\r\n${S}Content-Length: ${body.length}\r\n\r\n${body}`],
      ['header without a colon', () => `POST /tg/${tenant} HTTP/1.1\r\n${H}${S}Broken header line\r\nContent-Length: ${body.length}\r\n\r\n${body}`],
      ['NUL and control bytes in a header', () => `POST /tg/${tenant} HTTP/1.1\r\n${H}X-Telegram-Bot-Api-Secret-Token: ${secret}\u0000\u0007x\r\nContent-Length: ${body.length}\r\n\r\n${body}`],
      ['bare LF line ends', () => `POST /tg/${tenant} HTTP/1.1\n${H.trim()}\n${S.trim()}\nContent-Length: ${body.length}\n\n${body}`],
      ['more than 50 headers', () => `POST /tg/${tenant} HTTP/1.1\r\n${H}${S}${Array.from({ length: 60 + int(200) }, (_, i) => `X-F${i}: ${i}\r\n`).join('')}Content-Length: ${body.length}\r\n\r\n${body}`],
      ['a 100 KB header', () => `POST /tg/${tenant} HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(100_000)}\r\n${S}Content-Length: ${body.length}\r\n\r\n${body}`],
      ['a 10 KB secret', () => `POST /tg/${tenant} HTTP/1.1\r\n${H}X-Telegram-Bot-Api-Secret-Token: ${'A'.repeat(10_000)}\r\nContent-Length: ${body.length}\r\n\r\n${body}`],
      ['negative or non-numeric Content-Length', () => `POST /tg/${tenant} HTTP/1.1\r\n${H}${S}Content-Length: ${pick(['-1', '+5', '0x10', '1e3', 'abc', '5, 6'])}\r\n\r\n${body}`],
      ['two Content-Lengths', () => `POST /tg/${tenant} HTTP/1.1\r\n${H}${S}Content-Length: 3\r\nContent-Length: ${body.length}\r\n\r\n${body}`],
      ['Transfer-Encoding and Content-Length', () => `POST /tg/${tenant} HTTP/1.1\r\n${H}${S}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`],
      ['broken chunked encoding', () => `POST /tg/${tenant} HTTP/1.1\r\n${H}${S}Transfer-Encoding: chunked\r\n\r\n${pick(['zz', '-1', 'ffffffffffffffff', '5;x'])}\r\nhello\r\n0\r\n\r\n`],
      ['absolute-form and odd targets', () => `${pick([`POST http://127.0.0.1/tg/${tenant}`, 'POST *', `POST tg/${tenant}`, 'CONNECT 127.0.0.1:80'])} HTTP/1.1\r\n${H}${S}Content-Length: ${body.length}\r\n\r\n${body}`],
      ['truncated request, then close', () => `POST /tg/${tenant} HTTP/1.1\r\n${H}${S}Content-Len`],
    ];
    const [label, make] = pick(variants);
    if (['a 100 KB header', 'bare LF line ends', 'more than 50 headers'].includes(label)) secret = 'forged';
    S = `X-Telegram-Bot-Api-Secret-Token: ${secret}\r\n`;
    const payload = make();
    return { kind: `malformed HTTP: ${label}`, expect: 'refused', run: () => rawExchange(port, payload, { waitMs: 400, keepOpen: true }) };
  }

  return [
    [forgedSecretCase, 3500], [badBodyCase, 3200], [wrongMethodCase, 600], [oddPathCase, 800], [headerFloodCase, 600],
    [oversizedCase, 120], [malformedHttpCase, 1800],
  ];
}
