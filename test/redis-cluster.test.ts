/**
 * The platform on a real Redis Cluster (test/support/redis-cluster.ts: 3 masters + 3 replicas):
 * every service built as the one-process platform builds them, REDIS_CLUSTER=true, given one node's
 * address. Messages are answered through the ingress; `ztm` (the real CLI, a child process, no
 * cluster setting: it asks the node) runs status, tenant and dead-letter commands against any node;
 * a retried `tenant delete` completes one that failed half-way; and a master killed mid-run (its
 * replica takes over) loses no acknowledged update: every update the ingress answered 200 is
 * delivered to the agent exactly once, in order per chat, and answered in order (the answer being
 * sent at the crash may be sent twice: see the failover test).
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRedisCluster, type TestRedisCluster, type ClusterNode } from './support/redis-cluster.js';
import { spawnZtm, startTestPlatform, type TestPlatform, type ZtmResult } from './support/platform.js';
import { scenarioAgent } from './support/scenario-agents.js';
import { STARTING_UP_TEXT } from '../services/forwarder/drainer.js';
import { sleep, waitUntil } from './support/wait.js';
import { TenantAdmin } from '../lib/tenants/tenant-admin.js';
import { Activity, IDLE_DEADLINE_KEY } from '../lib/tenants/activity.js';
import { activityKey, endpointKey, startingNoticeKey, wakeLockKey } from '../lib/keys.js';
import { isClusterInfo } from '../lib/redis.js';
import { loadCliConfig } from '../lib/config.js';

const TOKEN = '333333333:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw3';
const CAROL = '333333334:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw4';
const agent = scenarioAgent('reference');
let cluster: TestRedisCluster;
let p: TestPlatform;
let cliDir: string;
let nextUpdateId = 9000;

const message = (chatId: number, text: string, updateId = nextUpdateId++) => ({
  update_id: updateId,
  message: { message_id: updateId, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private' }, from: { id: chatId, is_bot: false, first_name: 'u' }, text },
});
const repliesTo = (chatId: number, token = TOKEN): string[] =>
  p.emulator.sentMessages(token).filter((m) => m.chat_id === chatId && m.text !== STARTING_UP_TEXT).map((m) => agent.said(m.text) ?? `<not an answer: ${m.text.slice(0, 40)}>`);
/** The real ztm against one node, with no cluster setting: it finds out from the node. */
const ztm = (node: ClusterNode, argv: string[], env: Record<string, string> = {}): Promise<ZtmResult> =>
  spawnZtm(argv, { ZTM_REDIS_URL: node.url, DATA_DIR: cliDir, ...env });
const nodeAt = (i: number): ClusterNode => cluster.nodes[i % cluster.nodes.length] as ClusterNode;

/** Posts as Telegram does: a non-200 answer is retried (bounded) until the ingress takes it. */
async function deliverLikeTelegram(tenantId: string, update: unknown): Promise<void> {
  for (let attempt = 0; attempt < 150; attempt++) {
    const res = await p.postUpdate(tenantId, update).catch(() => ({ status: 0 }));
    if (res.status === 200) return;
    await sleep(200);
  }
  throw new Error('the ingress never took the update (30 s)');
}

t.before(async () => {
  cluster = await startRedisCluster();
  cliDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-cluster-cli-'));
  p = await startTestPlatform({
    full: true,
    env: {
      REDIS_URL: cluster.url, REDIS_CLUSTER: 'true', ROUTER_PUBLIC_URL: 'https://bots.example.test', WARM_POOL_TARGET: '0',
      // Room for one update larger than the agent takes (its 413 makes a dead letter at once).
      INGRESS_BODY_LIMIT: String(2 * 1024 * 1024),
      ...(await agent.env()),
    },
  });
  p.emulator.addBot(TOKEN);
  p.emulator.addBot(CAROL);
});
t.teardown(async () => {
  await p?.close();
  await agent.close();
  await cluster?.stop();
  if (cliDir) rmSync(cliDir, { recursive: true, force: true });
});

t.test("ztm's cluster setting: ZTM_REDIS_CLUSTER, else REDIS_CLUSTER, else asked of the node", async (t) => {
  t.equal(loadCliConfig({}).redisCluster, undefined, 'unset: detected');
  t.equal(loadCliConfig({ REDIS_CLUSTER: 'true' }).redisCluster, true);
  t.equal(loadCliConfig({ REDIS_CLUSTER: 'true', ZTM_REDIS_CLUSTER: 'false' }).redisCluster, false, 'ztm\'s own wins');
  t.throws(() => loadCliConfig({ ZTM_REDIS_CLUSTER: 'maybe' }), { code: 'E_CONFIG' }, 'a bad value is a config error');
  t.equal(isClusterInfo('# Cluster\r\ncluster_enabled:0\r\n'), false);
});

t.test('the services run on the cluster', async (t) => {
  t.equal(p.clients.redis.isCluster, true, 'a cluster client from REDIS_CLUSTER=true');
  t.ok(isClusterInfo(await p.clients.redis.info('cluster')), 'the servers are cluster nodes');
  t.equal((await cluster.topology()).filter((n) => n.role === 'master').length, 3);
});

t.test('ztm tenant create / get / list, each against another node', async (t) => {
  const created = await ztm(nodeAt(1), ['tenant', 'create', 'alice', '--bot-token-env', '--json'], { ZTM_BOT_TOKEN: TOKEN });
  t.equal(created.code, 0, `create (stderr: ${created.stderr.trim()})`);
  t.match(JSON.parse(created.stdout), { tenant: { tenant_id: 'alice' }, webhook: { registered: true } });
  const got = await ztm(nodeAt(2), ['tenant', 'get', 'alice', '--json']);
  t.equal(got.code, 0, got.stderr);
  t.match(JSON.parse(got.stdout), { tenant_id: 'alice' });
  const listed = await ztm(nodeAt(4), ['tenant', 'list', '--json']);
  t.equal(listed.code, 0, listed.stderr);
  t.match(JSON.parse(listed.stdout), [{ tenant_id: 'alice' }]);
});

t.test('messages are answered through the ingress', async (t) => {
  const res = await p.postUpdate('alice', message(1, 'hello cluster'));
  t.equal(res.status, 200);
  await waitUntil('the answer', () => repliesTo(1).length >= 1, 60_000);
  t.same(repliesTo(1), ['hello cluster']);
});

t.test('ztm status from any node, a replica too', async (t) => {
  const replicas = (await cluster.topology()).filter((n) => n.role === 'replica').map((n) => n.port);
  for (const node of [nodeAt(0), cluster.nodes.find((n) => replicas.includes(n.port)) as ClusterNode]) {
    const status = await ztm(node, ['status', '--json']);
    t.equal(status.code, 0, `status from ${node.port} (stderr: ${status.stderr.trim()})`);
    const s = JSON.parse(status.stdout) as { queues: Array<{ queue: string }>; tenants_awake: number; dead_letters: number };
    t.same(s.queues.map((q) => q.queue), ['forward', 'wake', 'admin', 'lifecycle']);
    t.equal(s.tenants_awake, 1, 'alice is awake');
  }
  const table = await ztm(nodeAt(5), ['status']);
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, /tenants awake\s+1/);
});

t.test('ztm dead list and dead retry against any node', async (t) => {
  // Larger than the agent accepts (1 MiB): refused with 413, a dead letter at once.
  const big = message(2, 'x'.repeat(1_100_000));
  t.equal((await p.postUpdate('alice', big)).status, 200);
  const id = `alice.2.${big.update_id}`;
  await waitUntil('the dead letter', async () => (await p.platform!.janitor.deadLetters.count()) === 1, 30_000);
  const listed = await ztm(nodeAt(2), ['dead', 'list', '--json']);
  t.equal(listed.code, 0, listed.stderr);
  const [letter] = (JSON.parse(listed.stdout) as { items: Array<{ id: string; reason: string; failed_at: string }> }).items;
  t.match(letter, { id, reason: /413/ });
  const retried = await ztm(nodeAt(5), ['dead', 'retry', id, '--json']);
  t.equal(retried.code, 0, retried.stderr);
  // Delivered again, refused again: back in the store with a later failure time.
  await waitUntil('dead-lettered again after the retry', async () => {
    const again = await p.platform!.janitor.deadLetters.get(id);
    return again !== undefined && again.failed_at > (letter?.failed_at ?? '');
  }, 30_000);
  const status = JSON.parse((await ztm(nodeAt(3), ['status', '--json'])).stdout) as { dead_letters: number };
  t.equal(status.dead_letters, 1);
  // The chat goes on: a normal message after it is answered.
  t.equal((await p.postUpdate('alice', message(2, 'after the big one'))).status, 200);
  await waitUntil('the answer after the dead letter', () => repliesTo(2).includes('after the big one'), 30_000);
});

t.test('ztm tenant delete on the cluster clears every key and the record', async (t) => {
  const created = await ztm(nodeAt(0), ['tenant', 'create', 'carol', '--bot-token-env'], { ZTM_BOT_TOKEN: CAROL });
  t.equal(created.code, 0, created.stderr);
  t.equal((await p.postUpdate('carol', message(7, 'hi carol'))).status, 200);
  await waitUntil('carol answered', () => repliesTo(7, CAROL).length >= 1, 60_000);
  t.ok(await p.clients.redis.exists(endpointKey('carol')), 'carol has an endpoint');
  t.not(await p.clients.redis.zscore(activityKey, 'carol'), null, 'and activity');
  const deleted = await ztm(nodeAt(4), ['tenant', 'delete', 'carol', '--json']);
  t.equal(deleted.code, 0, `delete (stderr: ${deleted.stderr.trim()})`);
  t.match(JSON.parse(deleted.stdout), { deleted: true, steps: ['webhook deleted', /removed/, 'endpoint cache and wake lock cleared', 'record deleted'] });
  t.equal(await p.clients.registry.get('carol'), undefined, 'the record is gone');
  t.equal(await p.clients.redis.exists(endpointKey('carol')), 0);
  t.equal(await p.clients.redis.zscore(activityKey, 'carol'), null);
  t.equal(await p.clients.redis.zscore(IDLE_DEADLINE_KEY, 'carol'), null);
  const gone = await ztm(nodeAt(1), ['tenant', 'get', 'carol', '--json']);
  t.equal(gone.code, 1);
  t.match(JSON.parse(gone.stderr.trim()), { error: { code: 'E_NOT_FOUND' } });
});

t.test('a delete that failed half-way is completed by the next one', async (t) => {
  const redis = p.clients.redis;
  await p.clients.registry.create({ tenant_id: 'dave', bot_token: '333333335:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw5' });
  p.emulator.addBot('333333335:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw5');
  await redis.set(endpointKey('dave'), '127.0.0.1:1');
  await redis.set(wakeLockKey('dave'), 'x');
  await redis.set(startingNoticeKey('dave'), '1');
  await new Activity(redis).touch('dave', 300);
  let removals = 0;
  const admin = new TenantAdmin({
    registry: p.clients.registry, telegram: p.clients.telegram, redis, log: p.logs.logger('delete-test'), webhookSecret: p.webhookSecret,
    lifecycle: { remove: async () => {
      removals++;
      if (removals === 1) throw new Error('pod removal failed');
    } },
  });
  await t.rejects(admin.delete({ tenant_id: 'dave' }), /pod removal failed/);
  t.ok(await p.clients.registry.get('dave'), 'the record stays, so the delete can be run again');
  const done = await admin.delete({ tenant_id: 'dave' });
  t.same(done.steps, ['webhook deleted', 'pod and secret removed', 'endpoint cache and wake lock cleared', 'record deleted']);
  t.equal(removals, 2);
  for (const key of [endpointKey('dave'), wakeLockKey('dave'), startingNoticeKey('dave')]) t.equal(await redis.exists(key), 0, `${key} gone`);
  t.equal(await redis.zscore(activityKey, 'dave'), null);
  t.equal(await redis.zscore(IDLE_DEADLINE_KEY, 'dave'), null);
  t.equal(await p.clients.registry.get('dave'), undefined);
});

t.test('a master killed mid-run: no acknowledged update lost, each delivered once, in order per chat', async (t) => {
  const chats = [201, 202, 203, 204];
  const PER_CHAT = 12;
  const sent = (chat: number) => Array.from({ length: PER_CHAT }, (_, i) => `c${chat}-m${i}`);
  const acked = new Map<number, number>(chats.map((c) => [c, 0]));
  let failover: Promise<{ killed: ClusterNode; promoted: ClusterNode }> | undefined;
  await Promise.all(chats.map(async (chat) => {
    for (const text of sent(chat)) {
      await deliverLikeTelegram('alice', message(chat, text));
      acked.set(chat, (acked.get(chat) ?? 0) + 1);
      // A third of the way in, the master holding the mailboxes dies.
      if (!failover && [...acked.values()].reduce((a, b) => a + b, 0) >= (chats.length * PER_CHAT) / 3) failover = cluster.killMaster();
    }
  }));
  const { killed, promoted } = await (failover as NonNullable<typeof failover>);
  t.not(killed.port, promoted.port, `master ${killed.port} killed, replica ${promoted.port} took over`);
  await waitUntil('every acknowledged update answered', () => chats.every((c) => repliesTo(c).length >= PER_CHAT), 60_000);
  await sleep(500); // nothing more may follow
  // Delivered: the agent got and stored every acknowledged update exactly once, in order.
  const held = await agent.stored(p, 'alice', 'live');
  for (const chat of chats) t.same(held.filter((m) => m.startsWith(`c${chat}-`)), sent(chat), `chat ${chat}: delivered to the agent once each, in order`);
  // Answered: each in order. Sending to Telegram is at-least-once: an answer Telegram took just
  // before the master died, whose completion (popNext) could not be written, is sent again from the
  // outbox (never asked of the agent again). Each such repeat is one kept-answer resend, at most one
  // per chat (only the head in flight at the crash).
  let repeats = 0;
  for (const chat of chats) {
    const answers = repliesTo(chat);
    const distinct = answers.filter((a, i) => a !== answers[i - 1]);
    t.same(distinct, sent(chat), `chat ${chat}: every update answered, in order`);
    t.ok(answers.length - distinct.length <= 1, `chat ${chat}: at most the answer in flight at the crash repeated (${answers.length - distinct.length})`);
    repeats += answers.length - distinct.length;
  }
  t.ok(repeats <= p.logs.find('sent the answer kept from an earlier delivery').length, `each repeat (${repeats}) is a resend of a kept answer`);
  const status = await ztm(promoted, ['status', '--json']);
  t.equal(status.code, 0, `ztm status against the promoted node (stderr: ${status.stderr.trim()})`);
});
