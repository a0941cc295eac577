import t from 'tap';
import { Redis } from 'ioredis';
import { startRedis } from './support/redis.js';
import { createLogger } from '../lib/logger.js';
import { defineAllScripts } from '../lib/redis-scripts.js';
import { activityKey, IDLE_DEADLINE_KEY } from '../lib/keys.js';
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
