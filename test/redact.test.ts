/**
 * The one definition of a secret (lib/redact.ts), by shape and by name: URL-encoded bot tokens,
 * signed query strings (a real presigned S3 URL), credentials in URLs, API keys, secret-named fields
 * at any depth, errors and their causes, cycles and bounds; what must stay readable stays; every
 * output is a fixed point. Also the state transfer's URL helpers, which now use it.
 */
import t from 'tap';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { REDACTED, TRUNCATED, isSecretKey, redactDeep, redactSecrets } from '../lib/redact.js';
import { describeRedisUrl } from '../lib/redis.js';
import { describeUrl, scrubUrls } from '../agent/state-transfer.js';

const BOT_ID = '123456789';
const SECRET = 'AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const TOKEN = `${BOT_ID}:${SECRET}`;
const PW = 'n0t-a-guessable-pw';
const ACCESS_KEY = 'AKIAIOSFODNN7EXAMPLE';
const SESSION_TOKEN = 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD';

/** A real presigned URL, as the platform makes them (signing is local: no network). */
async function presigned(kind: 'get' | 'put'): Promise<string> {
  const s3 = new S3Client({
    region: 'eu-west-1',
    endpoint: 'http://127.0.0.1:9000',
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', sessionToken: SESSION_TOKEN },
  });
  const input = { Bucket: 'ztm-state', Key: 'tenants/alice/brain.tar' };
  const url = await getSignedUrl(s3, kind === 'get' ? new GetObjectCommand(input) : new PutObjectCommand(input), { expiresIn: 3600 });
  s3.destroy();
  return url;
}

const signatureOf = (url: string): string => new URL(url).searchParams.get('X-Amz-Signature') ?? '';

t.test('bot tokens, also URL-encoded, keep only their public id', async (t) => {
  for (const sep of [':', '%3A', '%3a', '%253A']) {
    const text = `GET https://api.telegram.org/bot${BOT_ID}${sep}${SECRET}/getMe failed`;
    const out = redactSecrets(text);
    t.notMatch(out, SECRET, `${sep}: the secret part is gone`);
    t.equal(out, `GET https://api.telegram.org/bot${BOT_ID}${sep}${REDACTED}/getMe failed`, `${sep}: the id and the separator stay`);
  }
  t.equal(redactSecrets(encodeURIComponent(`url=/bot${TOKEN}/x`)), `url%3D%2Fbot${BOT_ID}%3A${REDACTED}%2Fx`, 'as encodeURIComponent writes it');
});

t.test('signed query strings: a real presigned S3 URL loses its signature, credential and session token', async (t) => {
  for (const kind of ['get', 'put'] as const) {
    const url = await presigned(kind);
    const signature = signatureOf(url);
    t.match(url, /X-Amz-Signature=[0-9a-f]{64}/, `precondition: a ${kind} URL is signed`);
    t.match(url, /X-Amz-Security-Token=/, 'precondition: it carries the session token');
    for (const text of [url, `state ${kind.toUpperCase()} ${url} failed: HTTP 403`, JSON.stringify({ url }), `"${url}"`]) {
      const out = redactSecrets(text);
      t.notMatch(out, signature, `${kind}: no signature in ${text.slice(0, 12)}…`);
      t.notMatch(out, ACCESS_KEY, `${kind}: no access key id`);
      t.notMatch(out, encodeURIComponent(SESSION_TOKEN).slice(0, 20), `${kind}: no session token`);
      // What an operator needs to debug an expired URL is still there.
      t.match(out, /X-Amz-Expires=3600/);
      t.match(out, /X-Amz-Date=\d{8}T\d{6}Z/);
      t.match(out, /127\.0\.0\.1:9000\/ztm-state\/tenants\/alice\/brain\.tar/);
    }
    // The same URL inside another URL's query (encoded once) or a redirect parameter.
    const nested = `https://proxy.example/fetch?target=${encodeURIComponent(url)}`;
    t.notMatch(redactSecrets(nested), signature, `${kind}: no signature in an encoded URL`);
  }
  // Any host, any case; other signed or secret parameters too.
  const cases: Array<[string, string]> = [
    ['https://minio.local/b/k?x-amz-signature=abc123&x-amz-credential=AKIA%2F2024', 'abc123'],
    ['https://storage.googleapis.com/b/k?X-Goog-Signature=feed01&X-Goog-Date=1', 'feed01'],
    ['https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIAOLD&Signature=c2lnbmF0dXJl&Expires=1', 'c2lnbmF0dXJl'],
    ['https://x.example/cb?access_token=ya29.secret-value&state=ok', 'ya29.secret-value'],
    ['https://x.example/?a=1&password=hunter2#frag', 'hunter2'],
    ['https://x.example/?api_key=k-9f8e7d', 'k-9f8e7d'],
    ['form body: user=bob&secret=s3cr3tv4lue', 's3cr3tv4lue'],
  ];
  for (const [text, secret] of cases) t.notMatch(redactSecrets(text), secret, `redacted: ${text.slice(0, 50)}`);
  t.equal(redactSecrets('https://x.example/?a=1&password=hunter2#frag'), `https://x.example/?a=1&password=${REDACTED}#frag`, 'the rest of the URL stays');
});

t.test('credentials in URLs: the password (or a lone token) goes, user and host stay', async (t) => {
  const cases: Array<[string, string]> = [
    [`redis://:${PW}@10.0.0.5:6379/0`, `redis://:${REDACTED}@10.0.0.5:6379/0`],
    [`redis://default:${PW}@redis.internal:6379`, `redis://default:${REDACTED}@redis.internal:6379`],
    [`rediss://app:${PW}@redis.example.com:6380/2`, `rediss://app:${REDACTED}@redis.example.com:6380/2`],
    [`https://ops:${PW}@dash.example.com/queues`, `https://ops:${REDACTED}@dash.example.com/queues`],
    [`http://u:${PW}@[::1]:8080/x`, `http://u:${REDACTED}@[::1]:8080/x`],
    [`redis://:p@ss:w0rd@host:6379`, `redis://:${REDACTED}@host:6379`], // an unencoded @ in the password
    [`redis://:${encodeURIComponent('p@ss w/rd')}@host:6379`, `redis://:${REDACTED}@host:6379`],
    ['https://ghp_16C7e42F292c6912E7710c838347Ae178B4a@github.com/org/repo.git', `https://${REDACTED}@github.com/org/repo.git`],
    [`connect ECONNREFUSED redis://:${PW}@h:1 (attempt 3)`, `connect ECONNREFUSED redis://:${REDACTED}@h:1 (attempt 3)`],
  ];
  for (const [text, want] of cases) t.equal(redactSecrets(text), want, text.replace(PW, '<pw>'));
  t.equal(redactSecrets(JSON.stringify({ url: `redis://:${PW}@h:1` })), JSON.stringify({ url: `redis://:${REDACTED}@h:1` }), 'inside JSON');
  t.equal(redactSecrets(String(new URL(`redis://:${PW}@h:1`))), `redis://:${REDACTED}@h:1`, 'a URL object printed');
  // Already masked forms stay as they are: describeRedisUrl's `***`, an empty password.
  for (const shown of [describeRedisUrl(`redis://:${PW}@h:6379`), 'redis://user:@h:6379', 'redis://:@h:6379']) {
    t.equal(redactSecrets(shown), shown, `kept: ${shown}`);
  }
});

t.test('secret names in text: parameters, environment dumps, JSON bodies', async (t) => {
  t.equal(
    redactSecrets(`env TELEGRAM_BOT_TOKEN=${TOKEN} WARM_POOL_SECRET=abc123 REDIS_PASSWORD=${PW} AGENT_LLM_API_KEY=k9 TZ=UTC max_tokens=5`),
    `env TELEGRAM_BOT_TOKEN=${REDACTED} WARM_POOL_SECRET=${REDACTED} REDIS_PASSWORD=${REDACTED} AGENT_LLM_API_KEY=${REDACTED} TZ=UTC max_tokens=5`,
  );
  // A Kubernetes answer echoing a Secret: base64 hides the token's shape, the name gives it away.
  const body = `HTTP 422: {"kind":"Secret","data":{"bot-token":"${Buffer.from(TOKEN).toString('base64')}","TZ":"VVRD"},"api_key": "k-1"}`;
  t.equal(redactSecrets(body), `HTTP 422: {"kind":"Secret","data":{"bot-token":"${REDACTED}","TZ":"VVRD"},"api_key": "${REDACTED}"}`);
  const twice = JSON.stringify(JSON.stringify({ password: PW, user: 'u' }));
  t.equal(redactSecrets(twice), JSON.stringify(JSON.stringify({ password: REDACTED, user: 'u' })), 'JSON inside a JSON string');
  t.equal(redactSecrets('{"tokens":5,"max_tokens":"9","secretKeyRef":"x"}'), '{"tokens":5,"max_tokens":"9","secretKeyRef":"x"}', 'names that only look alike');
});

t.test('API keys and bearer credentials', async (t) => {
  const key = 'sk-proj-Abc123def456GHI789jkl012MNO345';
  t.equal(redactSecrets(`llm key ${key}`), `llm key sk-${REDACTED}`);
  t.equal(redactSecrets(`using ${'sk-ant-api03-' + 'x'.repeat(40)} now`), `using sk-${REDACTED} now`);
  t.equal(redactSecrets('curl -H "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"'), `curl -H "Authorization: Bearer ${REDACTED}"`);
  t.equal(redactSecrets('{"authorization":"Basic b3BzOmNvcnJlY3QtaG9yc2U="}'), `{"authorization":"Basic ${REDACTED}"}`);
  t.equal(redactSecrets('x-api-key: 0123456789abcdef'), `x-api-key: ${REDACTED}`);
  t.equal(redactSecrets('sent with Bearer abcdefghijklmnop1'), `sent with Bearer ${REDACTED}`);
});

t.test('admin API tokens in free text keep their public id, never their secret', async (t) => {
  const apiToken = `ztm_3f9a0c1d2e4b_${'Ab9-_'.repeat(8)}xyz`;
  t.equal(redactSecrets(`GET /v1/tenants/${apiToken} 404`), `GET /v1/tenants/ztm_3f9a0c1d2e4b_${REDACTED} 404`);
  t.equal(redactSecrets(`export ZTM_API_TOKEN=${apiToken}`), `export ZTM_API_TOKEN=${REDACTED}`);
  t.equal(redactSecrets(`https://api.example/v1/tenants?access=${apiToken}&x=1`), `https://api.example/v1/tenants?access=ztm_3f9a0c1d2e4b_${REDACTED}&x=1`);
  t.equal(redactSecrets(`token ${apiToken.toUpperCase().replace('ZTM_', 'ztm_')} pasted`).includes('AB9'), false, 'upper-case hex ids too');
  t.same(redactDeep({ path: `/x/${apiToken}` }), { path: `/x/ztm_3f9a0c1d2e4b_${REDACTED}` }, 'in logged fields too');
  for (const keep of ['ztm_admin_api_requests_total{operation="listTenants"}', 'ztm_3f9a0c1d2e4b (api token id)', 'ztm:api-rate:3f9a0c1d2e4b']) {
    t.equal(redactSecrets(keep), keep, `untouched: ${keep}`);
  }
  t.equal(redactSecrets(redactSecrets(apiToken)), redactSecrets(apiToken), 'a fixed point');
});

t.test('readable text stays readable (no false positives)', async (t) => {
  const keep = [
    'meet at 12:30', '2024-01-02T12:30:45.123Z', 'host:6379', 'redis://127.0.0.1:6379/0', 'rediss://redis.example:6380',
    'http://[::1]:8080/path@x', 'http://host:8080/a/b@c', 'mail bob@example.com', 'task-abcdefghijklmnopqrstuvwxyz0123',
    'max_tokens=1024&tokens=5&token_count=3', 'the token was rejected: invalid', 'Basic auth protects the board',
    'authorization failed', '{"url":"http://host:8080","email":"a@b.c"}', 'X-Amz-Expires=3600&X-Amz-Date=20240101T000000Z',
    'https://x.example/?q=token&sort=asc', '',
  ];
  for (const text of keep) t.equal(redactSecrets(text), text, `untouched: ${JSON.stringify(text)}`);
});

t.test('every output is a fixed point (redacting twice changes nothing)', async (t) => {
  const url = await presigned('get');
  const texts = [
    url, `redis://:${PW}@h:1`, `https://u:${PW}@h/x`, 'https://tok@h/x', `bot${BOT_ID}%3A${SECRET}`, TOKEN,
    'Authorization: Bearer abcdefghijklmnopqrstuvwxyz', 'x-telegram-bot-api-secret-token: abcdefghijklmnop', 'sk-abcdefghijklmnopqrstuvwxyz',
  ];
  for (const text of texts) {
    const once = redactSecrets(text);
    t.not(once, text, `changed: ${once.slice(0, 40)}`);
    t.equal(redactSecrets(once), once, `fixed point: ${once.slice(0, 40)}`);
  }
});

t.test('secret-named fields at any depth', async (t) => {
  const input = {
    tenant_id: 'alice',
    a: { b: { c: { password: PW, d: { e: { api_key: 'k-123456', f: [{ authorization: 'Basic abc' }] } } } } },
    tenant: { config: { bot_token: TOKEN, botToken: TOKEN, webhookSecret: 'whsec-1', warm_pool_secret: 'wps-1' } },
    env: { REDIS_PASSWORD: PW, WARM_POOL_SECRET: 'wps-2', AGENT_LLM_API_KEY: 'whatever', PATH: '/usr/bin' },
    pod: { spec: { containers: [{ env: [{ name: 'TELEGRAM_BOT_TOKEN', value: 'tok-env' }, { name: 'WEBHOOK_SECRET', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }, { name: 'PORT', value: '8080' }] }] } },
    headers: { 'x-telegram-bot-api-secret-token': 'hdr-1', 'X-Amz-Security-Token': 'sess-1', Cookie: 'sid=1', 'content-type': 'text/plain' },
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: 'sak' },
    kept: { max_tokens: 1024, token_count: 3, has_token: true, secret: '', password: null, token: undefined, secretKeyRef: { name: 'x' } },
  };
  const before = JSON.stringify(input);
  const out = redactDeep(input) as typeof input;
  t.equal(JSON.stringify(input), before, 'the input is not modified');
  const text = JSON.stringify(out);
  for (const secret of [PW, 'k-123456', 'Basic abc', SECRET, 'whsec-1', 'wps-1', 'wps-2', 'whatever', 'tok-env', 'hdr-1', 'sess-1', 'sid=1', ACCESS_KEY, 'sak']) {
    t.notMatch(text, secret, `no ${secret.slice(0, 6)}…`);
  }
  t.equal(out.a.b.c.password, REDACTED, 'three levels deep');
  t.equal(out.a.b.c.d.e.f[0]?.authorization, REDACTED, 'six levels deep, inside an array');
  t.equal(out.tenant.config.bot_token, `${BOT_ID}:${REDACTED}`, 'a bot token keeps its id');
  t.equal(out.tenant.config.webhookSecret, REDACTED);
  t.equal(out.credentials as unknown, REDACTED, 'a secret-named object goes whole');
  t.equal(out.pod.spec.containers[0]?.env[0]?.value, REDACTED, 'an env entry named like a secret');
  t.same(out.pod.spec.containers[0]?.env[1], input.pod.spec.containers[0]?.env[1], 'a secret reference is not a secret');
  t.equal(out.pod.spec.containers[0]?.env[2]?.value, '8080', 'other env entries stay');
  t.same(out.kept, input.kept, 'counts, flags, absent values and references stay');
  t.equal(out.env.PATH, '/usr/bin');
  t.equal(out.headers['content-type'], 'text/plain');
  t.same(redactDeep(out), out, 'a fixed point');

  for (const key of ['bot_token', 'botToken', 'token', 'secret', 'password', 'api_key', 'apiKey', 'authorization', 'Proxy-Authorization', 'credentials', 'client_secret', 'X-Amz-Signature', 'set-cookie', 'secretAccessKey', 'private_key']) {
    t.ok(isSecretKey(key), `secret name: ${key}`);
  }
  for (const key of ['max_tokens', 'tokens', 'token_count', 'secretKeyRef', 'secret_name', 'keys', 'key', 'url', 'tenant_id', 'passwordless']) {
    t.notOk(isSecretKey(key), `not a secret name: ${key}`);
  }
});

t.test('errors, URLs and odd values inside objects', async (t) => {
  const cause = new Error(`connect to redis://:${PW}@h:1 failed`);
  // ioredis keeps a failed command's arguments on its error: for AUTH, the password.
  const err = Object.assign(new Error(`GET ${BOT_ID}%3A${SECRET} failed`, { cause }), { code: 'E_X', statusCode: 502, command: { name: 'auth', args: ['default', PW] } });
  const out = redactDeep({ nested: { deeper: { err } } }) as { nested: { deeper: { err: Record<string, unknown> } } };
  const e = out.nested.deeper.err;
  t.match(e, { type: 'Error', code: 'E_X', statusCode: 502, message: `GET ${BOT_ID}%3A${REDACTED} failed` }, 'an error becomes its redacted fields');
  t.notOk('command' in e, "a library's other fields are left out");
  t.match(e.stack, /failed/, 'with its stack');
  t.match(e.cause, { message: `connect to redis://:${REDACTED}@h:1 failed` }, 'and its cause');
  t.notMatch(JSON.stringify(out), PW);
  t.notMatch(JSON.stringify(out), SECRET);
  t.equal(redactDeep(new URL(`redis://:${PW}@h:6379`)), `redis://:${REDACTED}@h:6379`, 'a URL object, as JSON prints it');
  t.equal(redactDeep(Buffer.from(PW)), `[binary, ${PW.length} bytes]`, 'bytes are not printed');
  const d = new Date(0);
  t.equal(redactDeep(d), d.toISOString());
});

t.test('cycles and bounds: never a crash, never a raw value past the bound', async (t) => {
  const a: Record<string, unknown> = { name: 'a' };
  const b: Record<string, unknown> = { name: 'b', a, password: PW };
  a.b = b;
  a.self = a;
  const shared = { token: 'tok-shared' };
  const out = redactDeep({ a, list: [shared, shared] }) as Record<string, unknown>;
  t.same(out, { a: { name: 'a', b: { name: 'b', a: '[Circular]', password: REDACTED }, self: '[Circular]' }, list: [{ token: REDACTED }, { token: REDACTED }] }, 'a cycle is cut; a shared value is printed twice');

  // Deeper than the bound: the old walker handed such values over unredacted.
  let deep: Record<string, unknown> = { password: PW, text: TOKEN };
  for (let i = 0; i < 100; i++) deep = { next: deep };
  const text = JSON.stringify(redactDeep(deep));
  t.notMatch(text, PW, 'no password past the depth bound');
  t.notMatch(text, SECRET, 'no token past the depth bound');
  t.match(text, TRUNCATED);
  t.equal(JSON.stringify(redactDeep({ x: { y: { z: TOKEN } } }, { maxDepth: 2 })), JSON.stringify({ x: { y: TRUNCATED } }));

  const wide = Array.from({ length: 50 }, (_, i) => `v${i} ${TOKEN}`);
  const bounded = redactDeep(wide, { maxNodes: 10 }) as string[];
  t.equal(bounded.length, 50, 'the shape stays');
  t.equal(bounded.filter((v) => v === TRUNCATED).length, 41, 'past the node budget values are truncated');
  t.notMatch(JSON.stringify(bounded), SECRET);
});

t.test('state transfer: describeUrl and scrubUrls use the same definition', async (t) => {
  const url = await presigned('put');
  t.equal(describeUrl(url), 'http://127.0.0.1:9000/ztm-state/tenants/alice/brain.tar', 'origin and path only');
  t.equal(describeUrl(`https://u:${PW}@h/bot${TOKEN}/x?sig=1`), `https://h/bot${BOT_ID}:${REDACTED}/x`, 'no userinfo, no token in the path');
  const message = `request to ${url} failed; retry via redis://:${PW}@h:1 for bot ${BOT_ID}%3A${SECRET}`;
  const scrubbed = scrubUrls(message);
  for (const secret of [signatureOf(url), ACCESS_KEY, PW, SECRET]) t.notMatch(scrubbed, secret);
  t.match(scrubbed, /X-Amz-Expires=3600/, 'the expiry stays readable');
});
