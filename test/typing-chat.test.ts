/**
 * "typing…" as a new user of `ztm chat` gets it (issue 15's "done when"): the real `npm start`
 * entry with the built-in Bot API sandbox (TELEGRAM_API_BASE=sandbox), a paced agent that thinks
 * for seconds (test/support/paced-agent.mjs), and the real `ztm chat --message`. While the agent
 * works, the sandbox records the bot's typing actions in that chat (its events route, what
 * `ztm chat` shows as "alice is typing…"); they stop with the answer.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { request } from 'undici';
import { freePort } from '../lib/util/free-port.js';
import { spawnZtm } from './support/platform.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { ServiceSet } from './support/services.js';

const AGENT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'support', 'paced-agent.mjs');
const TOKEN = '333444555:CCHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw3';
const BOT_ID = TOKEN.split(':')[0] as string;
const CHAT = 5150;
const REPLY_MS = 7_000;

let redis: TestRedis;
let dataDir: string;
let services: ServiceSet;
let sandboxUrl: string;
const ztm = (argv: string[]) => spawnZtm(argv, { DATA_DIR: dataDir });

interface SandboxEvent { seq: number; date: number; type: string; action?: string; message?: { text?: string } }

t.before(async () => {
  redis = await startRedis();
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-typing-chat-'));
  const plan = path.join(dataDir, 'plan.json');
  writeFileSync(plan, JSON.stringify({ thinker: { startMs: 0, replyMs: REPLY_MS } }));
  services = new ServiceSet([dataDir]);
  const platform = services.add({
    name: 'platform',
    entry: 'services/platform/main.ts',
    env: {
      DATA_DIR: dataDir, REDIS_URL: redis.url, TELEGRAM_API_BASE: 'sandbox', TELEGRAM_SANDBOX_PORT: '0',
      INGRESS_PORT: String(await freePort()), WARM_POOL_TARGET: '0', LOG_LEVEL: 'info',
      AGENT_COMMAND: `exec ${process.execPath} ${AGENT} --plan ${plan}`, AGENT_PROTOCOL: 'zeroclaw', AGENT_SANDBOX: 'off',
    },
    readyMsg: 'platform started',
  });
  await platform.start(45_000);
  const info = JSON.parse(readFileSync(path.join(dataDir, 'platform.json'), 'utf8')) as { sandboxUrl?: string };
  if (!info.sandboxUrl) throw new Error('platform.json has no sandboxUrl');
  sandboxUrl = info.sandboxUrl;
});
t.teardown(async () => {
  await services.close();
  await redis.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Every event the sandbox records in the chat until `until` resolves, each with when it was seen. */
async function watchEvents(until: Promise<unknown>): Promise<Array<SandboxEvent & { seenAt: number }>> {
  const seen: Array<SandboxEvent & { seenAt: number }> = [];
  let done = false;
  void until.finally(() => (done = true));
  let after = 0;
  for (let polls = 0; polls < 200 && !done; polls++) {
    const res = await request(`${sandboxUrl}/sandbox/bots/${BOT_ID}/events?chat_id=${CHAT}&after=${after}&timeout=1`);
    const body = (await res.body.json()) as { ok: boolean; result: SandboxEvent[] };
    for (const e of body.result ?? []) {
      after = Math.max(after, e.seq);
      seen.push({ ...e, seenAt: Date.now() });
    }
  }
  return seen;
}

t.test('a slow agent: the sandbox records typing in the chat until the answer, which ztm chat prints', async (t) => {
  const created = await ztm(['tenant', 'create', 'thinker', TOKEN]);
  t.equal(created.code, 0, created.stderr);
  // Awake first: this is about the answer's wait, not the wake's.
  t.equal((await ztm(['tenant', 'wake', 'thinker'])).code, 0);
  const chat = ztm(['chat', 'thinker', '--chat-id', String(CHAT), '--message', 'think about it', '--wait', '30']);
  const events = await watchEvents(chat);
  const r = await chat;
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout.trim(), 'thinker> paced: think about it', 'the answer');
  const answerAt = events.find((e) => e.type === 'message' && e.message?.text === 'paced: think about it')?.seenAt;
  t.ok(answerAt, 'the sandbox recorded the answer');
  const typing = events.filter((e) => e.type === 'chat_action' && e.action === 'typing');
  t.ok(typing.length >= 1, `typing actions arrived while the agent thought (${typing.length} seen in ${REPLY_MS} ms)`);
  t.ok(typing.every((e) => e.seenAt <= (answerAt ?? 0)), 'all before the answer');
  const last = events.at(-1);
  t.equal(last?.type, 'message', 'the answer is the last thing the bot did in the chat: no typing after it');
});
