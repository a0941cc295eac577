/**
 * Identity on delivery, the drainer's side (issue 11 item 6): the agent at a tenant's endpoint that
 * refuses the tenant's own credential (401) is not its agent. The embedded default with real shims
 * and, as every tenant's agent, a real child process bound to its tenant's bearer
 * (support/tenant-bound-agent.mjs, 401 like ZeroClaw's gateway for any other):
 * - an endpoint pointing at another tenant's agent is dropped and the tenant woken: the message
 *   reaches the right agent, once, and the other tenant's agent never answers it;
 * - an agent that refuses its own tenant's credential: one re-wake, then a dead letter that names
 *   the endpoint (no loop).
 */
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startTestPlatform, type TestPlatform } from './support/platform.js';
import { waitUntil } from './support/wait.js';
import { STARTING_UP_TEXT } from '../services/forwarder/drainer.js';
import { agentTokenSha256, deriveAgentToken } from '../lib/webhook-secret.js';
import { endpointKey } from '../lib/keys.js';

const TOKENS = { ta: '444444441:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1', tb: '444444442:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw2' } as const;
type Id = keyof typeof TOKENS;
const AGENT = path.join(ROOT, 'test/support/tenant-bound-agent.mjs');
let nextUpdate = 700;

interface Bound {
  p: TestPlatform;
  logDir: string;
  /** What the agent of `id` was asked (status 200: it answered; 401: it refused). */
  asked(id: Id): Array<{ message: string; status: number; port: number }>;
  send(id: Id, chat: number, text: string): Promise<void>;
  answers(id: Id, chat: number): string[];
  bearer(id: Id): Promise<string>;
}

async function boundPlatform(t: Test, flags = ''): Promise<Bound> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-bound-'));
  const hashes = path.join(dir, 'hashes.json');
  writeFileSync(hashes, '{}');
  const command = `exec ${process.execPath} ${AGENT} --hashes ${hashes} --log-dir ${dir} ${flags}`;
  // AGENT_SANDBOX off: the agents write what they were asked into the test's directory on the host,
  // which a sandboxed agent sees read-only (what a sandbox shows an agent: test/agent-sandbox.test.ts).
  const p = await startTestPlatform({ full: true, env: { AGENT_COMMAND: command, WARM_POOL_TARGET: '0', AGENT_PROTOCOL: 'zeroclaw', AGENT_SANDBOX: 'off' } });
  t.teardown(async () => {
    await p.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const bearer = async (id: Id): Promise<string> => {
    const rec = await p.clients.registry.get(id);
    return deriveAgentToken(p.webhookSecret, { tenant_id: id, incarnation: rec?.incarnation });
  };
  const map: Record<string, string> = {};
  for (const id of Object.keys(TOKENS) as Id[]) {
    p.emulator.addBot(TOKENS[id]);
    const created = await p.ztm('tenant', 'create', id, TOKENS[id]);
    if (created.code !== 0) throw new Error(`tenant create: ${created.stderr}`);
    map[id] = agentTokenSha256(await bearer(id));
  }
  writeFileSync(hashes, JSON.stringify(map));
  return {
    p, logDir: dir, bearer,
    asked(id) {
      const file = path.join(dir, `${id}.jsonl`);
      return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { message: string; status: number; port: number }) : [];
    },
    async send(id, chat, text) {
      const u = nextUpdate++;
      const res = await p.postUpdate(id, { update_id: u, message: { message_id: u, date: Math.floor(Date.now() / 1000), chat: { id: chat, type: 'private' }, from: { id: chat, is_bot: false, first_name: 'u' }, text } });
      if (res.status !== 200) throw new Error(`ingress answered ${res.status}: ${res.body}`);
    },
    answers(id, chat) {
      return p.emulator.sentMessages(TOKENS[id]).filter((m) => m.chat_id === chat).map((m) => m.text).filter((x) => x !== STARTING_UP_TEXT);
    },
  };
}

async function counter(p: TestPlatform, name: string): Promise<Record<string, number>> {
  const metric = await p.platform!.metrics.registry.getSingleMetric(name)?.get();
  return Object.fromEntries((metric?.values ?? []).map((v) => [String(v.labels.outcome), v.value]));
}

t.test("an endpoint pointing at another tenant's agent: dropped, the tenant woken, its own agent answers", async (t) => {
  const b = await boundPlatform(t);
  const { p } = b;
  await b.send('tb', 20, 'hello b');
  await waitUntil("tb's answer", () => b.answers('tb', 20).length > 0, 30_000);
  t.same(b.answers('tb', 20), ['tb says: hello b'], "tb's own agent answers tb");
  const tbAddress = await p.clients.redis.get(endpointKey('tb'));
  t.ok(tbAddress, 'tb is awake');

  // ta is asleep; its endpoint says tb's agent (a reused address, an endpoint left behind).
  t.equal(await p.clients.redis.get(endpointKey('ta')), null, 'ta is asleep');
  await p.clients.redis.set(endpointKey('ta'), tbAddress!);
  await b.send('ta', 10, 'for ta only');
  await waitUntil("ta's answer", () => b.answers('ta', 10).length > 0, 30_000);

  t.same(b.answers('ta', 10), ['ta says: for ta only'], "ta's chat gets ta's agent's answer, once");
  t.same(b.asked('ta').map((r) => [r.message, r.status]), [['for ta only', 200]], "ta's agent was asked once");
  t.same(b.asked('tb').map((r) => [r.message, r.status]), [['hello b', 200], ['for ta only', 401]], "tb's agent refused ta's message and answered only its own");
  t.notOk(p.emulator.sentMessages(TOKENS.tb).some((m) => m.text.includes('for ta only')), "nothing of ta's went out through tb's bot");
  const taAddress = await p.clients.redis.get(endpointKey('ta'));
  t.ok(taAddress && taAddress !== tbAddress, `ta's endpoint is its own agent now (${taAddress}, not ${tbAddress})`);
  t.equal(await p.forwarderDeadLetters(), 0, 'nothing dead-lettered');
  t.equal(await p.clients.redis.llen('{mbox}:q:ta:10'), 0, 'the mailbox is empty: delivered, not lost');

  const warned = p.logs.find("refused this tenant's credential");
  t.equal(warned.length, 1, 'one warning');
  t.match(warned[0], { level: 40, endpoint: tbAddress, tenant: 'ta' }, 'it names the endpoint');
  const bearer = await b.bearer('ta');
  t.notOk(p.logs.text().includes(bearer), 'the bearer is in no log line');
  t.same(await counter(p, 'ztm_stale_endpoints_total'), { rewake: 1 }, 'counted');
});

t.test("an agent that refuses its own tenant's credential: one re-wake, then a dead letter naming the endpoint", async (t) => {
  const b = await boundPlatform(t, '--refuse-all');
  const { p } = b;
  await b.send('ta', 11, 'anyone?');
  await waitUntil('a dead letter', async () => (await p.forwarderDeadLetters()) > 0, 60_000);
  const address = await p.clients.redis.get(endpointKey('ta'));
  const asked = b.asked('ta');
  t.equal(asked.length, 2, 'asked twice: before and after the re-wake');
  t.ok(asked.every((r) => r.status === 401 && r.message === 'anyone?'), 'refused both times');
  const list = await p.ztm('dead', 'list', '--json');
  t.equal(list.code, 0, list.stderr);
  const items = (JSON.parse(list.stdout) as { items: Array<{ tenant_id: string; reason: string }> }).items;
  t.equal(items.length, 1);
  const port = asked[1]!.port;
  t.equal(items[0]?.reason, `the agent at 127.0.0.1:${port} refused this tenant's credential after a fresh wake`, 'the reason names the endpoint');
  t.same(b.answers('ta', 11), [], 'nothing made up');
  t.same(await counter(p, 'ztm_stale_endpoints_total'), { rewake: 1, 'dead-letter': 1 }, 'counted');
  t.equal(address, null, 'the refusing endpoint was dropped');
});
