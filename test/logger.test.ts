/**
 * Logging never carries a bot token's secret part or a webhook secret header, in any field,
 * message, URL, error or cause, while keeping `service` and the public bot id; nor, at any depth
 * and in child bindings too, a secret-named field, an encoded token, a signed query or a password
 * in a URL; cycles and huge objects cost a bounded line, not a crash. The redaction helpers on
 * their own (more in test/redact.test.ts); and the input validators (tenant id, bot token, idle
 * timeout).
 */
import t from 'tap';
import { createLogger } from '../lib/logger.js';
import { maskToken, REDACTED, redactDeep, redactSecrets } from '../lib/redact.js';
import { assertBotToken, assertIdleTimeout, assertTenantId } from '../lib/validate.js';

const BOT_ID = '123456789';
const SECRET = 'AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const TOKEN = `${BOT_ID}:${SECRET}`;
const TOKEN2 = `987654321:${'Zz_-9'.repeat(7)}`;
const SECRET2 = TOKEN2.split(':')[1] ?? '';
const HEADER_SECRET = 'hdrSecret_0123456789-abcdefXYZ';
const API_PATH = `/bot${TOKEN}/sendMessage`;

class Capture {
  readonly lines: string[] = [];
  write(chunk: string): void {
    for (const line of chunk.split('\n')) if (line) this.lines.push(line);
  }
  parsed(): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

function capturingLogger(service = 'test-svc') {
  const cap = new Capture();
  const log = createLogger({ service, level: 'trace', destination: cap });
  return { cap, log };
}

t.test('logger: no secret in any line, service everywhere, bot id kept', async (t) => {
  const { cap, log } = capturingLogger();

  log.info({ bot_token: TOKEN, botToken: TOKEN }, 'top-level token fields');
  log.info({ tenant: { tenant_id: 'alice', bot_token: TOKEN, botToken: TOKEN } }, 'nested token fields');
  log.info({ deeper: { tenant: { config: { bot_token: TOKEN } } } }, 'deeply nested token field');
  log.info(`calling https://api.telegram.org${API_PATH} now`);
  log.info({ url: `https://api.telegram.org${API_PATH}` }, 'url field');
  log.warn({ urls: [`https://api.telegram.org${API_PATH}`, `/bot${TOKEN2}/getMe`] }, 'array of urls');

  const err = new Error(`request to https://api.telegram.org${API_PATH} failed`);
  t.match(err.stack ?? '', SECRET, 'precondition: the stack contains the token');
  log.error({ err }, 'telegram call failed');
  log.error({ err }); // pino takes msg from err.message here
  log.error(err); // and here
  log.error(Object.assign(new Error(`code error ${TOKEN}`), { code: 'E_TELEGRAM' }), 'with a code');

  const withCause = new Error('outer failure', { cause: new Error(`inner failure for ${API_PATH}`) });
  log.error({ err: withCause }, 'error with an Error cause');
  log.error({ err: new Error('outer', { cause: `string cause ${TOKEN}` }) }, 'error with a string cause');
  log.error({ err: new Error('outer', { cause: { url: API_PATH, bot_token: TOKEN } }) }, 'error with an object cause');

  log.info({ headers: { 'x-telegram-bot-api-secret-token': HEADER_SECRET, 'content-type': 'application/json' } }, 'headers');
  log.info({ req: { headers: { 'x-telegram-bot-api-secret-token': HEADER_SECRET } } }, 'req headers');
  log.info({ request: { headers: { 'X-Telegram-Bot-Api-Secret-Token': HEADER_SECRET } } }, 'other headers');
  log.info({ 'x-telegram-bot-api-secret-token': HEADER_SECRET }, 'header as a field');
  log.info(`header line x-telegram-bot-api-secret-token: ${HEADER_SECRET}`);
  log.info('format %s and %j', API_PATH, { headers: { 'x-telegram-bot-api-secret-token': HEADER_SECRET }, url: API_PATH });

  const child = log.child({ tenant: 'alice', url: API_PATH, bot_token: TOKEN });
  child.info({ bot_token: TOKEN2 }, 'child line');

  const lines = cap.lines;
  t.equal(lines.length, 20, 'every call wrote one line');
  for (const [i, line] of lines.entries()) {
    t.notMatch(line, SECRET, `line ${i}: no token secret`);
    t.notMatch(line, SECRET2, `line ${i}: no second token secret`);
    t.notMatch(line, HEADER_SECRET, `line ${i}: no secret header value`);
  }
  const entries = cap.parsed();
  for (const [i, e] of entries.entries()) t.equal(e.service, 'test-svc', `line ${i}: service is set`);

  const byMsg = (m: string): Record<string, unknown> | undefined => entries.find((e) => e.msg === m);
  // A secret-named field holding a bot token keeps the public id, like the token in text.
  t.equal(byMsg('top-level token fields')?.bot_token, `${BOT_ID}:${REDACTED}`);
  t.equal(byMsg('top-level token fields')?.botToken, `${BOT_ID}:${REDACTED}`);
  t.match(byMsg('nested token fields'), { tenant: { tenant_id: 'alice' } }, 'non-secret fields survive');
  t.match(byMsg('url field')?.url, `https://api.telegram.org/bot${BOT_ID}:${REDACTED}/sendMessage`, 'url keeps its shape');
  t.match(entries[3]?.msg, `/bot${BOT_ID}:${REDACTED}/sendMessage`, 'message keeps the bot id');
  t.match(byMsg('telegram call failed'), { err: { type: 'Error', message: new RegExp(`bot${BOT_ID}:`) } });
  t.match(byMsg('telegram call failed'), { err: { stack: /telegram call|failed/ } }, 'the stack is kept');
  t.match(byMsg('with a code'), { err: { code: 'E_TELEGRAM' } });
  t.match(byMsg('error with an Error cause'), { err: { cause: { message: new RegExp(`${BOT_ID}:`) } } });
  t.match(byMsg('headers'), { headers: { 'content-type': 'application/json' } });

  // Operators can still tell bots apart: the public id survives where the token was in text.
  for (const m of ['url field', 'telegram call failed', 'error with an Error cause', 'error with a string cause', 'child line']) {
    t.match(lines[entries.indexOf(byMsg(m) ?? {})] ?? '', BOT_ID, `${m}: bot id visible`);
  }
  t.match(lines[3] ?? '', BOT_ID, 'message: bot id visible');
  t.match(lines.find((l) => l.includes('array of urls')) ?? '', '987654321', 'second bot id visible');
});

t.test('logger: secrets at any depth and in every shape, child bindings too', async (t) => {
  const { cap, log } = capturingLogger();
  const PW = 'redis-pw-0123456789';
  const SIG = 'f'.repeat(64);
  const SESSION = 'IQoJb3JpZ2luX2VjEJr';
  const signed = `https://s3.eu-west-1.amazonaws.com/ztm-state/alice/brain.tar?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-Security-Token=${SESSION}&X-Amz-Signature=${SIG}&X-Amz-SignedHeaders=host`;
  const encoded = `${BOT_ID}%3A${SECRET}`;

  log.info({ tenant: { config: { password: PW, api_key: 'key-ABCDEF123456', webhookSecret: HEADER_SECRET } } }, 'two levels');
  log.info({ a: { b: { c: { d: { secret: HEADER_SECRET, authorization: `Bearer ${HEADER_SECRET}` } } } } }, 'four levels');
  log.info({ claim: { env: [{ name: 'WARM_POOL_SECRET', value: HEADER_SECRET }, { name: 'TZ', value: 'UTC' }] } }, 'env pairs');
  log.info({ url: `https://api.telegram.org/bot${encoded}/getMe` }, `encoded token in /bot${encoded}/`);
  log.info({ state: { put: signed } }, `uploading to ${signed}`);
  log.warn({ redis: `redis://:${PW}@10.0.0.5:6379`, other: `rediss://app:${PW}@r.example:6380/1`, dash: `https://ops:${PW}@dash/` }, 'urls with passwords');
  log.error(new Error(`connect ECONNREFUSED redis://:${PW}@10.0.0.5:6379`)); // msg taken from the error
  log.error({ err: new Error(`PUT ${signed} failed`, { cause: new Error(`token ${encoded}`) }) });
  const child = log.child({ tenant: { id: 'alice', config: { bot_token: TOKEN, password: PW } }, redis: `redis://:${PW}@h:1` });
  child.info({ deeper: { again: { token: 'tok-ABCDEFGHIJ' } } }, 'child with nested secrets');
  child.child({ more: { api_key: 'key-ABCDEF123456' } }).info('grandchild');
  log.info('interpolated %j and %s', { nested: { password: PW } }, `redis://:${PW}@h:1`);
  const cyclic: Record<string, unknown> = { password: PW };
  cyclic.self = cyclic;
  log.info({ cyclic }, 'a cycle');
  let deep: Record<string, unknown> = { password: PW, token: TOKEN };
  for (let i = 0; i < 40; i++) deep = { next: deep };
  log.info({ deep }, 'deeper than the bound');

  t.equal(cap.lines.length, 13, 'every call wrote one line, the cycle too');
  for (const [i, line] of cap.lines.entries()) {
    for (const secret of [SECRET, PW, SIG, SESSION, HEADER_SECRET, 'key-ABCDEF123456', 'tok-ABCDEFGHIJ', 'AKIAEXAMPLE']) {
      t.notMatch(line, secret, `line ${i}: no ${secret.slice(0, 8)}…`);
    }
  }
  const entries = cap.parsed();
  const byMsg = (m: string) => entries.find((e) => e.msg === m) as Record<string, any> | undefined;
  t.equal(byMsg('two levels')?.tenant.config.password, REDACTED, 'a secret name two levels deep');
  t.equal(byMsg('four levels')?.a.b.c.d.secret, REDACTED, 'four levels deep');
  t.same(byMsg('env pairs')?.claim.env, [{ name: 'WARM_POOL_SECRET', value: REDACTED }, { name: 'TZ', value: 'UTC' }]);
  t.equal(byMsg(`encoded token in /bot${BOT_ID}%3A${REDACTED}/`)?.url, `https://api.telegram.org/bot${BOT_ID}%3A${REDACTED}/getMe`, 'the encoded token keeps its id');
  t.match(byMsg('urls with passwords'), { redis: `redis://:${REDACTED}@10.0.0.5:6379`, other: `rediss://app:${REDACTED}@r.example:6380/1`, dash: `https://ops:${REDACTED}@dash/` });
  t.ok(entries.some((e) => e.msg === `connect ECONNREFUSED redis://:${REDACTED}@10.0.0.5:6379`), 'the message pino takes from an error is redacted');
  const put = entries.find((e) => typeof e.msg === 'string' && e.msg.startsWith('PUT '));
  t.match(put, { err: { type: 'Error', message: /X-Amz-Expires=3600/, cause: { message: `token ${BOT_ID}%3A${REDACTED}` } } }, 'a signed URL in an error keeps what is not secret');
  t.match(byMsg('child with nested secrets'), { tenant: { id: 'alice', config: { bot_token: `${BOT_ID}:${REDACTED}`, password: REDACTED } }, redis: `redis://:${REDACTED}@h:1`, deeper: { again: { token: REDACTED } } });
  t.match(byMsg('grandchild'), { tenant: { id: 'alice' }, more: { api_key: REDACTED } }, 'bindings of a child of a child');
  t.equal(byMsg(`interpolated {"nested":{"password":"${REDACTED}"}} and redis://:${REDACTED}@h:1`)?.level, 30, 'interpolated objects and strings');
  t.same(byMsg('a cycle')?.cyclic, { password: REDACTED, self: '[Circular]' });
  t.match(JSON.stringify(byMsg('deeper than the bound')), '[Truncated]');
});

t.test('logger: level and service options', async (t) => {
  const cap = new Capture();
  const log = createLogger({ service: 'ingress', level: 'warn', destination: cap });
  log.info('hidden');
  log.warn('shown');
  t.equal(cap.lines.length, 1);
  t.match(cap.parsed()[0], { service: 'ingress', msg: 'shown', level: 40 });
});

t.test('redactSecrets', async (t) => {
  t.equal(redactSecrets(TOKEN), `${BOT_ID}:${REDACTED}`, 'a bare token');
  t.equal(redactSecrets(`${TOKEN} at start`), `${BOT_ID}:${REDACTED} at start`, 'token at the start');
  t.equal(redactSecrets(`at end ${TOKEN}`), `at end ${BOT_ID}:${REDACTED}`, 'token at the end');
  t.equal(redactSecrets(`https://api.telegram.org${API_PATH}`), `https://api.telegram.org/bot${BOT_ID}:${REDACTED}/sendMessage`, 'inside /bot<token>/');
  t.equal(
    redactSecrets(`a ${TOKEN} b /bot${TOKEN2}/getMe c "${TOKEN}"`),
    `a ${BOT_ID}:${REDACTED} b /bot987654321:${REDACTED}/getMe c "${BOT_ID}:${REDACTED}"`,
    'multiple tokens',
  );
  t.equal(redactSecrets(`q=${TOKEN}&x=1`), `q=${BOT_ID}:${REDACTED}&x=1`, 'in a query string');
  t.equal(redactSecrets(`token=${TOKEN}&x=1`), `token=${REDACTED}&x=1`, 'a secret-named parameter goes whole');

  for (const text of ['meet at 12:30', '12:30:45.123', '2024-01-02T12:30:45Z', 'ratio 16:9', 'host:6379', 'a 1:2 b', '123456789:short', '']) {
    t.equal(redactSecrets(text), text, `untouched: ${JSON.stringify(text)}`);
  }

  const header = `x-telegram-bot-api-secret-token: ${HEADER_SECRET}`;
  t.equal(redactSecrets(header), `x-telegram-bot-api-secret-token: ${REDACTED}`, 'secret header in text');
  t.notMatch(redactSecrets(JSON.stringify({ 'X-Telegram-Bot-Api-Secret-Token': HEADER_SECRET })), HEADER_SECRET, 'header in JSON');
  t.notMatch(
    redactSecrets(JSON.stringify(JSON.stringify({ 'x-telegram-bot-api-secret-token': HEADER_SECRET }))),
    HEADER_SECRET,
    'header in JSON inside a JSON string',
  );

  for (const text of [TOKEN, `x ${API_PATH} y ${TOKEN2}`, header, 'plain 12:30']) {
    const once = redactSecrets(text);
    t.equal(redactSecrets(once), once, `idempotent: ${JSON.stringify(once)}`);
  }
});

t.test('maskToken', async (t) => {
  t.equal(maskToken(TOKEN), `${BOT_ID}:${REDACTED}`);
  t.equal(maskToken(TOKEN2), `987654321:${REDACTED}`);
  t.equal(maskToken(undefined), '');
  t.equal(maskToken(''), '');
  t.equal(maskToken(maskToken(TOKEN)), maskToken(TOKEN), 'idempotent');
  // A malformed value shows nothing of itself.
  t.equal(maskToken(SECRET), REDACTED, 'no colon: all secret');
  t.equal(maskToken(`abc:${SECRET}`), REDACTED, 'non-numeric id: all secret');
  t.notMatch(maskToken(`:${SECRET}`), SECRET);
});

t.test('redactDeep', async (t) => {
  const input = {
    url: `https://api.telegram.org${API_PATH}`,
    list: [TOKEN, 'fine', 42, null, { inner: `x ${TOKEN2}` }],
    nested: { a: { b: { c: TOKEN } } },
    n: 7,
    yes: true,
    nothing: null,
    undef: undefined,
    time: '12:30',
  };
  const before = JSON.stringify(input);
  const out = redactDeep(input) as typeof input;
  t.equal(JSON.stringify(input), before, 'input is not modified');
  t.not(out, input, 'a copy');
  t.same(out, {
    url: `https://api.telegram.org/bot${BOT_ID}:${REDACTED}/sendMessage`,
    list: [`${BOT_ID}:${REDACTED}`, 'fine', 42, null, { inner: `x 987654321:${REDACTED}` }],
    nested: { a: { b: { c: `${BOT_ID}:${REDACTED}` } } },
    n: 7,
    yes: true,
    nothing: null,
    undef: undefined,
    time: '12:30',
  });
  t.same(redactDeep(out), out, 'idempotent');
  t.equal(redactDeep(TOKEN), `${BOT_ID}:${REDACTED}`, 'a bare string');
  t.equal(redactDeep(5), 5);
  t.equal(redactDeep(null), null);
  t.equal(redactDeep(undefined), undefined);
});

t.test('assertTenantId', async (t) => {
  for (const ok of ['a', 'a-1', 'alice', 'tenant-42', 'a'.repeat(40), `b${'0'.repeat(39)}`]) {
    t.equal(assertTenantId(ok), ok, `accepts ${JSON.stringify(ok)}`);
  }
  for (const bad of ['', 'A', 'Alice', '1a', '-a', 'a'.repeat(41), 'a_b', 'a.b', 'a b', 'a/b', 'é']) {
    t.throws(() => assertTenantId(bad), { code: 'E_VALIDATION', message: /invalid tenant id/ }, `rejects ${JSON.stringify(bad)}`);
  }
  for (const bad of [undefined, null, 1, {}, ['a'], true]) {
    t.throws(() => assertTenantId(bad), { code: 'E_VALIDATION' }, `rejects non-string ${String(bad)}`);
  }
  t.throws(() => assertTenantId(`x${TOKEN}`), { code: 'E_VALIDATION' });
});

t.test('assertBotToken', async (t) => {
  t.equal(assertBotToken(TOKEN), TOKEN, 'a real-shaped token');
  t.equal(assertBotToken(TOKEN2), TOKEN2);
  t.equal(assertBotToken(`1:${'a'.repeat(35)}`), `1:${'a'.repeat(35)}`);
  const bads: unknown[] = [
    '',
    SECRET, // no id
    `${BOT_ID}${SECRET}`, // no colon
    `abc:${SECRET}`, // id not digits
    `${BOT_ID}:short`, // secret too short
    `${BOT_ID}:${SECRET}!`, // bad character
    `${BOT_ID}:${SECRET} `, // trailing space
    ` ${TOKEN}`,
    `${TOKEN}\n`,
    `${BOT_ID}:${SECRET}:${SECRET}`,
    `${BOT_ID}:${'a'.repeat(61)}`,
    undefined,
    null,
    123456789,
    { token: TOKEN },
  ];
  for (const bad of bads) {
    let caught: (Error & { code?: string }) | undefined;
    try {
      assertBotToken(bad);
    } catch (err) {
      caught = err as Error & { code?: string };
    }
    const what = typeof bad === 'string' ? `string of ${bad.length} chars` : String(typeof bad);
    t.equal(caught?.code, 'E_VALIDATION', `rejects ${what}`);
    t.match(caught?.message ?? '', /invalid bot token/);
    t.notMatch(caught?.message ?? '', SECRET, `${what}: message does not echo the secret`);
    t.notMatch(caught?.message ?? '', BOT_ID, `${what}: message does not echo the value`);
  }
});

t.test('assertIdleTimeout', async (t) => {
  t.equal(assertIdleTimeout(1), 1);
  t.equal(assertIdleTimeout(300), 300);
  t.equal(assertIdleTimeout(604_800), 604_800);
  t.equal(assertIdleTimeout('300'), 300, 'a numeric string');
  t.equal(assertIdleTimeout(' 60 '), 60, 'surrounding spaces');
  for (const bad of [0, -1, 604_801, 1.5, '1e3', 'abc', '', '1.5', '-5', '0x10', null, undefined, NaN, Infinity, {}, [300], true]) {
    t.throws(
      () => assertIdleTimeout(bad),
      { code: 'E_VALIDATION', message: /whole number of seconds from 1 to 604800/ },
      `rejects ${typeof bad === 'string' ? JSON.stringify(bad) : String(bad)}`,
    );
  }
  let caught: Error | undefined;
  try {
    assertIdleTimeout(TOKEN);
  } catch (err) {
    caught = err as Error;
  }
  t.ok(caught, 'a token given as a timeout is rejected');
  t.notMatch(caught?.message ?? '', SECRET, 'and not echoed');
});
