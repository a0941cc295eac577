/**
 * Shard runners against a real redis-server and real BullMQ workers: when the accept script
 * registers runners, how a runner serves its ready list and ends, the successor it leaves when
 * chats wait, a registration whose job was lost, and a runner closing with a chat in hand.
 */
import t from 'tap';
import { Worker, type Job } from 'bullmq';
import { createRedis, closeRedis, type RedisClient } from '../lib/redis.js';
import { QUEUE_PREFIX } from '../lib/queues.js';
import { Mailbox } from '../lib/delivery/mailbox.js';
import { DeliveryLayout } from '../lib/delivery/shards.js';
import { ShardQueues } from '../lib/delivery/shard-queues.js';
import { readyKey, runnersKey } from '../lib/keys.js';
import { RUN_JOB_NAME, readyEntry, runJobId, type DrainJob } from '../lib/delivery/drain-contract.js';
import { ShardRunners, type ShardRunnersOptions } from '../services/forwarder/shard-runner.js';
import type { Drainer } from '../services/forwarder/drainer.js';
import { createLogger } from '../lib/logger.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { sleep, waitUntil } from './support/wait.js';

let server: TestRedis;
let redis: RedisClient;
let bull: RedisClient;
let queues: ShardQueues;
const layout = DeliveryLayout.of(1);
const shard = layout.shards[0]!;
const log = createLogger({ service: 'test', level: 'silent' });

t.before(async () => {
  server = await startRedis();
  redis = createRedis({ url: server.url });
  bull = createRedis({ url: server.url, blocking: true });
  queues = new ShardQueues(bull, layout);
});
t.teardown(async () => {
  await queues.close();
  await closeRedis(redis);
  await closeRedis(bull);
  await server.close();
});

const update = (id: number): string => JSON.stringify({ update_id: id, message: { chat: { id: 1 }, text: `m${id}` } });
const runJobs = async (): Promise<string[]> => (await queues.forShard(shard).getJobs(['waiting', 'active', 'delayed'])).filter((j) => j.name === RUN_JOB_NAME).map((j) => j.id as string).sort();
const liveRunners = async (): Promise<string[]> => redis.zrangebyscore(runnersKey(shard.tag), Date.now(), '+inf');
async function reset(): Promise<void> {
  await queues.forShard(shard).obliterate({ force: true });
  await redis.flushall();
}

/** A worker over the shard's queue whose run jobs `runners` serve, closed (runners first) with the subtest. */
function serveRunJobs(t: { teardown(fn: () => unknown): void }, mailbox: Mailbox, drainer: Drainer, options: Omit<ShardRunnersOptions, 'log' | 'connect'>, beforeClose?: () => void): ShardRunners {
  const runners = new ShardRunners({ log, connect: () => bull.duplicate(), ...options });
  const worker = new Worker(shard.queue, (job: Job) => runners.run(job, mailbox, drainer), { connection: bull, prefix: QUEUE_PREFIX, concurrency: 4 });
  t.teardown(async () => {
    beforeClose?.();
    runners.stop();
    await worker.close();
    runners.close();
  });
  return runners;
}

t.test('the accept registers one runner for a shard, another only when the ready list outgrows the live ones', async (t) => {
  await reset();
  const mailbox = new Mailbox({ redis, queues, layout, runnerBacklog: 3, maxRunners: 2 });
  await mailbox.accept('a', '1', 1, update(1));
  t.same(await liveRunners(), ['r2'], 'one runner (ids share the generation counter)');
  t.same(await runJobs(), [runJobId('r2')], 'and its run job');
  await mailbox.accept('a', '1', 2, update(2));
  for (let c = 2; c <= 3; c++) await mailbox.accept('a', String(c), 10 + c, update(10 + c));
  t.equal(await redis.llen(readyKey(shard.tag)), 3, 'three chats wait (a later update of chat 1 joins its drain)');
  t.equal((await liveRunners()).length, 1, 'not more than 3 per runner: still one');
  await mailbox.accept('a', '4', 20, update(20));
  t.equal((await liveRunners()).length, 2, 'the fourth outgrows it: a second runner');
  for (let c = 5; c <= 12; c++) await mailbox.accept('a', String(c), 20 + c, update(20 + c));
  t.equal((await liveRunners()).length, 2, 'never more than maxRunners');
  t.equal((await runJobs()).length, 2);
});

t.test('a registration whose job was lost expires, and the next opening registers another', async (t) => {
  await reset();
  // A lease long enough for the five round trips before the first check on a loaded machine.
  const mailbox = new Mailbox({ redis, queues, layout, runnerTtlMs: 1_000 });
  await mailbox.accept('b', '1', 1, update(1));
  const [first] = await liveRunners();
  await (await queues.forShard(shard).getJob(runJobId(first!)))?.remove(); // as if the ingress died before queue.add
  await mailbox.accept('b', '2', 2, update(2));
  t.same(await liveRunners(), [first], 'within its lease the registration stands');
  await sleep(1_100);
  await mailbox.accept('b', '3', 3, update(3));
  const now = await liveRunners();
  t.equal(now.length, 1);
  t.not(now[0], first, 'a new runner once the lease expired');
  t.same(await runJobs(), [runJobId(now[0]!)]);
  t.same(await mailbox.accept('b', '3', 3, update(3)), { duplicate: true }, 'a retry is still a duplicate');
});

t.test('a runner drains what is ready, ends when idle, and hands waiting chats to a successor', async (t) => {
  await reset();
  const mailbox = new Mailbox({ redis, queues, layout });
  const drained: DrainJob[] = [];
  let hold: (() => void) | undefined;
  const drainer = {
    drainReady: async (d: DrainJob) => {
      drained.push(d);
      if (d.chatId === '700') await new Promise<void>((resolve) => { hold = resolve; });
      return 'drained';
    },
  } as unknown as Drainer;
  serveRunJobs(t, mailbox, drainer, { slots: 2, idleMs: 300, maxRunMs: 60_000 });
  for (let c = 1; c <= 5; c++) await mailbox.accept('c', String(c), c, update(c));
  await waitUntil('five chats drained', async () => drained.length === 5, 5_000);
  t.same(drained.map((d) => d.chatId).sort(), ['1', '2', '3', '4', '5'], 'each ready chat drained once');
  t.equal(await redis.llen(readyKey(shard.tag)), 0);
  await waitUntil('the idle runner ended', async () => (await liveRunners()).length === 0 && (await runJobs()).length === 0, 5_000);

  // A successor: a runner ending while a chat waits and no other runner is alive registers one.
  await redis.rpush(readyKey(shard.tag), readyEntry('c', '9', '77'));
  const successor = await mailbox.runners.exit(shard, 'r-gone');
  t.ok(successor, 'a successor registered');
  t.same(await runJobs(), [runJobId(successor!)], 'and its run job added');
  await waitUntil('the successor drained the waiting chat', async () => drained.some((d) => d.chatId === '9' && d.gen === '77'), 5_000);
  t.equal(await mailbox.runners.exit(shard, 'r-other'), undefined, 'nothing waits: no successor');

  // A slow drain holds one slot; the runner's other slot keeps serving.
  await mailbox.accept('c', '700', 100, update(100));
  await waitUntil('slow chat taken', async () => hold !== undefined, 5_000);
  await mailbox.accept('c', '701', 101, update(101));
  await waitUntil('fast chat drained beside it', async () => drained.some((d) => d.chatId === '701'), 5_000);
  hold?.();
});

t.test('a runner closing with a chat in hand puts it back on the ready list', async (t) => {
  await reset();
  const mailbox = new Mailbox({ redis, queues, layout });
  const runners = new ShardRunners({ log, connect: () => bull.duplicate(), slots: 1, idleMs: 5_000 });
  let taken = 0;
  const drainer = { drainReady: async () => { taken++; return 'drained'; } } as unknown as Drainer;
  await mailbox.accept('d', '1', 1, update(1)); // registers a runner; its job is processed below
  const job = (await queues.forShard(shard).getJobs(['waiting'])).find((j) => j.name === RUN_JOB_NAME)!;
  const running = runners.run(job, mailbox, drainer);
  await waitUntil('first chat drained', async () => taken === 1, 5_000);
  // The runner waits in BLPOP; it is told to stop, then a chat arrives before its wait ends.
  runners.stop();
  await redis.rpush(readyKey(shard.tag), readyEntry('d', '2', '50'));
  t.equal(await running, 'served 1', 'the runner ended without draining the late chat');
  t.same(await redis.lrange(readyKey(shard.tag), 0, -1), [readyEntry('d', '2', '50')], 'the late chat is back on the list');
  t.equal(taken, 1);
  const others = (await runJobs()).filter((id) => id !== job.id);
  t.equal(others.length, 1, 'and a successor is there to take it');
  runners.close();
});

t.test('malformed run jobs and ready entries are dropped with an error, never half-processed', async (t) => {
  await reset();
  const mailbox = new Mailbox({ redis, queues, layout });
  const runners = new ShardRunners({ log, connect: () => bull.duplicate(), slots: 1, idleMs: 200 });
  t.teardown(() => runners.close());
  const drainer = { drainReady: async () => t.fail('no drain for a malformed entry') } as unknown as Drainer;
  const bad = await queues.forShard(shard).add(RUN_JOB_NAME, {}, { jobId: 'run.not-a-runner' });
  t.equal(await runners.run(bad, mailbox, drainer), 'malformed');
  await redis.rpush(readyKey(shard.tag), 'only-one-field', 'a\nb\nc\nd');
  const good = await queues.forShard(shard).add(RUN_JOB_NAME, {}, { jobId: runJobId('r1') });
  t.equal(await runners.run(good, mailbox, drainer), 'served 0');
  t.equal(await redis.llen(readyKey(shard.tag)), 0, 'both taken off and dropped');
  t.throws(() => new ShardRunners({ log, connect: () => bull.duplicate(), slots: 0 }), TypeError);
});

t.test('all runners of a process together hold at most maxDrains drains', async (t) => {
  await reset();
  const mailbox = new Mailbox({ redis, queues, layout, runnerBacklog: 1, maxRunners: 3 });
  let now = 0;
  let peak = 0;
  let done = 0;
  const drainer = {
    drainReady: async () => {
      peak = Math.max(peak, ++now);
      await sleep(30);
      now--;
      done++;
      return 'drained';
    },
  } as unknown as Drainer;
  const runners = serveRunJobs(t, mailbox, drainer, { slots: 4, maxDrains: 2, idleMs: 300 });
  for (let c = 1; c <= 12; c++) await mailbox.accept('e', String(c), c, update(c));
  t.ok((await liveRunners()).length >= 2, 'the backlog registered more than one runner');
  await waitUntil('twelve chats drained', async () => done === 12, 10_000);
  t.equal(peak, 2, 'never more than two drains at once, over every runner');
  t.equal(runners.inFlight, 0);
});

t.test('runners a burst registered end once the burst is served; the last one stays until idle', async (t) => {
  await reset();
  const mailbox = new Mailbox({ redis, queues, layout, runnerBacklog: 1, maxRunners: 3 });
  let done = 0;
  const drainer = { drainReady: async () => { done++; return 'drained'; } } as unknown as Drainer;
  serveRunJobs(t, mailbox, drainer, { slots: 2, idleMs: 8_000 });
  for (let c = 1; c <= 6; c++) await mailbox.accept('f', String(c), c, update(c));
  t.equal((await liveRunners()).length, 3, 'the burst registered three runners');
  await waitUntil('burst served', async () => done === 6, 5_000);
  await waitUntil('surplus runners ended', async () => (await liveRunners()).length === 1, 6_000);
  await sleep(1_000);
  t.equal((await liveRunners()).length, 1, 'one runner stays for the next chats');
  await mailbox.accept('f', '9', 9, update(9));
  await waitUntil('the staying runner takes the next chat', async () => done === 7, 3_000);
  t.equal((await runJobs()).length, 1, 'no new run job for it');
});

t.test('a runner with every slot busy is not counted on: the next opening gets another runner', async (t) => {
  await reset();
  const mailbox = new Mailbox({ redis, queues, layout });
  let release: (() => void) | undefined;
  const drained: string[] = [];
  const drainer = {
    drainReady: async (d: DrainJob) => {
      drained.push(d.chatId);
      if (d.chatId === '1') await new Promise<void>((resolve) => { release = resolve; });
      return 'drained';
    },
  } as unknown as Drainer;
  serveRunJobs(t, mailbox, drainer, { slots: 1, idleMs: 5_000 }, () => release?.());
  await mailbox.accept('g', '1', 1, update(1));
  await waitUntil('the slow chat holds the only slot', async () => release !== undefined, 5_000);
  await waitUntil('its runner is off the live ones', async () => (await liveRunners()).length === 0, 3_000);
  await mailbox.accept('g', '2', 2, update(2));
  await waitUntil('a second runner drained the next chat while the first still holds its own', async () => drained.includes('2'), 5_000);
  t.equal((await runJobs()).length, 2, 'two run jobs');
  release?.();
});

t.test('a runner whose job could not be added withdraws its registration', async (t) => {
  await reset();
  const broken = createRedis({ url: server.url, blocking: true });
  const brokenQueues = new ShardQueues(broken, layout);
  const mailbox = new Mailbox({ redis, queues: brokenQueues, layout });
  await brokenQueues.forShard(shard).waitUntilReady();
  await broken.quit(); // the queue's connection is gone: every add fails
  await t.rejects(mailbox.accept('h', '1', 1, update(1)));
  t.same(await liveRunners(), [], 'no registration left behind');
  t.equal(await redis.llen(readyKey(shard.tag)), 1, 'the chat is on the ready list: the next opening or the retry registers a runner');
  const ok = new Mailbox({ redis, queues, layout });
  t.same(await ok.accept('h', '1', 1, update(1)), { duplicate: true }, "Telegram's retry is a duplicate");
  t.equal((await liveRunners()).length, 1, 'and registers a runner for the waiting chat');
  await brokenQueues.close().catch(() => undefined);
});
