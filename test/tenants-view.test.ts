/**
 * The tenants view in a real headless browser (Chromium from npm, test/support/chromium.ts, driven
 * by playwright-core), served by the real `ztm dashboard` process against a whole platform with real
 * data: tenants created with ztm, two of them woken by messages through the ingress (wake times,
 * messages today, pods), one with a dead letter the forwarder stored. The page's rows carry the
 * registry's and Redis's values, the search and the next page work, no secret is in the page, and a
 * screenshot is checked structurally: its size, and ink where the DOM says the table and its rows
 * are, none below them (no pixel-exact golden image).
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { request } from 'undici';
import { launchChromium } from './support/chromium.js';
import { ROOT, startTestPlatform, type TestPlatform } from './support/platform.js';
import { waitUntil } from './support/wait.js';
import { wakeTimesKey } from '../lib/keys.js';
import { messagesDayKeyOf, utcDay } from '../lib/tenants/tenant-stats.js';
import { TENANT_COLUMNS } from '../lib/ops/tenants-view-page.js';
import type { TenantsPage } from '../lib/ops/tenants-view.js';

const USER = 'ops';
const PASSWORD = 'tenants-view-pw-0123';
const AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
const SECRET = (n: number) => `AAHdqTcvCH1vGWJxfSeofSAs0K5PALDs${String(n).padStart(3, '0')}`;
const TENANTS = ['alice', 'bob', 'carol', 'dave', 'erin', 'ghost'];
const tokenOf = (id: string) => `${700000 + TENANTS.indexOf(id)}:${SECRET(TENANTS.indexOf(id))}`;
const AWAKE = ['alice', 'bob'];

let p: TestPlatform;
let board: ChildProcess;
let url: string;
let browser: Browser;
let page: Page;
const cspViolations: string[] = [];
let nextUpdate = 5000;

const message = (chatId: number, text: string) => ({
  update_id: nextUpdate++,
  message: { message_id: nextUpdate, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private' }, from: { id: chatId, is_bot: false, first_name: 'u' }, text },
});

async function post(tenantId: string, update: unknown): Promise<void> {
  let status = 0;
  // 503: Redis did not take it in time (a loaded machine); Telegram retries, so does this.
  await waitUntil('the ingress to accept the update', async () => (status = (await p.postUpdate(tenantId, update)).status) !== 503);
  if (status !== 200) throw new Error(`ingress answered ${status}`);
}

function startZtmDashboard(redisUrl: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [path.join(ROOT, 'cli/ztm.js'), 'dashboard', '--port', '0'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ZTM_REDIS_URL: redisUrl, DASHBOARD_USER: USER, DASHBOARD_PASSWORD: PASSWORD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`ztm dashboard printed no URL: ${out} ${err}`)), 60_000);
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

/** The table as the browser lays it out: headers, and per row its tenant, cells by column and box. */
async function readTable(): Promise<{ headers: string[]; rows: Array<{ tenant: string; cells: Record<string, string> }> }> {
  const headers = await page.locator('#tenants thead th').evaluateAll((ths) => ths.map((th) => th.textContent?.trim() ?? ''));
  const rows = await page.locator('#tenants tbody tr').evaluateAll((trs) => trs.map((tr) => ({
    tenant: tr.getAttribute('data-tenant') ?? '',
    cells: Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.getAttribute('data-col') ?? '', td.textContent?.trim() ?? ''])),
  })));
  return { headers, rows };
}

/** A PNG's width, height and RGB pixels (8-bit RGB or RGBA, non-interlaced: what Chromium writes). */
function decodePng(png: Buffer): { width: number; height: number; pixel(x: number, y: number): [number, number, number] } {
  if (png.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('ascii', offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      if (data[8] !== 8 || data[12] !== 0) throw new Error('unsupported PNG (bit depth or interlace)');
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : 0;
      if (!channels) throw new Error(`unsupported PNG colour type ${data[9]}`);
    } else if (type === 'IDAT') idat.push(data);
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let i = 0; i < stride; i++) {
      const x = raw[y * (stride + 1) + 1 + i] as number;
      const a = i >= channels ? (out[y * stride + i - channels] as number) : 0;
      const b = y > 0 ? (out[(y - 1) * stride + i] as number) : 0;
      const c = y > 0 && i >= channels ? (out[(y - 1) * stride + i - channels] as number) : 0;
      let v = x;
      if (filter === 1) v = x + a;
      else if (filter === 2) v = x + b;
      else if (filter === 3) v = x + ((a + b) >> 1);
      else if (filter === 4) {
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      out[y * stride + i] = v & 0xff;
    }
  }
  return { width, height, pixel: (x, y) => [out[y * stride + x * channels] as number, out[y * stride + x * channels + 1] as number, out[y * stride + x * channels + 2] as number] };
}

t.before(async () => {
  browser = await launchChromium();
  p = await startTestPlatform({ full: true });
  // ghost's update arrives before ghost exists: the forwarder dead-letters it (unknown tenant); ghost is created after.
  await post('ghost', message(77, 'dead on arrival'));
  await waitUntil('a dead letter', async () => (await p.forwarderDeadLetters()) > 0);
  for (const id of TENANTS) {
    p.emulator.addBot(tokenOf(id));
    const r = await p.ztm('tenant', 'create', id, tokenOf(id), ...(id === 'alice' ? ['--idle-timeout', '900'] : []));
    if (r.code !== 0) throw new Error(r.stderr);
  }
  // A real wake and two delivered messages for alice, one for bob.
  await post('alice', message(1, 'hello'));
  await post('bob', message(2, 'hi'));
  await waitUntil('the answers', () => p.emulator.sentMessages(tokenOf('alice')).some((m) => /You said: hello/.test(m.text)) && p.emulator.sentMessages(tokenOf('bob')).some((m) => /You said: hi/.test(m.text)), 90_000);
  await post('alice', message(1, 'again'));
  await waitUntil('the second answer', () => p.emulator.sentMessages(tokenOf('alice')).some((m) => /You said: again/.test(m.text)), 30_000);
  await waitUntil('the stats', async () => (await p.clients.redis.hget(messagesDayKeyOf('alice', utcDay()), 'alice')) === '2' && (await p.clients.redis.llen(wakeTimesKey('bob'))) === 1);
  ({ child: board, url } = await startZtmDashboard(p.redis.url));
  const context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD }, viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on('console', (m) => void (/Content Security Policy/i.test(m.text()) && cspViolations.push(m.text())));
});

t.teardown(async () => {
  await browser?.close();
  if (board && board.exitCode === null) board.kill('SIGKILL');
  await p?.close();
});

t.test('the page lists every tenant with the registry\'s and Redis\'s values', async (t) => {
  const res = await page.goto(`${url}tenants`);
  t.equal(res?.status(), 200);
  t.match(res?.headers()['content-security-policy'], /default-src 'none'/);
  const { headers, rows } = await readTable();
  t.same(headers, TENANT_COLUMNS, 'the columns, in order');
  t.same(rows.map((r) => r.tenant).sort(), [...TENANTS].sort(), 'one row per tenant');
  for (const row of rows) {
    const rec = await p.clients.registry.require(row.tenant);
    t.equal(row.cells.status, rec.status, `${row.tenant}: status`);
    t.equal(row.cells.pod, rec.pod_name ?? '–', `${row.tenant}: pod`);
    const wakes = await p.clients.redis.llen(wakeTimesKey(row.tenant));
    t.equal(row.cells.wakes, String(wakes), `${row.tenant}: wakes recorded`);
    const today = Number((await p.clients.redis.hget(messagesDayKeyOf(row.tenant, utcDay()), row.tenant)) ?? 0);
    t.equal(row.cells['messages-today'], String(today), `${row.tenant}: messages today`);
  }
  const by = Object.fromEntries(rows.map((r) => [r.tenant, r.cells]));
  for (const id of AWAKE) {
    t.equal(by[id]?.status, 'running', `${id} is awake`);
    t.match(by[id]?.['last-activity'], /^\d+s ago$/, `${id}: last activity`);
    t.match(by[id]?.['idle-deadline'], /^in \d+[sm]$/, `${id}: idle deadline ahead`);
    t.match(by[id]?.['wake-p50'], /^\d+(\.\d)? (ms|s)$|^\dm \d\ds$/, `${id}: a wake time`);
  }
  t.match(by.alice?.['idle-deadline'], /^in 1[45]m$/, "alice's own idle timeout (900 s)");
  t.equal(by.alice?.['messages-today'], '2');
  t.equal(by.bob?.['messages-today'], '1');
  t.equal(by.ghost?.['dead-letters'], '1', 'the dead letter the forwarder stored');
  t.equal(by.carol?.['dead-letters'], '0');
  t.equal(by.carol?.['idle-deadline'], '–', 'asleep: no deadline');
  t.equal(by.carol?.['wake-p50'], '–');
  t.same(cspViolations, [], 'the page runs under its CSP');
});

t.test('search by id prefix and by status, through the form', async (t) => {
  await page.goto(`${url}tenants`);
  await page.fill('input[name=q]', 'b');
  await page.click('button[type=submit]');
  await page.waitForURL(/q=b/);
  t.same((await readTable()).rows.map((r) => r.tenant), ['bob']);
  await page.fill('input[name=q]', '');
  await page.selectOption('select[name=status]', 'running');
  await page.click('button[type=submit]');
  await page.waitForURL(/status=running/);
  t.same((await readTable()).rows.map((r) => r.tenant).sort(), AWAKE);
  t.equal(await page.inputValue('select[name=status]'), 'running', 'the form shows the search');
  const bad = await page.goto(`${url}tenants?status=asleep`);
  t.equal(bad?.status(), 400);
  t.match(await page.locator('.error').innerText(), /invalid status: one of idle\|provisioning/);
});

t.test('next page: the cursor walks the registry, every tenant once', async (t) => {
  await page.goto(`${url}tenants?limit=2`);
  const seen: string[] = [];
  for (let i = 0; i < 10; i++) {
    const { rows } = await readTable();
    t.ok(rows.length <= 2, 'at most a page');
    seen.push(...rows.map((r) => r.tenant));
    const next = page.locator('a[rel=next]');
    if ((await next.count()) === 0) break;
    await next.click();
    await page.waitForLoadState();
    t.equal(await page.locator('text=First page').count(), 1, 'a way back to the first page');
  }
  t.same([...seen].sort(), [...TENANTS].sort());
  t.equal(new Set(seen).size, seen.length, 'no tenant twice');
});

t.test('no secret in the page or the JSON: tokens, webhook secret, addresses, state URLs', async (t) => {
  await page.goto(`${url}tenants`);
  const html = await page.content();
  const json = await (await request(`${url}tenants.json?limit=50`, { headers: { authorization: AUTH } })).body.text();
  const addresses = await Promise.all(AWAKE.map(async (id) => (await p.clients.redis.get(`router:endpoint:${id}`)) ?? 'none'));
  for (const [what, text] of [['page', html], ['json', json]] as const) {
    for (const id of TENANTS) t.notOk(text.includes(SECRET(TENANTS.indexOf(id))), `${what}: no bot token of ${id}`);
    t.notOk(text.includes(p.webhookSecret), `${what}: no webhook secret`);
    for (const a of addresses) t.notOk(text.includes(a), `${what}: no agent address`);
    t.notOk(/X-Amz-|bot_token|incarnation|pod_ip/i.test(text), `${what}: no state URL or secret field`);
  }
  const body = JSON.parse(json) as TenantsPage;
  t.equal(body.rows.length, TENANTS.length, 'the JSON carries the same rows');
  const anonymous = await request(`${url}tenants`);
  t.equal(anonymous.statusCode, 401, 'basic auth as the board');
  await anonymous.body.dump();
});

t.test('screenshot, structurally: its size, ink where the rows are, blank below the table', async (t) => {
  await page.goto(`${url}tenants`);
  const table = await page.locator('#tenants').boundingBox();
  const rowBoxes = await page.locator('#tenants tbody tr').evaluateAll((trs) => trs.map((tr) => {
    const r = tr.getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  }));
  const shot = decodePng(await page.screenshot({ fullPage: false }));
  t.equal(shot.width, 1280);
  t.equal(shot.height, 800);
  if (!table) throw new Error('no table box');
  t.equal(rowBoxes.length, TENANTS.length, 'a box per row');
  t.ok(table.width > 600 && table.y + table.height < 800, 'the table is laid out in the viewport');
  const background = shot.pixel(5, 795);
  const differs = (x: number, y: number) => shot.pixel(x, y).some((v, i) => Math.abs(v - (background[i] as number)) > 40);
  /** Share of non-background pixels in a box (sampled every 2 px). */
  const ink = (b: { x: number; y: number; width: number; height: number }) => {
    let n = 0;
    let hit = 0;
    for (let y = Math.ceil(b.y); y < Math.floor(b.y + b.height) && y < shot.height; y += 2) {
      for (let x = Math.ceil(b.x); x < Math.floor(b.x + b.width) && x < shot.width; x += 2, n++) if (differs(x, y)) hit++;
    }
    return n ? hit / n : 0;
  };
  for (const [i, box] of rowBoxes.entries()) t.ok(ink(box) > 0.005, `row ${i + 1} has text where the DOM puts it`);
  const below = { x: 0, y: table.y + table.height + 60, width: 1280, height: 800 - (table.y + table.height + 60) };
  t.ok(below.height > 20, 'room below the table');
  t.equal(ink(below), 0, 'nothing drawn below the table and its links');
  const header = await page.locator('header').boundingBox();
  if (header) t.ok(ink(header) > 0.5, 'the header bar is drawn');
});
