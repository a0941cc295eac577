import t from 'tap';
import { Redis } from 'ioredis';
import { startRedis } from './support/redis.js';
import { createLogger } from '../lib/logger.js';
import { defineAllScripts } from '../lib/redis-scripts.js';
import { activityKey, IDLE_DEADLINE_KEY, messagesDayKey } from '../lib/keys.js';
import { messagesDayKeyOf, messagesToday, utcDay } from '../lib/tenants/tenant-stats.js';
import { ActivityFlusher } from '../services/forwarder/activity-flusher.js';

const server = await startRedis();
const redis = new Redis(server.url) as Redis & Record<string, unknown>;
defineAllScripts(redis as never);
const flusher = new ActivityFlusher(redis as never, createLogger({ service: 'test', level: 'silent' }), 60_000);
t.teardown(async () => {
  await flusher.close();
  redis.disconnect();
  await server.close();
});

t.test('a flush writes the awake tenants\' activity and deadlines, and never brings back one put to sleep or deleted since', async (t) => {
  await redis.zadd(activityKey, 1_000, 'awake');
  await redis.zadd(IDLE_DEADLINE_KEY, 301_000, 'awake');
  flusher.note('awake', 300, true, 5_000);
  flusher.note('deleted', 300, true, 5_000); // delivered, then deleted (its members cleared) before the flush
  await flusher.flush();
  t.equal(await redis.zscore(activityKey, 'awake'), '5000');
  t.equal(await redis.zscore(IDLE_DEADLINE_KEY, 'awake'), '305000');
  t.equal(await redis.zscore(activityKey, 'deleted'), null, 'not re-added to the activity index');
  t.equal(await redis.zscore(IDLE_DEADLINE_KEY, 'deleted'), null, 'no idle deadline for it');
  flusher.note('awake', 300, true, 2_000); // a late note older than what is there
  await flusher.flush();
  t.equal(await redis.zscore(activityKey, 'awake'), '5000', 'a late flush does not move activity back');
});

t.test("a flush counts the day's messages in each tenant's delivery shard, one script per shard", async (t) => {
  const tenants = Array.from({ length: 40 }, (_, i) => `count-${i}`);
  for (const [i, tn] of tenants.entries()) for (let n = 0; n <= i % 3; n++) flusher.note(tn, undefined, true);
  flusher.note('not-a-message', undefined, false);
  const scriptCalls = async (): Promise<number> => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
  const before = await scriptCalls();
  await flusher.flush();
  const calls = (await scriptCalls()) - before;
  t.same(await messagesToday(redis as never, [...tenants, 'not-a-message']), [...tenants.map((_, i) => 1 + (i % 3)), 0], 'every count, none for a non-message');
  const keys = new Set(tenants.map((tn) => messagesDayKeyOf(tn, utcDay())));
  t.ok(keys.size > 10, `${keys.size} shard hashes for 40 tenants`);
  t.equal(calls, keys.size, 'one count script per shard hash');
  for (const key of keys) t.ok((await redis.ttl(key)) > 0, `${key} expires`);
  t.equal(await redis.exists(messagesDayKey(utcDay())), 0, 'nothing in the single hash of earlier versions');
});
