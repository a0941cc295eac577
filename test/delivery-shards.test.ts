/**
 * The sharded delivery layout on a real redis-server: tenants spread over the shards' slots and
 * queues, the bounded dedup (count, age, idle tenants hold none), and the upgrade from the
 * single-slot layout of earlier versions (drain-then-switch: the ingress refuses while the legacy
 * layout has mail, the forwarder drains it; every acknowledged update delivered once, in order).
 */
import t from 'tap';
import { Queue } from 'bullmq';
import { createRedis, closeRedis } from '../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { Mailbox } from '../lib/delivery/mailbox.js';
import { DeliveryLayout, slotOfTag } from '../lib/delivery/shards.js';
import { ShardQueues } from '../lib/delivery/shard-queues.js';
import { mailboxKey, readyKey, scheduledKey, seenKey } from '../lib/keys.js';
import { RUN_JOB_NAME } from '../lib/delivery/drain-contract.js';
import { LegacyGate } from '../services/ingress/legacy-gate.js';
import { LogCapture } from './support/log-capture.js';
import { startRedis } from './support/redis.js';
import { startOutboxHarness, botToken } from './support/outbox-harness.js';
import { ScriptedAgent } from './support/outbox-agent.js';
import { sleep, waitUntil } from './support/wait.js';

const update = (id: number, chat = 1): string => JSON.stringify({ update_id: id, message: { chat: { id: chat }, text: `m${id}` } });
const inner = (tag: string): string => tag.slice(1, -1);

t.test('layout: each shard owns the slots of its range, tenants spread evenly, the queue sits in its shard\'s range', async (t) => {
  for (const n of [1, 3, 16, 24, 64, 256]) {
    const layout = DeliveryLayout.of(n);
    t.equal(layout.count, n);
    layout.shards.forEach((s, i) => {
      const lo = (i * 16_384) / n;
      const hi = ((i + 1) * 16_384) / n;
      const m = slotOfTag(inner(s.tag));
      const q = slotOfTag(inner(s.queue));
      if (m < lo || m >= hi || q < lo || q >= hi) t.fail(`shard ${i} of ${n}: slots ${m}/${q} outside [${lo}, ${hi})`);
      if (s.queue.includes(':')) t.fail('BullMQ refuses ":" in queue names');
    });
    t.equal(new Set(layout.shards.map((s) => s.tag)).size, n, `${n} shards: distinct tags`);
  }
  const layout = DeliveryLayout.of(24);
  t.equal(layout.shardOf('alice'), DeliveryLayout.of(24).shardOf('alice'), 'stable');
  const per = new Array<number>(24).fill(0);
  for (let i = 0; i < 24_000; i++) per[layout.shardOf(`tenant-${i}`).index]! += 1;
  t.ok(Math.min(...per) > 800 && Math.max(...per) < 1200, `24,000 tenants over 24 shards: ${Math.min(...per)}-${Math.max(...per)} each`);
  // redis-cli --cluster create's split over 3 masters: 0-5460, 5461-10922, 10923-16383.
  const perMaster = [0, 0, 0];
  for (const s of layout.shards) for (const tag of [s.tag, s.queue]) perMaster[[5461, 10923, 16384].findIndex((end) => slotOfTag(inner(tag)) < end)]! += 1;
  t.same(perMaster, [16, 16, 16], 'the default 24 shards: 8 mailbox tags and 8 queues on each of 3 masters');
  t.throws(() => DeliveryLayout.of(0), RangeError);
  t.throws(() => DeliveryLayout.of(257), RangeError);
  t.equal(DeliveryLayout.LEGACY.shardOf('x').tag, '{mbox}');
  t.equal(DeliveryLayout.LEGACY.shardOf('x').queue, QUEUES.forward);
});

t.test('mailbox on a real Redis', async (t) => {
  const server = await startRedis();
  const redis = createRedis({ url: server.url });
  const bull = createRedis({ url: server.url, blocking: false });
  const layout = DeliveryLayout.of(24);
  const queues = new ShardQueues(bull, layout);
  t.teardown(async () => {
    await queues.close();
    await closeRedis(redis);
    await closeRedis(bull);
    await server.close();
  });

  t.test('tenants of one batch land in their own shards\' keys, ready lists and queues', async (t) => {
    const mailbox = new Mailbox({ redis, queues, layout });
    const tenants = Array.from({ length: 40 }, (_, i) => `shard-${i}`);
    await Promise.all(tenants.map((tn, i) => mailbox.accept(tn, '1', i + 1, update(i + 1))));
    const used = new Set<number>();
    for (const tn of tenants) {
      const shard = layout.shardOf(tn);
      used.add(shard.index);
      t.equal(await redis.llen(mailboxKey(tn, '1', layout)), 1);
      t.ok(mailboxKey(tn, '1', layout).startsWith(shard.tag), 'key under the shard tag');
      const ready = await redis.lrange(readyKey(shard.tag), 0, -1);
      if (!ready.some((e) => e.startsWith(`${tn}\n1\n`))) t.fail(`${tn}: not on ${shard.tag}'s ready list`);
      const jobs = await queues.of(tn).getJobs(['waiting']);
      if (!jobs.some((j) => j.name === RUN_JOB_NAME)) t.fail(`${tn}: no runner in ${shard.queue}`);
      t.equal(await redis.zscore(scheduledKey(shard.tag), `${tn}\n1`) !== null, true, 'in its shard\'s sweeper index');
    }
    t.ok(used.size >= 14, `40 tenants used ${used.size} of 24 shards`);
    t.equal(await redis.llen(`{forward}:wait`), 0, 'nothing in the legacy queue');
  });

  t.test('dedup: bounded by count (oldest dropped), by age, and gone for an idle tenant', async (t) => {
    const mailbox = new Mailbox({ redis, queues, layout, dedupMax: 3, dedupWindowS: 2 });
    for (let id = 1; id <= 5; id++) t.same(await mailbox.accept('dd', '1', id, update(id)), { duplicate: false });
    const key = seenKey('dd', layout);
    t.same(await redis.zrange(key, 0, -1), ['3', '4', '5'], 'at most dedupMax ids, the newest');
    t.same(await mailbox.accept('dd', '1', 5, update(5)), { duplicate: true }, 'a retry within the window is a duplicate');
    t.same(await mailbox.accept('dd', '1', 1, update(1)), { duplicate: false }, 'an id beyond the count bound is accepted again (at-least-once)');
    const ttl = await redis.pttl(key);
    t.ok(ttl > 0 && ttl <= 2250, `expires within 9/8 of the window (${ttl} ms)`);
    await sleep(2500);
    t.equal(await redis.exists(key), 0, 'an idle tenant holds no dedup memory after 9/8 of the window');
    t.same(await mailbox.accept('dd', '1', 6, update(6)), { duplicate: false });
    // A 2 s window: the steps below have 650-800 ms of slack for a loaded machine.
    await sleep(1200);
    await mailbox.accept('dd', '1', 7, update(7));
    const extended = await redis.pttl(key);
    t.ok(extended > 1600 && extended <= 2250, `a TTL below the window is extended by an accept: id 7 is remembered a window at least (${extended} ms)`);
    await sleep(1200);
    await mailbox.accept('dd', '1', 16, update(16));
    t.same(await redis.zrange(key, 0, -1), ['7', '16'], 'ids older than the window are dropped by an accept of every 16th id');
    t.equal(await redis.llen(mailboxKey('dd', '1', layout)), 9, 'every fresh accept kept (5 + the re-accepted 1 + 6, 7, 16)');
  });

  t.test('the legacy gate refuses accepts while the single-slot layout has mail, and opens once it is drained', async (t) => {
    const logs = new LogCapture();
    await redis.zadd(scheduledKey('{mbox}'), Date.now(), 'old\n1');
    const gate = new LegacyGate(redis, logs.logger('ingress'), 50);
    t.teardown(() => gate.close());
    await gate.ready();
    const accept = gate.wrap(new Mailbox({ redis, queues, layout }));
    await t.rejects(accept.accept('gated', '1', 1, update(1)), { code: 'LEGACY_LAYOUT_PENDING' });
    t.equal(await redis.exists(mailboxKey('gated', '1', layout)), 0, 'nothing written');
    await redis.zrem(scheduledKey('{mbox}'), 'old\n1');
    await waitUntil('gate open', async () => gate.open, 2000);
    t.same(await accept.accept('gated', '1', 1, update(1)), { duplicate: false });
    await redis.zadd(scheduledKey('{mbox}'), Date.now(), 'old\n2');
    await waitUntil('gate closed again (an old ingress wrote there)', async () => !gate.open, 2000);
    await redis.zrem(scheduledKey('{mbox}'), 'old\n2');
  });
});

t.test('upgrade from the single-slot layout: mail accepted by the old layout is drained first, then the new layout takes over; every update once, in chat order', async (t) => {
  const h = await startOutboxHarness();
  const got: string[] = [];
  const agent = await ScriptedAgent.start((req) => {
    got.push(req.message ?? '');
    return { status: 200, body: { response: `ok ${req.message}`, model: 'test' } };
  });
  const legacyQueue = new Queue(QUEUES.forward, { connection: h.clients.bull, prefix: QUEUE_PREFIX });
  t.teardown(async () => {
    await legacyQueue.close();
    await h.close();
    await agent.close();
  });
  const tenants = ['up-a', 'up-b', 'up-c'];
  for (const [i, tn] of tenants.entries()) {
    await h.addTenant(tn, botToken(40 + i));
    await h.setEndpoint(tn, agent.address);
  }
  // What the previous version's ingress left: mail in `{mbox}` with drain jobs on `{forward}`.
  const legacy = new Mailbox({ redis: h.clients.redis, forwardQueue: legacyQueue, layout: DeliveryLayout.LEGACY });
  const text = (tn: string, chat: number, n: number): string => `${tn} ${chat} ${n}`;
  const body = (tn: string, chat: number, id: number, n: number): string => JSON.stringify({
    update_id: id, message: { message_id: id, date: 1, chat: { id: chat, type: 'private' }, from: { id: chat, is_bot: false, first_name: 'u' }, text: text(tn, chat, n) },
  });
  let id = 1000;
  for (const tn of tenants) for (const chat of [1, 2]) for (let n = 0; n < 5; n++) await legacy.accept(tn, String(chat), ++id, body(tn, chat, id, n));
  t.equal(await h.clients.redis.zcard(scheduledKey('{mbox}')), 6, 'six chats with mail in the legacy layout');

  const logs = new LogCapture();
  const gate = new LegacyGate(h.clients.redis, logs.logger('ingress'), 100);
  t.teardown(() => gate.close());
  await gate.ready();
  const ingress = gate.wrap(h.mailbox);
  await t.rejects(ingress.accept('up-a', '1', 5000, body('up-a', 1, 5000, 5)), { code: 'LEGACY_LAYOUT_PENDING' }, 'the new ingress answers 503 meanwhile');

  await h.startForwarder();
  await waitUntil('the legacy layout drained', async () => (await h.clients.redis.zcard(scheduledKey('{mbox}'))) === 0, 30_000);
  await waitUntil('the gate opens', async () => gate.open, 5_000);
  // Telegram's retry of the refused update, and more: now into the sharded layout.
  for (const tn of tenants) for (const chat of [1, 2]) for (let n = 5; n < 10; n++) await ingress.accept(tn, String(chat), ++id, body(tn, chat, id, n));
  await waitUntil('all 60 delivered', async () => got.length >= 60, 30_000);
  await sleep(300);
  t.equal(got.length, 60, 'each update delivered once');
  for (const tn of tenants) {
    for (const chat of [1, 2]) {
      const seq = got.filter((m) => m.startsWith(`${tn} ${chat} `)).map((m) => Number(m.split(' ')[2]));
      t.same(seq, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], `${tn} chat ${chat}: in order across the switch`);
    }
  }
  t.same(await h.clients.redis.keys('{mbox}:q:*'), [], 'no legacy mailbox left');
  t.equal(await h.clients.redis.llen(mailboxKey('up-a', '1')), 0);
});
