/**
 * The mailbox's invariants against a real redis-server: whenever a chat's mailbox holds an update,
 * exactly one drain generation is responsible for it and its job exists, or its chat waits on its
 * shard's ready list with a runner whose job exists; races between a drain finishing and an update
 * arriving never strand an update; lost jobs and runners are repaired by the sweeper.
 */
import t from 'tap';
import { Queue, Worker, type Job } from 'bullmq';
import { createRedis, closeRedis, type RedisClient } from '../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { Mailbox, attemptsField, drainJobId } from '../lib/delivery/mailbox.js';
import { attemptsKey, chatLeaseKey, drainKey, mailboxKey, readyKey, runnersKey, slotWaitersKey, tenantActiveKey } from '../lib/keys.js';
import { RUN_JOB_NAME, parseReadyEntry, readyEntry, runJobId, type DrainJob, type ReadyDrain } from '../lib/delivery/drain-contract.js';
import { ShardRunners } from '../services/forwarder/shard-runner.js';
import type { Drainer } from '../services/forwarder/drainer.js';
import { createLogger } from '../lib/logger.js';
import { decodeEnvelope } from '../lib/delivery/update.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { waitUntil } from './support/wait.js';

let server: TestRedis;
let redis: RedisClient;
let bull: RedisClient;
let queue: Queue;
let mailbox: Mailbox;
/** The drain queue of a tenant's shard. */
const q = (tenant: string): Queue => mailbox.queueOf(tenant);

t.before(async () => {
  server = await startRedis();
  redis = createRedis({ url: server.url });
  bull = createRedis({ url: server.url, blocking: true });
  queue = new Queue(QUEUES.forward, { connection: bull, prefix: QUEUE_PREFIX });
  mailbox = new Mailbox({ redis, forwardQueue: queue, leaseMs: 5000 });
});
t.teardown(async () => {
  await queue.close();
  await closeRedis(redis);
  await closeRedis(bull);
  await server.close();
});

const update = (id: number) => JSON.stringify({ update_id: id, message: { chat: { id: 1 }, text: `m${id}` } });

const tagOf = (tenant: string): string => mailbox.layout.shardOf(tenant).tag;

/** Runners of the tenant's shard that are alive and have their run job. */
async function liveRunners(tenant: string): Promise<string[]> {
  const ids = await redis.zrangebyscore(runnersKey(tagOf(tenant)), Date.now(), '+inf');
  const live = await Promise.all(ids.map(async (id) => ((await q(tenant).getJob(runJobId(id))) ? id : undefined)));
  return live.filter((id): id is string => id !== undefined);
}

/**
 * Asserts the invariant for one chat: mail pending ⇒ a responsible generation whose drain job
 * exists, or whose ready entry waits on the shard's ready list with a live runner.
 */
async function responsible(tenant: string, chat: string): Promise<boolean> {
  const pending = await redis.llen(mailboxKey(tenant, chat));
  const gen = await redis.get(drainKey(tenant, chat));
  if (pending === 0) return true;
  if (!gen) return false;
  if ((await q(tenant).getJob(drainJobId(tenant, chat, gen))) !== undefined) return true;
  const listed = (await redis.lrange(readyKey(tagOf(tenant)), 0, -1)).map(parseReadyEntry).some((d) => d?.tenantId === tenant && d.chatId === chat && d.gen === gen);
  return listed && (await liveRunners(tenant)).length > 0;
}

t.test('accept: first update schedules one drain, later ones join it, duplicates are not enqueued', async (t) => {
  t.same(await mailbox.accept('a1', '5', 1, update(1)), { duplicate: false });
  t.same(await mailbox.accept('a1', '5', 2, update(2)), { duplicate: false });
  t.same(await mailbox.accept('a1', '5', 1, update(1)), { duplicate: true });
  t.equal(await redis.llen(mailboxKey('a1', '5')), 2);
  const jobs = await q('a1').getJobs(['waiting', 'delayed', 'active']);
  t.equal(jobs.filter((j) => j.id?.startsWith('a1.5.')).length, 0, 'no drain job of its own: the chat waits on the ready list');
  const gen = (await redis.get(drainKey('a1', '5'))) as string;
  t.same((await redis.lrange(readyKey(tagOf('a1')), 0, -1)).filter((e) => e.startsWith('a1\n')), [readyEntry('a1', '5', gen)], 'listed once');
  t.equal((await liveRunners('a1')).length, 1, 'one runner registered, its run job added');
  t.equal(jobs.filter((j) => j.name === RUN_JOB_NAME).length, 1);
  t.ok(await responsible('a1', '5'));
});

t.test('claim fences: stale generation, busy lease, tenant limit; pop needs the lease', async (t) => {
  const gen = (await redis.get(drainKey('a1', '5'))) as string;
  t.equal(await mailbox.claim('a1', '5', '999999', 'x', 4), 'stale');
  t.equal(await mailbox.claim('a1', '5', gen, 'lease-1', 4), 'ok');
  t.equal(await mailbox.claim('a1', '5', gen, 'lease-2', 4), 'busy');
  await mailbox.accept('a1', '6', 10, update(10));
  const gen6 = (await redis.get(drainKey('a1', '6'))) as string;
  t.equal(await mailbox.claim('a1', '6', gen6, 'lease-3', 1), 'full', 'tenant limit 1 already used by chat 5');
  const head = (await mailbox.head('a1', '5')) as string;
  t.equal(decodeEnvelope(head).updateId, 1);
  t.same(await mailbox.popNext('a1', '5', head, 1, 'not-my-lease', gen), { kind: 'lost-lease' });
  t.equal((await mailbox.popNext('a1', '5', head, 1, 'lease-1', gen)).kind, 'next');
  t.equal(decodeEnvelope((await mailbox.head('a1', '5')) as string).updateId, 2);
  t.equal(await mailbox.finish('a1', '5', gen), false, 'not empty: keep draining');
  await redis.lpop(mailboxKey('a1', '5')); // as if the last update was delivered
  t.equal(await mailbox.finish('a1', '5', gen), true);
  await mailbox.release('a1', '5', 'lease-1');
  t.equal(await redis.get(drainKey('a1', '5')), null);
});

t.test('tenant limit: a holder whose lease ran out (its drainer died) stops counting', async (t) => {
  const short = new Mailbox({ redis, forwardQueue: queue, leaseMs: 300 });
  await short.accept('lim', '1', 1, update(1));
  await short.accept('lim', '2', 2, update(2));
  const gen1 = (await redis.get(drainKey('lim', '1'))) as string;
  const gen2 = (await redis.get(drainKey('lim', '2'))) as string;
  t.equal(await short.claim('lim', '1', gen1, 'dies', 1), 'ok');
  t.equal(await short.claim('lim', '2', gen2, 'waits', 1), 'full', 'the live holder counts');
  await new Promise((r) => setTimeout(r, 400)); // 'dies' never renews nor releases
  t.equal(await short.claim('lim', '2', gen2, 'waits', 1), 'ok', 'its expired lease is trimmed when the tenant is at the limit');
  t.same(await redis.zrange(tenantActiveKey('lim', short.layout), 0, -1), ['waits'], 'only the live holder is left');
});

t.test('an accept opening a chat takes its lease for the runner, within the tenant limit; under it, no claim is needed', async (t) => {
  // A backlog bound no other subtest's ready entries on this shard reach (that bound: the next subtest).
  const opening = new Mailbox({ redis, forwardQueue: queue, leaseMs: 5000, openingLeaseLimit: 2, runnerBacklog: 1000 });
  await opening.accept('ol', '1', 1, update(1));
  await opening.accept('ol', '1', 2, update(2)); // joins chat 1's generation: no second lease
  await opening.accept('ol', '2', 3, update(3));
  await opening.accept('ol', '3', 4, update(4)); // the tenant holds 2 leases, its limit: none
  const entries = (await redis.lrange(readyKey(tagOf('ol')), 0, -1)).filter((e) => e.startsWith('ol\n')).map(parseReadyEntry) as ReadyDrain[];
  t.same(entries.map((e) => e.chatId), ['1', '2', '3'], 'each opening listed once');
  const [e1, e2, e3] = entries as [ReadyDrain, ReadyDrain, ReadyDrain];
  const token1 = e1.leaseToken as string;
  t.ok(token1 && e2.leaseToken, 'the first two openings carry a lease token');
  t.equal(e3.leaseToken, undefined, 'the third (tenant at its limit) none: its runner claims');
  t.not(token1, e2.leaseToken, 'tokens are distinct');
  t.equal(await redis.get(chatLeaseKey('ol', '1')), token1, 'the chat lease is held by the token');
  t.ok(Number(await redis.pttl(chatLeaseKey('ol', '1'))) > 4000, 'for the lease time');
  t.same((await redis.zrange(tenantActiveKey('ol'), 0, -1)).sort(), [token1, e2.leaseToken].sort(), 'both count against the tenant limit');
  const activeTtl = Number(await redis.pttl(tenantActiveKey('ol')));
  t.ok(activeTtl > 5000 && activeTtl <= 15_000, `the holders' set outlives the newest lease (${activeTtl} ms, three leases at most)`);
  t.equal(await redis.get(chatLeaseKey('ol', '3')), null);

  t.equal(await opening.claim('ol', '1', e1.gen, 'another-drainer', 2), 'busy', 'nobody else can claim the chat');
  t.equal(await opening.claim('ol', '3', e3.gen, 'third', 2), 'full', 'chat 3 waits for a slot');
  const read = await opening.heldHead('ol', '1', token1, 3000);
  t.equal(decodeEnvelope(read?.head as string).updateId, 1, 'the head read under the lease');
  t.equal(read?.outbox, undefined);
  t.equal(await opening.heldHead('ol', '1', 'another-drainer', 3000), undefined, 'not under a lease another token holds');
  t.equal(await opening.heldHead('ol', '1', token1, 5000), undefined, 'nor one with less left than asked (Redis\'s clock decides)');
  const opened = await opening.claimOpened('ol', '1', e1.gen, token1, 2);
  t.same([opened.result, opened.head], ['ok', read?.head], 'claimOpened: the held read while the lease is fresh');
  t.ok(Number(await redis.pttl(chatLeaseKey('ol', '1'))) < 5000, 'which leaves the lease as it is');
  await redis.pexpire(chatLeaseKey('ol', '1'), 1000); // as if the runner came late
  t.equal(await opening.heldHead('ol', '1', token1, 3000), undefined, 'late: the runner claims instead');
  t.equal(await opening.claim('ol', '1', e1.gen, token1, 2), 'ok', 'with the token, while the lease lasts');
  t.ok(Number(await redis.pttl(chatLeaseKey('ol', '1'))) > 4000, 'which renews it');
  await redis.pexpire(chatLeaseKey('ol', '1'), 1000);
  const late = await opening.claimOpened('ol', '1', e1.gen, token1, 2);
  t.same([late.result, late.head], ['ok', read?.head], 'claimOpened late: claimed with the token, the head read');
  t.ok(Number(await redis.pttl(chatLeaseKey('ol', '1'))) > 4000, 'and the lease renewed');
  t.equal(await redis.zcard(tenantActiveKey('ol')), 2, 'still two holders at the limit: the token is not counted twice');

  const p1 = await opening.popNext('ol', '1', read?.head as string, 1, token1, e1.gen);
  t.equal(p1.kind, 'next');
  const p2 = await opening.popNext('ol', '1', (p1 as { head: string }).head, 2, token1, e1.gen);
  t.same(p2, { kind: 'drained' }, 'drained with the token: lease, slot and generation given up');
  t.equal(await redis.get(chatLeaseKey('ol', '1')), null);
  t.equal(await redis.get(drainKey('ol', '1')), null);
  t.same(await redis.zrange(tenantActiveKey('ol'), 0, -1), [e2.leaseToken]);

  // A lease left by an earlier holder of the chat (a drain of an old generation, still running): none taken.
  await redis.set(chatLeaseKey('ol', '9'), 'old-holder', 'PX', 5000);
  await opening.accept('ol', '9', 10, update(10));
  const e9 = (await redis.lrange(readyKey(tagOf('ol')), 0, -1)).map(parseReadyEntry).find((d) => d?.chatId === '9');
  t.ok(e9 && e9.leaseToken === undefined, 'the opening takes no lease over another holder');
  t.equal(await redis.get(chatLeaseKey('ol', '9')), 'old-holder');
});

t.test('an opening behind a ready-list backlog takes no lease (its slot would be held while it waits)', async (t) => {
  const waiting = await redis.llen(readyKey(tagOf('bl')));
  const opening = new Mailbox({ redis, forwardQueue: queue, leaseMs: 5000, openingLeaseLimit: 100, runnerBacklog: waiting + 2 });
  for (let c = 1; c <= 4; c++) await opening.accept('bl', String(c), c, update(c));
  const entries = (await redis.lrange(readyKey(tagOf('bl')), 0, -1)).map(parseReadyEntry).filter((d) => d?.tenantId === 'bl');
  t.same(entries.map((d) => Boolean(d?.leaseToken)), [true, true, false, false], 'two chats ahead: the rest are claimed by their runners');
  t.equal(await redis.zcard(tenantActiveKey('bl')), 2);
});

t.test('ready entries: with and without an opening lease token; anything else is not one', async (t) => {
  const token = `o${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}.3`;
  t.same(parseReadyEntry(readyEntry('t1', '-5', '12')), { tenantId: 't1', chatId: '-5', gen: '12' });
  t.same(parseReadyEntry(readyEntry('t1', '5', '12', token)), { tenantId: 't1', chatId: '5', gen: '12', leaseToken: token });
  for (const bad of ['t1\n5', `t1\n5\n12\nnot-a-token`, `t1\n5\nx\n${token}`, `t1\n5\n12\n${token}\nmore`, `t1\n5\n12\n`]) {
    t.equal(parseReadyEntry(bad), undefined, JSON.stringify(bad));
  }
});

t.test('hand-off passes responsibility to a new job; the old generation is stale', async (t) => {
  await mailbox.accept('a2', '7', 1, update(1));
  const gen = (await redis.get(drainKey('a2', '7'))) as string;
  const next = await mailbox.handOff('a2', '7', gen);
  t.ok(next && next !== gen);
  t.equal(await mailbox.claim('a2', '7', gen, 'l', 4), 'stale');
  t.ok(await q('a2').getJob(drainJobId('a2', '7', next as string)));
  t.equal(await mailbox.handOff('a2', '7', gen), undefined, 'a stale generation cannot hand off');
});

t.test('the sweeper gives a drain job to a chat whose runner died with it', async (t) => {
  await mailbox.accept('a3', '8', 1, update(1));
  const gen = (await redis.get(drainKey('a3', '8'))) as string;
  // A runner took the chat from the ready list and was killed (its job and registration gone).
  t.equal(await redis.lrem(readyKey(tagOf('a3')), 0, readyEntry('a3', '8', gen)), 1);
  for (const id of await liveRunners('a3')) await (await q('a3').getJob(runJobId(id)))?.remove();
  await redis.del(runnersKey(tagOf('a3')));
  t.notOk(await responsible('a3', '8'), 'stranded after the simulated crash');
  const r = await mailbox.sweep(0);
  t.ok(r.repaired >= 1);
  t.ok(await responsible('a3', '8'), 'responsible again');
  t.same(await mailbox.accept('a3', '8', 1, update(1)), { duplicate: true }, 'a Telegram retry after the crash stays deduplicated');
});

t.test('finish racing accept, 400 times: never a pending update without a responsible job', async (t) => {
  let stranded = 0;
  for (let i = 0; i < 400; i++) {
    const chat = String(1000 + i);
    await mailbox.accept('race', chat, 2 * i + 1, update(2 * i + 1));
    const gen = (await redis.get(drainKey('race', chat))) as string;
    t.equal(await mailbox.claim('race', chat, gen, 'L', 1000), 'ok');
    await redis.lpop(mailboxKey('race', chat)); // the drain delivered the only update
    // The drainer sees an empty mailbox and finishes while the next update arrives.
    const ops = [() => mailbox.finish('race', chat, gen), () => mailbox.accept('race', chat, 2 * i + 2, update(2 * i + 2))];
    if (i % 2) ops.reverse();
    await Promise.all(ops.map((op) => op()));
    await mailbox.release('race', chat, 'L');
    if (!(await responsible('race', chat))) stranded++;
  }
  t.equal(stranded, 0);
});

t.test('claimHead returns the head; popNext pops, returns the next head, then ends the drain and releases the lease', async (t) => {
  await mailbox.accept('pn', '1', 1, update(1));
  await mailbox.accept('pn', '1', 2, update(2));
  const gen = (await redis.get(drainKey('pn', '1'))) as string;
  const claim = await mailbox.claimHead('pn', '1', gen, 'L', 4);
  t.equal(claim.result, 'ok');
  t.equal(decodeEnvelope(claim.head as string).updateId, 1);
  t.same(await mailbox.claimHead('pn', '1', gen, 'L2', 4), { result: 'busy', head: null }, 'no head without the lease');
  await redis.hset(attemptsKey('pn'), attemptsField('pn', '1', 1), 3);
  t.same(await mailbox.popNext('pn', '1', claim.head as string, 1, 'not-mine', gen), { kind: 'lost-lease' });
  const first = await mailbox.popNext('pn', '1', claim.head as string, 1, 'L', gen);
  t.equal(first.kind, 'next');
  const next = (first as { head: string }).head;
  t.equal(decodeEnvelope(next).updateId, 2);
  t.equal(await redis.hget(attemptsKey('pn'), attemptsField('pn', '1', 1)), null, 'attempt counter of the popped update cleared');
  t.same(await mailbox.popNext('pn', '1', claim.head as string, 1, 'L', gen), { kind: 'moved' }, 'popping an envelope that is no longer the head does nothing');
  t.same(await mailbox.popNext('pn', '1', next, 2, 'L', gen), { kind: 'drained' });
  t.equal(await redis.get(drainKey('pn', '1')), null, 'generation gave up responsibility');
  t.equal(await redis.exists(chatLeaseKey('pn', '1')), 0, 'lease released');
  t.equal(await mailbox.claim('pn', '2', 'x', 'L3', 1), 'stale');
  await mailbox.accept('pn', '2', 3, update(3));
  const gen2 = (await redis.get(drainKey('pn', '2'))) as string;
  t.equal(await mailbox.claim('pn', '2', gen2, 'L3', 1), 'ok', 'the tenant slot of the ended drain is free again (limit 1)');
  await mailbox.release('pn', '2', 'L3');
});

t.test('a drain refused for the tenant limit gets the next free slot: release and popNext promote the oldest waiter', async (t) => {
  const delayedDrain = async (chat: string, id: number): Promise<string> => {
    await mailbox.accept('sw', chat, id, update(id));
    const gen = (await redis.get(drainKey('sw', chat))) as string;
    const jobId = drainJobId('sw', chat, gen);
    // As the drainer leaves it after a 'full' claim: delayed, here far longer than the test waits.
    await (await q('sw').getJob(jobId))?.remove();
    await q('sw').add('drain', { t: 'sw', c: chat }, { jobId, delay: 600_000 });
    return gen;
  };
  const stateOf = async (chat: string, gen: string) => (await q('sw').getJob(drainJobId('sw', chat, gen)))?.getState();
  await mailbox.accept('sw', '1', 1, update(1));
  const gen1 = (await redis.get(drainKey('sw', '1'))) as string;
  const first = await mailbox.claimHead('sw', '1', gen1, 'A', 1);
  t.equal(first.result, 'ok');
  const gen2 = await delayedDrain('2', 2);
  const gen3 = await delayedDrain('3', 3);
  t.equal((await mailbox.claimHead('sw', '2', gen2, 'B', 1)).result, 'full');
  t.equal((await mailbox.claimHead('sw', '3', gen3, 'C', 1)).result, 'full');
  t.same(await redis.zrange(slotWaitersKey('sw'), 0, -1), [drainJobId('sw', '2', gen2), drainJobId('sw', '3', gen3)], 'waiters queued oldest first');

  await mailbox.release('sw', '1', 'A');
  await waitUntil('chat 2 promoted', async () => (await stateOf('2', gen2)) === 'waiting', 5_000);
  t.equal(await stateOf('3', gen3), 'delayed', 'one slot freed: one waiter woken');
  const second = await mailbox.claimHead('sw', '2', gen2, 'B', 1);
  t.equal(second.result, 'ok', 'the woken drain gets the slot');
  t.same(await redis.zrange(slotWaitersKey('sw'), 0, -1), [drainJobId('sw', '3', gen3)]);

  t.same(await mailbox.popNext('sw', '2', second.head as string, 2, 'B', gen2), { kind: 'drained' });
  await waitUntil('chat 3 promoted', async () => (await stateOf('3', gen3)) === 'waiting', 5_000);
  t.equal((await mailbox.claimHead('sw', '3', gen3, 'C', 1)).result, 'ok', 'a drain that ends hands its slot on too');
  await mailbox.release('sw', '3', 'C');
});

t.test('popNext ending a drain racing accept, 400 times: never a pending update without a responsible job', async (t) => {
  let stranded = 0;
  for (let i = 0; i < 400; i++) {
    const chat = String(5000 + i);
    await mailbox.accept('race2', chat, 2 * i + 1, update(2 * i + 1));
    const gen = (await redis.get(drainKey('race2', chat))) as string;
    const claim = await mailbox.claimHead('race2', chat, gen, 'L', 1000);
    const ops = [
      () => mailbox.popNext('race2', chat, claim.head as string, 2 * i + 1, 'L', gen),
      () => mailbox.accept('race2', chat, 2 * i + 2, update(2 * i + 2)),
    ];
    if (i % 2) ops.reverse();
    const [a, b] = await Promise.all(ops.map((op) => op()));
    const popped = (i % 2 ? b : a) as Awaited<ReturnType<Mailbox['popNext']>>;
    if (popped.kind === 'next') await mailbox.release('race2', chat, 'L');
    if (!(await responsible('race2', chat))) stranded++;
  }
  t.equal(stranded, 0);
});

t.test('with opening leases: popNext ending a drain racing accept, 300 times: never stranded, no slot without its lease', async (t) => {
  const opening = new Mailbox({ redis, forwardQueue: queue, leaseMs: 60_000, openingLeaseLimit: 10_000, runnerBacklog: 100_000 });
  let stranded = 0;
  let underOpeningLease = 0;
  for (let i = 0; i < 300; i++) {
    const chat = String(7000 + i);
    await opening.accept('race3', chat, 2 * i + 1, update(2 * i + 1));
    const gen = (await redis.get(drainKey('race3', chat))) as string;
    const token = (await redis.get(chatLeaseKey('race3', chat))) as string;
    const read = await opening.heldHead('race3', chat, token, 1000);
    if (read) underOpeningLease++;
    const ops = [
      () => opening.popNext('race3', chat, read?.head as string, 2 * i + 1, token, gen),
      () => opening.accept('race3', chat, 2 * i + 2, update(2 * i + 2)),
    ];
    if (i % 2) ops.reverse();
    const [a, b] = await Promise.all(ops.map((op) => op()));
    const popped = (i % 2 ? b : a) as Awaited<ReturnType<Mailbox['popNext']>>;
    if (popped.kind === 'next') await opening.release('race3', chat, token);
    if (!(await responsible('race3', chat))) stranded++;
  }
  t.equal(underOpeningLease, 300, 'every drain ran under the lease its accept took');
  t.equal(stranded, 0);
  // Each slot left belongs to a live lease: a generation the racing accept opened, waiting for its runner.
  const slots = await redis.zrange(tenantActiveKey('race3'), 0, -1);
  const leases = await Promise.all(Array.from({ length: 300 }, (_, i) => redis.get(chatLeaseKey('race3', String(7000 + i)))));
  t.same(slots.sort(), leases.filter((l): l is string => l !== null).sort(), 'slots and live leases match one to one');
});

t.test('a real worker with its shard runners draining while 10 chats receive 1000 updates: all delivered once, in order', async (t) => {
  const delivered = new Map<string, number[]>();
  let drains = 0;
  const runners = new ShardRunners({ log: createLogger({ service: 'test', level: 'silent' }), connect: () => bull.duplicate(), slots: 4, idleMs: 500 });
  // The drainer's part the runners call: the same loop as a drain job's, for the chat it took.
  const drainer = { drainReady: (d: DrainJob) => drainChat(d.tenantId, d.chatId, d.gen, `r-${++drains}`) } as unknown as Drainer;
  const worker = new Worker(q('live').name, async (job: Job) => {
    if (job.name === RUN_JOB_NAME) return runners.run(job, mailbox, drainer);
    const { t: tenant, c: chat } = job.data as { t: string; c: string };
    return drainChat(tenant, chat, String(job.id).split('.').pop() as string, `w-${job.id}`);
  }, { connection: bull, prefix: QUEUE_PREFIX, concurrency: 10 });
  t.teardown(async () => {
    runners.stop();
    await worker.close();
    runners.close();
  });
  async function drainChat(tenant: string, chat: string, gen: string, lease: string): Promise<string> {
    if (tenant !== 'live') return 'other';
    // The drainer's loop: claimHead, then popNext until it ends the drain.
    const claim = await mailbox.claimHead(tenant, chat, gen, lease, 100);
    if (claim.result !== 'ok') return claim.result;
    let head = claim.head;
    let ended = false;
    try {
      for (;;) {
        if (head === null) {
          if (await mailbox.finish(tenant, chat, gen)) return 'drained';
          head = await mailbox.head(tenant, chat);
          continue;
        }
        const { updateId } = decodeEnvelope(head);
        const list = delivered.get(chat) ?? [];
        list.push(updateId);
        delivered.set(chat, list);
        const popped = await mailbox.popNext(tenant, chat, head, updateId, lease, gen);
        if (popped.kind === 'lost-lease') throw new Error('lease lost');
        if (popped.kind === 'drained') {
          ended = true;
          return 'drained';
        }
        head = popped.kind === 'next' ? popped.head : await mailbox.head(tenant, chat);
      }
    } finally {
      if (!ended) await mailbox.release(tenant, chat, lease);
    }
  }
  let id = 0;
  await Promise.all(Array.from({ length: 10 }, async (_, c) => {
    for (let i = 0; i < 100; i++) {
      await mailbox.accept('live', String(c), ++id * 10 + c, update(id));
      if (i % 7 === 0) await new Promise((r) => setTimeout(r, Math.random() * 3));
    }
  }));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && [...delivered.values()].reduce((n, l) => n + l.length, 0) < 1000) await new Promise((r) => setTimeout(r, 50));
  for (let c = 0; c < 10; c++) {
    const got = delivered.get(String(c)) ?? [];
    t.equal(got.length, 100, `chat ${c}: every update once`);
    t.same(got, [...got].sort((a, b) => a - b), `chat ${c}: in update_id order`);
    t.equal(await redis.llen(mailboxKey('live', String(c))), 0);
  }
});
