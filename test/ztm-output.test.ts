/**
 * What ztm prints (cli/output.ts, cli/render.ts) never carries a secret: `--json` output with
 * secrets nested at any depth and in every shape (encoded tokens, signed URLs, passwords in URLs),
 * tables and records, error lines, and the free-text lines of results (webhook URL and reason,
 * delete steps), while ids, statuses and URLs stay readable. test/ztm.test.ts runs the real CLI.
 */
import t, { type Test } from 'tap';
import { printError, printFailure, printJson, printRecord, printTable, type Printer } from '../cli/output.js';
import { renderResult } from '../cli/render.js';
import { RuntimeError } from '../lib/errors.js';

const BOT_ID = '123456789';
const SECRET = 'AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const TOKEN = `${BOT_ID}:${SECRET}`;
const ENCODED = `${BOT_ID}%3A${SECRET}`;
const PW = 'ztm-out-pw-0123456789';
const SIG = 'd'.repeat(64);
const SIGNED = `https://s3.example/ztm-state/alice/brain.tar?X-Amz-Credential=AKIAOUTKEY%2F20240101&X-Amz-Expires=3600&X-Amz-Signature=${SIG}`;
const SECRETS = [SECRET, PW, SIG, 'AKIAOUTKEY', 'whsec-out-1', 'sk-outkey'];

function capture(json: boolean): { p: Printer; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { p: { json, out: (l) => out.push(l), err: (l) => err.push(l) }, out, err };
}

function noSecrets(t: Test, what: string, lines: string[]): void {
  const text = lines.join('\n');
  for (const secret of SECRETS) t.notOk(text.includes(secret), `${what}: no ${secret.slice(0, 8)}…`);
}

const RESULT = {
  tenant: {
    tenant_id: 'alice', status: 'awake', bot_token: TOKEN,
    agent: { profile: 'openclaw', llm: { base_url: 'https://api.example/v1', api_key: 'sk-outkey-0123456789abcdefghij' } },
    webhook: { url: `https://router.example/tg/alice`, secret_token: 'whsec-out-1' },
    state: { get_url: SIGNED, redis: `redis://:${PW}@10.0.0.5:6379`, note: `bot ${ENCODED}` },
  },
};

t.test('ztm --json: secrets at any depth and in every shape are redacted, the rest stays', async (t) => {
  const { p, out } = capture(true);
  printJson(p, RESULT);
  noSecrets(t, '--json', out);
  const back = JSON.parse(out.join('\n')) as typeof RESULT;
  t.equal(back.tenant.tenant_id, 'alice');
  t.equal(back.tenant.bot_token, `${BOT_ID}:[REDACTED]`, 'the bot id stays');
  t.equal(back.tenant.agent.llm.api_key, '[REDACTED]', 'a secret three levels deep');
  t.equal(back.tenant.agent.llm.base_url, 'https://api.example/v1');
  t.equal(back.tenant.webhook.secret_token, '[REDACTED]');
  t.equal(back.tenant.state.redis, 'redis://:[REDACTED]@10.0.0.5:6379');
  t.equal(back.tenant.state.note, `bot ${BOT_ID}%3A[REDACTED]`);
  t.match(back.tenant.state.get_url, /X-Amz-Expires=3600&X-Amz-Signature=\[REDACTED\]$/);
});

t.test('tables and records: secret-named columns and nested values', async (t) => {
  const { p, out } = capture(false);
  printRecord(p, RESULT.tenant);
  printTable(p, [RESULT.tenant, { ...RESULT.tenant, tenant_id: 'bob' }], ['tenant_id', 'bot_token', 'state', 'agent']);
  noSecrets(t, 'human output', out);
  t.match(out.join('\n'), /^tenant_id\s+alice$/m);
  t.match(out.join('\n'), /^bob\s+123456789:\[REDACTED\]/m);
});

t.test('errors as ztm prints them', async (t) => {
  for (const json of [true, false]) {
    const { p, err } = capture(json);
    printError(p, 'E_TRANSPORT', `connect ECONNREFUSED redis://:${PW}@10.0.0.5:6379\n  while GET ${SIGNED}`);
    printFailure(p, new RuntimeError(`telegram https://api.telegram.org/bot${ENCODED}/getMe failed`));
    printFailure(p, `plain ${TOKEN}`);
    noSecrets(t, `errors (json=${json})`, err);
    t.equal(err.length, 3, 'one line each');
    t.match(err[0], 'redis://:[REDACTED]@10.0.0.5:6379');
  }
});

t.test('free-text lines of results: webhook URL and reason, delete steps', async (t) => {
  const printers = { printTable, printRecord };
  const { p, out, err } = capture(false);
  renderResult(p, 'webhook.register', { registered: true, url: `https://ops:${PW}@router.example/tg/alice` }, printers);
  renderResult(p, 'webhook.register', { registered: false, reason: `setWebhook https://api.telegram.org/bot${ENCODED}/setWebhook: 502` }, printers);
  renderResult(p, 'tenant.delete', { steps: [`state deleted at ${SIGNED}`, `webhook not deleted: bot${TOKEN} 401`] }, printers);
  noSecrets(t, 'result lines', [...out, ...err]);
  t.equal(out[0], 'webhook registered: https://ops:[REDACTED]@router.example/tg/alice');
  t.match(err[0], `bot${BOT_ID}%3A[REDACTED]/setWebhook`);
  t.match(out[1], /^state deleted at https:\/\/s3\.example\/ztm-state\/alice\/brain\.tar\?/);
});
