#!/usr/bin/env node
// A sign-up flow's call to the admin API: create a tenant for a new user's bot, then read it back.
// Node >= 20, no dependencies. Secrets stay off the command line (argv shows in ps):
//
//   export ZTM_API_URL=http://127.0.0.1:8090           # ADMIN_API_PORT of npm start, or the chart's Service
//   export ZTM_API_TOKEN=$(npx ztm api-token create --name signup --scope tenants:write,tenants:read)
//   printf '%s\n' "$BOT_TOKEN" | node scripts/signup-example.mjs alice [--idle-timeout 600]
//
// The bot token is read from stdin (or SIGNUP_BOT_TOKEN). Prints the new tenant as JSON on stdout
// (its bot token redacted by the API); on an error prints `signup: <code>: <message>` and exits 1
// (2 for a usage error). Over the rate limit (429) it waits Retry-After and tries again, 3 times.
import { setTimeout as sleep } from 'node:timers/promises';

function usage(message) {
  process.stderr.write(`signup: ${message}\nusage: ZTM_API_URL=... ZTM_API_TOKEN=... node scripts/signup-example.mjs <tenant_id> [--idle-timeout <s>] < bot-token\n`);
  process.exit(2);
}

const [tenantId, ...rest] = process.argv.slice(2);
if (!tenantId || tenantId.startsWith('-')) usage('give the tenant id');
let idleTimeout;
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === '--idle-timeout') idleTimeout = Number(rest[++i]);
  else usage(`unknown argument ${JSON.stringify(rest[i])}`);
}
const base = (process.env.ZTM_API_URL ?? '').replace(/\/+$/, '');
const apiToken = process.env.ZTM_API_TOKEN ?? '';
if (!/^https?:\/\//.test(base)) usage('set ZTM_API_URL to the admin API, e.g. http://127.0.0.1:8090');
if (!apiToken) usage('set ZTM_API_TOKEN to a token from `ztm api-token create`');

async function readStdin() {
  if (process.stdin.isTTY) return '';
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return text;
}
const botToken = (process.env.SIGNUP_BOT_TOKEN ?? (await readStdin())).split('\n')[0].trim();
if (!botToken) usage('give the bot token on stdin (or SIGNUP_BOT_TOKEN)');

/** One API call; retries a 429 after its Retry-After. Returns { status, body }. */
async function api(method, path, body) {
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${apiToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(120_000),
    });
    const answer = await res.json().catch(() => ({}));
    if (res.status === 429 && attempt < 3) {
      await sleep(Math.min(60, Number(res.headers.get('retry-after')) || 1) * 1000);
      continue;
    }
    return { status: res.status, body: answer };
  }
}

function fail(answer) {
  const e = answer.body?.error ?? { code: `HTTP_${answer.status}`, message: 'unexpected answer' };
  process.stderr.write(`signup: ${e.code}: ${e.message}\n`);
  process.exit(1);
}

try {
  const created = await api('POST', '/v1/tenants', { tenant_id: tenantId, bot_token: botToken, ...(idleTimeout !== undefined ? { idle_timeout_s: idleTimeout } : {}) });
  if (created.status !== 201) fail(created);
  const read = await api('GET', `/v1/tenants/${encodeURIComponent(tenantId)}`);
  if (read.status !== 200) fail(read);
  process.stdout.write(`${JSON.stringify({ tenant: read.body, webhook: created.body.webhook }, null, 2)}\n`);
} catch (err) {
  process.stderr.write(`signup: cannot reach ${base}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
