/**
 * Every ztm command end to end: the CLI enqueues an admin job on a real redis-server, the janitor's
 * admin worker executes it against dynalite and the Telegram emulator, the CLI prints the reply.
 */
import t from 'tap';
import { deriveWebhookSecret } from '../lib/webhook-secret.js';
import { startTestPlatform, type TestPlatform } from './support/platform.js';

const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const TOKEN_SECRET = TOKEN.split(':')[1] as string;
const NEW_TOKEN = '987654321:BBHnewtokenAAAAAAAAAAAAAAAAAAAAAAAA2';
const NEW_SECRET = NEW_TOKEN.split(':')[1] as string;
const PUBLIC_URL = 'https://bots.example.test';
/** The runbook's positional token form still works; it says once why another form is safer. */
const ARGV_WARNING = 'ztm: warning: a bot token on the command line is visible in ps and shell history; use --bot-token - (stdin), --bot-token-file <path> or --bot-token-env ($ZTM_BOT_TOKEN)';

let p: TestPlatform;
const outputs: string[] = [];
const run = async (...argv: string[]) => {
  const r = await p.ztm(...argv);
  outputs.push(r.stdout, r.stderr);
  return r;
};

t.before(async () => {
  p = await startTestPlatform({ env: { ROUTER_PUBLIC_URL: PUBLIC_URL } });
  p.emulator.addBot(TOKEN, { username: 'alice_bot' });
  p.emulator.addBot(NEW_TOKEN, { username: 'alice2_bot' });
});
t.teardown(() => p.close());

t.test('create registers the webhook with the derived secret; output redacts the token', async (t) => {
  const r = await run('tenant', 'create', 'alice', TOKEN, '--idle-timeout', '600');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /tenant_id\s+alice/);
  t.match(r.stdout, /idle_timeout_s\s+600/);
  t.match(r.stdout, /webhook registered: https:\/\/bots\.example\.test\/tg\/alice/);
  t.match(r.stdout, /123456789:\[REDACTED\]/);
  t.equal(r.stderr, ARGV_WARNING, 'the positional token warns, on stderr only');
  const hook = p.emulator.webhookOf(TOKEN);
  t.equal(hook?.url, `${PUBLIC_URL}/tg/alice`);
  t.equal(hook?.secret_token, deriveWebhookSecret(p.webhookSecret, await p.clients.registry.require('alice')));
  t.ok(p.logs.find('webhook registered').length >= 1, 'logs "webhook registered"');
});

t.test('duplicate create fails with one error line and non-zero exit', async (t) => {
  const r = await run('tenant', 'create', 'alice', TOKEN);
  t.equal(r.code, 1);
  t.equal(r.stderr, `${ARGV_WARNING}\nztm: tenant alice already exists`, 'the warning, then the one-line error');
});

t.test('get shows the record with the token redacted', async (t) => {
  const r = await run('tenant', 'get', 'alice');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /status\s+idle/);
  t.match(r.stdout, /bot_token\s+123456789:\[REDACTED\]/);
  const j = await run('tenant', 'get', 'alice', '--json');
  const rec = JSON.parse(j.stdout) as Record<string, unknown>;
  t.equal(rec.tenant_id, 'alice');
  t.equal(rec.bot_token, '123456789:[REDACTED]');
});

t.test('update the idle timeout', async (t) => {
  const r = await run('tenant', 'update', 'alice', '--idle-timeout', '1800');
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse((await run('tenant', 'get', 'alice', '--json')).stdout) as Record<string, unknown>;
  t.equal(j.idle_timeout_s, 1800);
  t.equal(p.emulator.callsTo('setWebhook').length, 1, 'no re-registration without a token change');
});

t.test('update the token re-registers the webhook and drops the old one', async (t) => {
  const r = await run('tenant', 'update', 'alice', '--bot-token', NEW_TOKEN);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /webhook registered/);
  t.equal(p.emulator.webhookOf(NEW_TOKEN)?.secret_token, deriveWebhookSecret(p.webhookSecret, await p.clients.registry.require('alice')));
  t.equal(p.emulator.callsTo('deleteWebhook', TOKEN).length, 1, 'old bot webhook deleted');
  t.notOk(p.emulator.webhookOf(TOKEN)?.url, 'old bot no longer points at us');
});

t.test('list --json returns every tenant across pages', async (t) => {
  for (let i = 0; i < 5; i++) t.equal((await run('tenant', 'create', `bob-${i}`, TOKEN)).code, 0);
  const r = await run('tenant', 'list', '--json', '--limit', '2');
  t.equal(r.code, 0, r.stderr);
  const items = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  t.same(items.map((i) => i.tenant_id).sort(), ['alice', 'bob-0', 'bob-1', 'bob-2', 'bob-3', 'bob-4']);
  for (const i of items) t.match(String(i.bot_token), /\[REDACTED\]$/);
  const table = await run('tenant', 'list');
  t.match(table.stdout.split('\n')[0] ?? '', /^TENANT_ID\s+STATUS\s+IDLE_TIMEOUT_S/);
  t.equal(table.stdout.split('\n').length, 7);
});

t.test('webhook register and info', async (t) => {
  const r = await run('webhook', 'register', 'alice');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /webhook registered: https:\/\/bots\.example\.test\/tg\/alice/);
  const info = JSON.parse((await run('webhook', 'info', 'alice', '--json')).stdout) as Record<string, unknown>;
  t.equal(info.url, `${PUBLIC_URL}/tg/alice`);
});

t.test('delete removes the record and the webhook', async (t) => {
  const r = await run('tenant', 'delete', 'alice');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /record deleted/);
  t.equal(p.emulator.callsTo('deleteWebhook', NEW_TOKEN).length, 1);
  const g = await run('tenant', 'get', 'alice');
  t.equal(g.code, 1);
  t.equal(g.stderr, 'ztm: tenant alice not found');
  const again = await run('tenant', 'delete', 'alice');
  t.equal(again.code, 1);
  t.match(again.stderr, /^ztm: tenant alice not found/);
});

t.test('validation errors: one line, non-zero exit, nothing enqueued', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['tenant', 'create', 'Alice', TOKEN], /invalid tenant id "Alice"/],
    [['tenant', 'create', '1abc', TOKEN], /invalid tenant id/],
    [['tenant', 'create', 'a'.repeat(41), TOKEN], /invalid tenant id/],
    [['tenant', 'create', 'carol', 'not-a-token'], /invalid bot token/],
    [['tenant', 'create', 'carol', `${TOKEN}!`], /invalid bot token/],
    [['tenant', 'create', 'carol', TOKEN, '--idle-timeout', '0'], /invalid idle timeout "0"/],
    [['tenant', 'create', 'carol', TOKEN, '--idle-timeout', '604801'], /from 1 to 604800/],
    [['tenant', 'create', 'carol', TOKEN, '--idle-timeout', 'abc'], /invalid idle timeout "abc"/],
    [['tenant', 'create', 'carol', TOKEN, '--idle-timeout', '1.5'], /invalid idle timeout/],
    [['tenant', 'create', 'carol'], /no bot token: give it with --bot-token -/],
    [['tenant', 'update', 'carol'], /nothing to update/],
    [['tenant', 'frobnicate', 'x'], /unknown command "tenant frobnicate"/],
  ];
  const before = await p.clients.bull.keys('ztm:{admin}:*');
  for (const [argv, pattern] of cases) {
    const r = await run(...argv);
    t.equal(r.code, 2, `${argv.join(' ')} exits 2`);
    t.match(r.stderr, pattern, argv.join(' '));
    t.equal(r.stderr.split('\n').length, 1, 'one line');
    t.equal(r.stdout, '');
  }
  t.same(await p.clients.bull.keys('ztm:{admin}:*'), before, 'no admin job was enqueued');
  for (const cmd of [['tenant', 'get', 'nobody'], ['tenant', 'update', 'nobody', '--idle-timeout', '5'], ['webhook', 'register', 'nobody']]) {
    const r = await run(...cmd);
    t.equal(r.code, 1, cmd.join(' '));
    t.equal(r.stderr, 'ztm: tenant nobody not found');
  }
});

t.test('a token Telegram refuses: tenant kept, webhook failure reported, exit 1', async (t) => {
  const unknown = '555555555:CCHunknownbotAAAAAAAAAAAAAAAAAAAAAA3';
  const r = await run('tenant', 'create', 'dave', unknown);
  t.equal(r.code, 1);
  t.match(r.stderr, /webhook registration failed: .*Unauthorized/);
  t.notMatch(r.stderr + r.stdout, /CCHunknownbot/);
  t.equal((await run('tenant', 'get', 'dave')).code, 0);
});

t.test('the real ztm binary: exit codes and JSON', async (t) => {
  const c = await p.ztmProcess(['tenant', 'create', 'erin', TOKEN, '--json']);
  outputs.push(c.stdout, c.stderr);
  t.equal(c.code, 0, c.stderr);
  t.equal((JSON.parse(c.stdout) as { tenant: { tenant_id: string } }).tenant.tenant_id, 'erin');
  const bad = await p.ztmProcess(['tenant', 'create', 'Erin', TOKEN]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^ztm: invalid tenant id "Erin"/);
  const usage = await p.ztmProcess(['--help']);
  t.equal(usage.code, 0);
  t.match(usage.stdout, /tenant create <id> \[bot_token\] .*--bot-token -, --bot-token-file or --bot-token-env/);
});

t.test('tokens appear in no output and no log line', async (t) => {
  const everything = outputs.join('\n') + p.logs.text();
  t.notOk(everything.includes(TOKEN_SECRET), 'first token never printed or logged');
  t.notOk(everything.includes(NEW_SECRET), 'second token never printed or logged');
  t.ok(p.logs.lines.length > 10, 'logs were captured');
});

t.test('no admin worker: ztm says so instead of hanging', async (t) => {
  const lonely = await startTestPlatform({ withoutJanitor: true });
  t.teardown(() => lonely.close());
  const started = Date.now();
  const r = await lonely.ztmProcess(['tenant', 'list'], { ZTM_REDIS_URL: lonely.redis.url, ZTM_PICKUP_TIMEOUT_S: '1' });
  t.equal(r.code, 1);
  t.match(r.stderr, /no admin worker picked up the command within 1s/);
  t.ok(Date.now() - started < 15_000, 'answers promptly');
  t.equal(await lonely.clients.bull.llen('ztm:{admin}:wait'), 0, 'the unclaimed command was taken back');
});

t.test('unreachable Redis: a clear one-line error', async (t) => {
  const r = await p.ztmProcess(['tenant', 'list'], { ZTM_REDIS_URL: 'redis://127.0.0.1:1' });
  t.equal(r.code, 1);
  t.match(r.stderr, /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
});
