/**
 * The sign-up example (scripts/signup-example.mjs) against a running admin API: real redis-server,
 * the platform's registry (dynalite) and janitor, the Telegram emulator; its token made by the real
 * `ztm` binary (`ztm api-token create`, a child process). The script runs as a child process too.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startTestPlatform, ROOT, type TestPlatform, type ZtmResult } from './support/platform.js';
import { buildAdminApi, type BuiltAdminApi } from '../services/admin-api/build.js';
import { startOrClose } from '../lib/platform/service-parts.js';

const BOT = '555000111:AAHsignupSignupSignupSignupSignup123';
const BOT_SECRET = BOT.split(':')[1] as string;
const PUBLIC_URL = 'https://bots.example.test';

let p: TestPlatform;
let api: BuiltAdminApi;

function signup(argv: string[], env: Record<string, string>, stdin: string): Promise<ZtmResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'scripts/signup-example.mjs'), ...argv], {
      env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(stdin);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

t.before(async () => {
  p = await startTestPlatform({ env: { ROUTER_PUBLIC_URL: PUBLIC_URL } });
  p.emulator.addBot(BOT, { username: 'signup_bot' });
  api = await startOrClose(await buildAdminApi({
    config: p.config, log: p.logs.logger('admin-api'), redis: p.clients.redis, redisUrl: p.redis.url, port: 0, host: '127.0.0.1',
  }));
});
t.teardown(async () => {
  await api?.close();
  await p?.close();
});

t.test('a sign-up script creates a tenant through the API with a token made by ztm', async (t) => {
  const made = await p.ztmProcess(['api-token', 'create', '--name', 'signup', '--scope', 'tenants:write,tenants:read']);
  t.equal(made.code, 0, made.stderr);
  const token = made.stdout.trim();
  t.match(token, /^ztm_[0-9a-f]{12}_/);
  const env = { ZTM_API_URL: api.url, ZTM_API_TOKEN: token };

  const r = await signup(['bob', '--idle-timeout', '900'], env, `${BOT}\n`);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { tenant: Record<string, unknown>; webhook: { registered: boolean; url: string } };
  t.equal(out.tenant.tenant_id, 'bob');
  t.equal(out.tenant.idle_timeout_s, 900);
  t.equal(out.tenant.bot_token, '555000111:[REDACTED]');
  t.same(out.webhook, { registered: true, url: `${PUBLIC_URL}/tg/bob` });
  t.notOk(r.stdout.includes(BOT_SECRET) || r.stderr.includes(BOT_SECRET), 'the bot token is not printed');
  const record = await p.clients.registry.require('bob');
  t.equal(record.bot_token, BOT, 'the registry has the tenant with its token');
  t.equal(p.emulator.webhookOf(BOT)?.url, `${PUBLIC_URL}/tg/bob`, 'its webhook is registered');

  const again = await signup(['bob'], env, `${BOT}\n`);
  t.equal(again.code, 1);
  t.equal(again.stderr, 'signup: E_EXISTS: tenant bob already exists\n');
  const bad = await signup(['Bob'], env, `${BOT}\n`);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^signup: E_VALIDATION: invalid tenant id "Bob"/);

  const id = token.slice(4, 16);
  t.equal((await p.ztmProcess(['api-token', 'revoke', id])).code, 0);
  const revoked = await signup(['carol'], env, `${BOT}\n`);
  t.equal(revoked.code, 1);
  t.equal(revoked.stderr, 'signup: E_UNAUTHORIZED: invalid or revoked API token\n');
  t.equal(await p.clients.registry.get('carol'), undefined);
  t.equal((await signup(['dave'], { ZTM_API_URL: api.url }, BOT)).code, 2, 'no token: a usage error');
});
