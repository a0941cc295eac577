/**
 * The trust boundary under real processes (issue 11 item 9): a hostile agent
 * (test/support/hostile-agent.mjs, run as AGENT_COMMAND) probes its environment, every
 * /proc/<pid>/environ and cmdline it can read, DATA_DIR and other workspaces, Redis, the embedded
 * DynamoDB and S3, every shim's control routes with every secret it found (and tries to point the
 * victim's checkpoints at a collector of its own), and the victim's agent directly. The victim (the
 * reference agent, with state in S3 after one sleep) runs beside it on the same platform:
 *
 * - the embedded default, spawned as `npm start` runs it (services/platform/main.ts: the local
 *   runtime, its DATA_DIR with secrets.json and platform.json, dynalite and s3rver under it, the
 *   Telegram sandbox, the default AGENT_SANDBOX), with a Redis that requires a password;
 * - RUNTIME=kubernetes on the API stand-in and simulated kubelet.
 *
 * The test asserts that the probes ran, that every finding is on a tiny accepted list with its
 * reason (each open door fails by name: `door open: <finding> @<target> (via <where the secret came
 * from>)`), that no secret value is in the answer, and that the answer reached the attacker's own
 * chat only. Each run takes ~30-60 s; every wait is bounded.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { EmbeddedRedis } from '../lib/embedded-redis.js';
import { SandboxClient } from '../lib/sandbox/sandbox-client.js';
import { freePort } from '../lib/util/free-port.js';
import { STARTING_UP_TEXT } from '../services/forwarder/drainer.js';
import {
  OWN_ENV_ACCEPTED, REPORT_PREFIX, REQUIRED_PROBES, assertNoOpenDoor, hostileAgentCommand, listenersOf, parseReport,
  processTree, viaSharedHost, type AcceptRule, type HostileReport,
} from './support/hostile-harness.js';
import { spawnZtm, startTestPlatform } from './support/platform.js';
import { ServiceSet } from './support/services.js';
import { waitUntil } from './support/wait.js';

const VICTIM = 'victim';
const ATTACKER = 'attacker';
const VICTIM_TOKEN = '222222222:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const ATTACKER_TOKEN = '333333333:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw2';
const VICTIM_CHAT = 1001;
const ATTACKER_CHAT = 2002;
const BUDGET_MS = 20_000;

/** What both runtimes give the scenario: talk to a tenant, put it to sleep, see its chats. */
interface Harness {
  ask(tenant: string, chatId: number, text: string): Promise<string>;
  sleep(tenant: string): Promise<void>;
  /** Every text a tenant's bot sent to a chat. */
  sent(tenant: string, chatId: number): Promise<string[]>;
  /** The loopback listeners of the platform's process tree (shims, agents, stores, Redis). */
  targets(): string[];
  dataDir: string;
  bucket: string;
  /** Secret values the answer must never contain. */
  secrets(): string[];
}

const modelEnv = {
  // A model key the agents legitimately hold (accepted as env:AGENT_LLM_API_KEY); nothing listens there.
  AGENT_LLM_BASE_URL: 'http://127.0.0.1:9/v1', AGENT_LLM_MODEL: 'stub-model', AGENT_LLM_API_KEY: `sk-hostile-${randomBytes(12).toString('hex')}`,
};

/** The scenario, the same on both runtimes; returns the attacker's report. */
async function scenario(t: Test, h: Harness, accepted: readonly AcceptRule[]): Promise<HostileReport> {
  const marker = `remember-${randomBytes(6).toString('hex')}`;
  const first = await h.ask(VICTIM, VICTIM_CHAT, marker);
  t.match(first, /memories: 1\)/, 'the victim (reference agent) answered and holds one memory');
  await h.sleep(VICTIM);
  const second = await h.ask(VICTIM, VICTIM_CHAT, 'second');
  t.match(second, /memories: 2\)/, 'woken again, the victim restored its state from S3 (its state is there to steal)');

  const args = { dataDir: h.dataDir, victim: VICTIM, tenants: [VICTIM, ATTACKER], bucket: h.bucket, targets: h.targets(), budgetMs: BUDGET_MS };
  const answer = await h.ask(ATTACKER, ATTACKER_CHAT, `probe ${JSON.stringify(args)}`);
  const report = parseReport(answer);
  t.equal(report.tenant, ATTACKER, 'the report is the attacker\'s');
  for (const d of report.details ?? []) t.comment(`probe ${d}`);
  for (const name of REQUIRED_PROBES) t.ok(report.probes.includes(name), `probe ran: ${name}`);
  for (const err of report.probes.filter((p) => p.endsWith('-error'))) t.fail(`probe failed: ${err}`);
  for (const s of h.secrets()) t.notOk(answer.includes(s), 'no secret value in the answer');

  // The answer reached the attacker's own chat only: nothing of it in the victim's chats.
  const victimSaw = [...(await h.sent(VICTIM, VICTIM_CHAT)), ...(await h.sent(VICTIM, ATTACKER_CHAT))];
  t.notOk(victimSaw.some((m) => m.includes(REPORT_PREFIX)), 'no report in the victim\'s chats');
  t.equal((await h.sent(ATTACKER, ATTACKER_CHAT)).filter((m) => m.includes(REPORT_PREFIX)).length, 1, 'the report reached the attacker\'s chat, once');
  t.same(await h.sent(ATTACKER, VICTIM_CHAT), [], 'the attacker\'s bot wrote to no other chat');

  assertNoOpenDoor(t, report, accepted);
  return report;
}

t.test('embedded default (npm start: local runtime, default AGENT_SANDBOX): the hostile agent finds nothing', async (t) => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'ztm-hostile-'));
  const dataDir = path.join(root, 'data');
  const redisDir = path.join(root, 'redis');
  mkdirSync(redisDir);
  // REDIS_URL given (with a password), as an operator would: the machine's own Redis at the
  // default URL is shared with everything else here, and npm start would use it as it is.
  const redisPassword = randomBytes(24).toString('base64url');
  const redis = await EmbeddedRedis.start({ dir: redisDir, password: redisPassword });
  const services = new ServiceSet([dataDir]);
  t.teardown(async () => {
    await services.close();
    await redis.stop('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });
  const bucket = `hostile-${randomBytes(4).toString('hex')}`;
  const platform = services.add({
    name: 'platform', entry: 'services/platform/main.ts', readyMsg: 'platform started', keep: ['started embedded'],
    env: {
      DATA_DIR: dataDir, REDIS_URL: redis.url, TELEGRAM_API_BASE: 'sandbox', TELEGRAM_SANDBOX_PORT: '0',
      INGRESS_PORT: String(await freePort()), WARM_POOL_TARGET: '1', LOG_LEVEL: 'info', S3_BUCKET: bucket,
      AGENT_PROFILE: 'custom', AGENT_COMMAND: hostileAgentCommand(VICTIM), ...modelEnv,
    },
  });
  await platform.start(60_000);
  const info = JSON.parse(readFileSync(path.join(dataDir, 'platform.json'), 'utf8')) as { sandboxUrl: string };
  const sandbox = new SandboxClient({ url: info.sandboxUrl });
  const ztm = async (argv: string[], input?: string) => {
    const r = await spawnZtm(argv, { DATA_DIR: dataDir }, input, 60_000);
    if (r.code !== 0) throw new Error(`ztm ${argv.slice(0, 2).join(' ')}: ${r.stderr.slice(0, 500)}`);
  };
  const tokens: Record<string, string> = { [VICTIM]: VICTIM_TOKEN, [ATTACKER]: ATTACKER_TOKEN };
  const botOf = (tenant: string) => Number((tokens[tenant] as string).split(':')[0]);
  // Tokens on stdin: a token in ztm's arguments would be in the process table the attacker reads.
  await ztm(['tenant', 'create', VICTIM, '--bot-token', '-'], VICTIM_TOKEN);
  await ztm(['tenant', 'create', ATTACKER, '--bot-token', '-'], ATTACKER_TOKEN);

  const harness: Harness = {
    dataDir,
    bucket,
    async ask(tenant, chatId, text) {
      const botId = botOf(tenant);
      const sent = await sandbox.send(botId, chatId, text);
      let after = sent.seq;
      const deadline = Date.now() + 90_000;
      while (Date.now() < deadline) {
        for (const e of await sandbox.events(botId, chatId, { after, timeoutS: 10 })) {
          after = Math.max(after, e.seq);
          if (e.type === 'message' && e.message.text !== STARTING_UP_TEXT) return e.message.text ?? '';
        }
      }
      throw new Error(`${tenant} did not answer within 90 s`);
    },
    async sleep(tenant) {
      await ztm(['tenant', 'sleep', tenant]);
    },
    async sent(tenant, chatId) {
      const messages = await sandbox.messages(botOf(tenant), chatId, { after: 0, timeoutS: 0 });
      return messages.map((m) => m.text ?? '');
    },
    targets() {
      // The platform's process tree (shims, agents, dynalite, s3rver, sandbox, ingress) and its Redis.
      const port = new URL(redis.url).port;
      return [...new Set([...listenersOf(processTree([platform.pid as number])), `127.0.0.1:${port}`])];
    },
    secrets() {
      const file = JSON.parse(readFileSync(path.join(dataDir, 'secrets.json'), 'utf8')) as Record<string, unknown>;
      return [...Object.values(file).filter((v): v is string => typeof v === 'string'), redisPassword, VICTIM_TOKEN, ATTACKER_TOKEN, modelEnv.AGENT_LLM_API_KEY];
    },
  };
  // On this runtime nothing but what the platform gives an agent of its own is accepted: the
  // sandbox (own PID, mount and IPC namespaces), the stores' signatures, the Redis password, the
  // per-shim control secrets and the agents' bearer check must close every other door.
  const report = await scenario(t, harness, OWN_ENV_ACCEPTED);
  t.comment(`probes: ${report.probes.join(', ')}`);
});

t.test('RUNTIME=kubernetes on the API stand-in: the hostile agent opens nothing the platform guards', async (t) => {
  const p = await startTestPlatform({
    full: true, runtime: 'kubernetes',
    env: { ROUTER_PUBLIC_URL: 'https://bots.example.test', WARM_POOL_TARGET: '1', AGENT_PROFILE: 'custom', AGENT_COMMAND: hostileAgentCommand(VICTIM), ...modelEnv },
  });
  t.teardown(() => p.close());
  p.emulator.addBot(VICTIM_TOKEN);
  p.emulator.addBot(ATTACKER_TOKEN);
  for (const [id, token] of [[VICTIM, VICTIM_TOKEN], [ATTACKER, ATTACKER_TOKEN]] as const) {
    const created = await p.ztm('tenant', 'create', id, token);
    if (created.code !== 0) throw new Error(created.stderr);
  }
  const tokens: Record<string, string> = { [VICTIM]: VICTIM_TOKEN, [ATTACKER]: ATTACKER_TOKEN };
  let updateId = 5000;
  const answersTo = (tenant: string, chatId: number) => p.emulator.sentMessages(tokens[tenant]).filter((m) => m.chat_id === chatId).map((m) => m.text);
  const harness: Harness = {
    dataDir: p.config.dataDir,
    bucket: p.config.s3Bucket,
    async ask(tenant, chatId, text) {
      const before = answersTo(tenant, chatId).filter((a) => a !== STARTING_UP_TEXT).length;
      const id = updateId++;
      const res = await p.postUpdate(tenant, {
        update_id: id,
        message: { message_id: id, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private' }, from: { id: chatId, is_bot: false, first_name: 'u' }, text },
      });
      if (res.status !== 200) throw new Error(`update to ${tenant} refused: ${res.status}`);
      await waitUntil(`${tenant}'s answer`, () => answersTo(tenant, chatId).filter((a) => a !== STARTING_UP_TEXT).length > before, 90_000);
      return answersTo(tenant, chatId).filter((a) => a !== STARTING_UP_TEXT)[before] as string;
    },
    async sleep(tenant) {
      const r = await p.ztm('tenant', 'sleep', tenant);
      if (r.code !== 0) throw new Error(r.stderr);
    },
    async sent(tenant, chatId) {
      return answersTo(tenant, chatId);
    },
    // This test process runs the stores, the API stand-in and the ingress; the kubelet's pods and
    // the Redis are its children.
    targets: () => listenersOf(processTree([process.pid])),
    secrets: () => [p.webhookSecret, p.config.warmPoolSecret ?? '', VICTIM_TOKEN, ATTACKER_TOKEN, modelEnv.AGENT_LLM_API_KEY].filter(Boolean),
  };
  // The stand-in runs every "pod" as a process of one host: one PID namespace, one filesystem, one
  // network, no NetworkPolicy, a test Redis without a password. What production gets from a pod's
  // own namespaces (Kata: its own VM), its own volumes and the NetworkPolicy cannot be proven here;
  // what the platform itself guarantees still is: per-pod control secrets (nothing of its own pod
  // opens another shim), the shim's state URL guard (no redirect, whatever secret), the stores'
  // signatures, and the agent's bearer check.
  const accepted: AcceptRule[] = [
    ...OWN_ENV_ACCEPTED,
    { why: 'stand-in: every pod shares the host\'s PID namespace (production: a pod\'s own, in its own Kata VM)', match: (f) => /^proc-(environ|cmdline):/.test(f.n) },
    { why: 'stand-in: every pod shares the host\'s filesystem (production: a pod sees its own volumes only)', match: (f) => f.n.startsWith('fs:') },
    { why: 'stand-in: no NetworkPolicy and a test Redis without a password (production: the NetworkPolicy keeps tenant pods off Redis)', match: (f) => f.n === 'redis-no-password' || f.n === 'redis-auth' },
    {
      why: 'stand-in: opened only with a secret read from another pod\'s process or files through the shared host (production: not visible to a pod)',
      match: (f) => ['shim-control-accepted', 'agent-webhook-bearer', 's3-presigned-foreign'].includes(f.n) && viaSharedHost(f.v),
    },
  ];
  const report = await scenario(t, harness, accepted);
  t.comment(`probes: ${report.probes.join(', ')}`);
  t.notOk(report.findings.some((f) => f.n === 'state-redirect-accepted' || f.n === 'state-exfiltrated'), 'no redirect of the victim\'s checkpoints, whatever secret was used (the state URL guard)');
});
