/**
 * Sharded delivery on a real 3-master Redis Cluster (test/support/redis-cluster.ts): the delivery
 * commands (mailbox scripts, BullMQ's drain jobs, endpoint reads) spread over the masters, each
 * within ±20 % of a third (counted from every master's INFO commandstats), and every acknowledged
 * update is delivered once and in chat order. The forwarder runs in this process on cluster clients.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { startRedisCluster, type TestRedisCluster } from './support/redis-cluster.js';
import { startOutboxHarness, botToken, type OutboxHarness } from './support/outbox-harness.js';
import { ScriptedAgent } from './support/outbox-agent.js';
import { sleep, waitUntil } from './support/wait.js';
import { Mailbox } from '../lib/delivery/mailbox.js';
import { mailboxKey } from '../lib/keys.js';
import { decodeEnvelope } from '../lib/delivery/update.js';
import { deliveryLayout } from '../lib/delivery/shards.js';

const TENANTS = 240;
const CHATS = 2;
const PER_CHAT = 8;
/** Commands that are the client's or the test's own, not delivery work. */
const ADMIN = /^(cluster|info|ping|config|client|command|hello|readonly|select|quit|script|dbsize|keys|scan|type|slowlog|latency)($|\|)/;

/** Calls per command since the last reset, without the client's and the test's own. */
async function commandCounts(port: number): Promise<Map<string, number>> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    const text = (await r.info('commandstats')) as string;
    const calls = new Map<string, number>();
    for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (!ADMIN.test(m[1] as string)) calls.set(m[1] as string, Number(m[2]));
    return calls;
  } finally {
    r.disconnect();
  }
}

const totalOf = (calls: Map<string, number>): number => [...calls.values()].reduce((a, b) => a + b, 0);
const topOf = (calls: Map<string, number>): string => [...calls].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([c, n]) => `${c} ${n}`).join(', ');

async function resetStats(port: number): Promise<void> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    await r.config('RESETSTAT');
  } finally {
    r.disconnect();
  }
}

let cluster: TestRedisCluster;
let h: OutboxHarness;
let agent: ScriptedAgent;
const got = new Map<string, number[]>();

t.before(async () => {
  cluster = await startRedisCluster();
  h = await startOutboxHarness({ REDIS_URL: cluster.url, REDIS_CLUSTER: 'true' });
  agent = await ScriptedAgent.start((req) => {
    const [tenant, chat, n] = (req.message ?? '').split(' ') as [string, string, string];
    const key = `${tenant} ${chat}`;
    got.set(key, [...(got.get(key) ?? []), Number(n)]);
    return { status: 200, body: { response: `ok ${req.message}`, model: 'test' } };
  });
});
t.teardown(async () => {
  await h?.close();
  await agent?.close();
  await cluster?.stop();
});

t.test('delivery commands spread over the 3 masters, each update once and in chat order', async (t) => {
  const tenants = Array.from({ length: TENANTS }, (_, i) => `cl-${i}`);
  for (const [i, tn] of tenants.entries()) {
    await h.addTenant(tn, botToken(100 + i));
    await h.setEndpoint(tn, agent.address);
  }
  const { forwarder } = await h.startForwarder();
  await Promise.all(forwarder.workers.map((w) => w.waitUntilReady()));
  const masters = (await cluster.topology()).filter((n) => n.role === 'master' && !n.failed);
  t.equal(masters.length, 3, 'three masters');
  await Promise.all(masters.map((m) => resetStats(m.port)));

  let id = 10_000;
  for (let n = 0; n < PER_CHAT; n++) {
    // Each round: one update per chat, accepted concurrently as the ingress batches them.
    await Promise.all(tenants.flatMap((tn) => Array.from({ length: CHATS }, (_, c) => h.send(tn, c + 1, ++id, `${tn} ${c + 1} ${n}`))));
  }
  const total = TENANTS * CHATS * PER_CHAT;
  await waitUntil(`${total} delivered`, async () => [...got.values()].reduce((a, l) => a + l.length, 0) >= total, 120_000);
  await sleep(500);
  const calls = await Promise.all(masters.map((m) => commandCounts(m.port)));
  const counts = calls.map(totalOf);
  const sum = counts.reduce((a, b) => a + b, 0);
  const shares = counts.map((c) => c / sum);
  t.comment(`commands per master: ${counts.join(' / ')} (${shares.map((s) => `${(100 * s).toFixed(1)} %`).join(' / ')}); ${(sum / total).toFixed(1)} per update`);
  // Which commands make a master's share, should it be off.
  for (const [i, c] of calls.entries()) t.comment(`master ${masters[i]?.port}: ${topOf(c)}`);
  for (const [i, s] of shares.entries()) t.ok(s > (1 / 3) * 0.8 && s < (1 / 3) * 1.2, `master ${masters[i]?.port}: ${(100 * s).toFixed(1)} % of the delivery commands (a third ±20 %)`);

  let outOfOrder = 0;
  let repeated = 0;
  for (const tn of tenants) {
    for (let c = 1; c <= CHATS; c++) {
      const seq = got.get(`${tn} ${c}`) ?? [];
      if (new Set(seq).size !== seq.length) repeated++;
      if (seq.join() !== Array.from({ length: PER_CHAT }, (_, n) => n).join()) outOfOrder++;
    }
  }
  t.equal(repeated, 0, 'no update delivered twice');
  t.equal(outOfOrder, 0, `every chat's ${PER_CHAT} updates in order, none missing`);
  t.equal([...got.values()].reduce((a, l) => a + l.length, 0), total, `${total} deliveries for ${total} acknowledged updates`);
});

t.test('DELIVERY_WAIT_REPLICAS=1: an update acknowledged just before its master is SIGKILLed is on the promoted replica', async (t) => {
  const redis = h.clients.redis;
  const waiting = new Mailbox({ redis, queues: h.mailbox.queues, waitReplicas: 1, waitTimeoutMs: 2000 });
  // Tenants of the shards on the master about to die.
  const victim = await cluster.masterFor(`${deliveryLayout().shardOf('wait-0').tag}:x`);
  const tenants: string[] = [];
  for (let i = 0; tenants.length < 20 && i < 2000; i++) {
    const tn = `wait-${i}`;
    if ((await cluster.masterFor(`${deliveryLayout().shardOf(tn).tag}:x`)).port === victim.port) tenants.push(tn);
  }
  const acked: Array<{ tn: string; id: number }> = [];
  let id = 50_000;
  let stop = false;
  const load = Promise.all(tenants.map(async (tn) => {
    while (!stop) {
      const u = ++id;
      try {
        await waiting.accept(tn, '1', u, JSON.stringify({ update_id: u, message: { chat: { id: 1 }, text: 'w' } }));
        acked.push({ tn, id: u });
      } catch {
        await sleep(50); // 503: Telegram would retry; not acknowledged
      }
    }
  }));
  await waitUntil('some acknowledged', async () => acked.length >= 200, 30_000);
  const { promoted } = await cluster.killMaster(victim);
  await sleep(500);
  stop = true;
  await load;
  t.ok(promoted.port !== victim.port, 'a replica took over');
  // Every acknowledged update is in its chat's mailbox or was delivered by the forwarder already.
  let missing = 0;
  for (const tn of tenants) {
    const stored = new Set((await redis.lrange(mailboxKey(tn, '1'), 0, -1)).map((e) => decodeEnvelope(e).updateId));
    const delivered = new Set((got.get(`${tn} 1`) ?? []));
    for (const a of acked.filter((x) => x.tn === tn)) if (!stored.has(a.id) && !delivered.has(a.id)) missing++;
  }
  t.equal(missing, 0, `all ${acked.length} acknowledged updates survived the master's death`);
});
