/**
 * Bull Board in a real headless browser (Chromium from npm, test/support/chromium.ts, driven by playwright-core), served by the
 * real `ztm dashboard` process against a whole platform: it lists every queue and the dead letters,
 * shows a dead-lettered update, keeps bot tokens out of the page, and asks for basic auth.
 * Chromium is required, not optional: it comes with `npm ci` (@sparticuz/chromium); no system browser is used.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Queue } from 'bullmq';
import type { Browser, Page } from 'playwright-core';
import { request } from 'undici';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { DEAD_LETTERS_BOARD_NAME } from '../lib/ops/dead-letter-adapter.js';
import { launchChromium } from './support/chromium.js';
import { ROOT, startTestPlatform, type TestPlatform } from './support/platform.js';
import { waitUntil } from './support/wait.js';

const TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const TOKEN_SECRET = TOKEN.split(':')[1] as string;
const USER = 'ops';
const PASSWORD = 'correct-horse-battery';
const AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

let p: TestPlatform;
let board: ChildProcess;
let url: string;
let browser: Browser;
let page: Page;
let adminQueue: Queue;

/** Starts the real `ztm dashboard` and resolves with the URL it prints. */
function startZtmDashboard(redisUrl: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [path.join(ROOT, 'cli/ztm.js'), 'dashboard', '--port', '0'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ZTM_REDIS_URL: redisUrl, DASHBOARD_USER: USER, DASHBOARD_PASSWORD: PASSWORD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`ztm dashboard printed no URL: ${out} ${err}`)), 30_000);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /Bull Board: (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.once('exit', (code) => reject(new Error(`ztm dashboard exited ${code}: ${err}`)));
  });
}

const bodyText = () => page.locator('body').innerText();

t.before(async () => {
  // First: a browser that cannot start fails the test with one clear line before anything else runs.
  browser = await launchChromium();
  p = await startTestPlatform({ full: true });
  p.emulator.addBot(TOKEN);
  // A real dead letter: an update for a tenant that does not exist goes through the whole pipeline.
  const update = { update_id: 4242, message: { message_id: 1, date: 1, chat: { id: 77, type: 'private' }, text: 'dead on arrival' } };
  // 503 means "Redis did not take it in time, retry" (a loaded machine): retry as Telegram does.
  let status = 0;
  await waitUntil('the ingress to accept the update', async () => (status = (await p.postUpdate('ghost', update)).status) !== 503);
  if (status !== 200) throw new Error(`ingress answered ${status}`);
  await waitUntil('a dead letter', async () => (await p.forwarderDeadLetters()) > 0);
  // An admin job that carries a bot token and stays visible (delayed): the board must redact it.
  adminQueue = new Queue(QUEUES.admin, { connection: p.clients.bull, prefix: QUEUE_PREFIX });
  await adminQueue.add('tenant.create', { tenant_id: 'alice', bot_token: TOKEN }, { jobId: 'board-redaction', delay: 3_600_000 });
  ({ child: board, url } = await startZtmDashboard(p.redis.url));
  const context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD } });
  page = await context.newPage();
});

t.teardown(async () => {
  await browser?.close();
  if (board && board.exitCode === null) board.kill('SIGKILL');
  await adminQueue?.remove('board-redaction').catch(() => undefined);
  await adminQueue?.close();
  await p?.close();
});

t.test('ztm dashboard prints a local URL; everything but the probes asks for basic auth', async (t) => {
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const anonymous = await request(url);
  t.equal(anonymous.statusCode, 401);
  t.match(String(anonymous.headers['www-authenticate']), /^Basic realm=/);
  await anonymous.body.dump();
  const wrong = await request(`${url}api/queues`, { headers: { authorization: `Basic ${Buffer.from(`${USER}:nope`).toString('base64')}` } });
  t.equal(wrong.statusCode, 401);
  await wrong.body.dump();
  const health = await request(`${url}healthz`);
  t.equal(health.statusCode, 200);
  await health.body.dump();
});

t.test('the board lists every queue and the dead letters', async (t) => {
  await page.goto(url);
  // The menu (queue names) renders first; the overview cards (display names) once the API answered.
  await waitUntil('the overview of the queues', async () => /^dead letters$/m.test(await bodyText()) && /^lifecycle$/m.test(await bodyText()), 20_000);
  const text = await bodyText();
  for (const name of ['forward', 'wake', 'admin', 'lifecycle', 'dead letters']) t.match(text, new RegExp(`^${name}$`, 'm'), `overview shows ${name}`);
  for (const queue of Object.values(QUEUES)) t.ok(text.includes(queue), `menu lists ${queue}`);
  t.ok(text.includes(DEAD_LETTERS_BOARD_NAME), 'menu lists the dead letters');
});

t.test('the board links to the tenants view, which answers beside it', async (t) => {
  await page.goto(url);
  const uiConfig = JSON.parse((await page.locator('#__UI_CONFIG__').textContent()) ?? '{}') as { miscLinks?: Array<{ text: string; url: string }> };
  t.same(uiConfig.miscLinks, [{ text: 'Tenants', url: '/tenants' }], "a link in the board's header menu");
  const res = await page.goto(`${url}tenants`);
  t.equal(res?.status(), 200);
  t.match(await page.locator('h1').innerText(), /^Tenants$/);
  t.equal(await page.locator('a', { hasText: 'Queues (Bull Board)' }).getAttribute('href'), './', 'and back');
});

t.test('the dead letters view shows the dead-lettered update', async (t) => {
  await page.goto(`${url}queue/${encodeURIComponent(DEAD_LETTERS_BOARD_NAME)}`);
  await waitUntil('the dead letter', async () => /ghost\.77\.4242/.test(await bodyText()), 20_000);
  let text = await bodyText();
  t.match(text, /update 4242 \(ghost\)/, 'named after the update and tenant');
  t.match(text, /unknown tenant/, 'the failure reason is shown');
  await page.getByText('Data', { exact: true }).first().click();
  await waitUntil('the update in the data tab', async () => /dead on arrival/.test(await bodyText()), 10_000);
  text = await bodyText();
  t.match(text, /tenant_id:\s*"ghost"/);
  t.match(text, /chat_id:\s*"77"/);
});

t.test('job data is redacted: an admin job shows the bot id, never the token', async (t) => {
  await page.goto(`${url}queue/${encodeURIComponent(QUEUES.admin)}?status=delayed`);
  await waitUntil('the admin job data', async () => /bot_token/.test(await bodyText()), 20_000);
  t.match(await bodyText(), /123456789:\[REDACTED\]/);
  t.notOk((await page.content()).includes(TOKEN_SECRET), 'the token is not in the page');
  const api = await request(`${url}api/queues?activeQueue=${encodeURIComponent(QUEUES.admin)}&status=delayed&page=1&jobsPerPage=10`, { headers: { authorization: AUTH } });
  const json = await api.body.text();
  t.equal(api.statusCode, 200);
  t.notOk(json.includes(TOKEN_SECRET), 'the token is not in the API answer');
  t.match(json, /"readOnlyMode":true/, 'the admin queue is read-only on the board');
});

t.test('ztm dashboard stops cleanly on SIGTERM', async (t) => {
  const exited = new Promise<number | null>((resolve) => board.once('exit', (code) => resolve(code)));
  board.kill('SIGTERM');
  t.equal(await exited, 0);
});
