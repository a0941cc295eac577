/**
 * Drains waiting in place for a wake (EndpointWatch) against a real redis-server: a wake's
 * announcement ends the wait at once, an announcement already made is caught by the re-check, the
 * number of waiters is capped, a timeout or close() ends the wait with false (the drain parks).
 */
import t from 'tap';
import { createRedis, closeRedis, type RedisClient } from '../lib/redis.js';
import { createLogger } from '../lib/logger.js';
import { EndpointWatch } from '../lib/delivery/endpoint-watch.js';
import { Endpoints } from '../lib/delivery/endpoints.js';
import { startRedis, type TestRedis } from './support/redis.js';

let server: TestRedis;
let redis: RedisClient;
let endpoints: Endpoints;
const log = createLogger({ service: 'test', level: 'silent' });

t.before(async () => {
  server = await startRedis();
  redis = createRedis({ url: server.url });
  endpoints = new Endpoints({ redis });
});
t.teardown(async () => {
  await closeRedis(redis);
  await server.close();
});

const never = async (): Promise<boolean> => false;

t.test('an announced wake ends the wait of that tenant only', async (t) => {
  const watch = new EndpointWatch({ redis, log, maxWaiters: 4 });
  t.teardown(() => watch.close());
  t.equal(await watch.waitFor('a', 5_000, never), false, 'not subscribed yet: park');
  await watch.start();
  const started = Date.now();
  const a = watch.waitFor('a', 5_000, never);
  const b = watch.waitFor('b', 300, never);
  t.equal(watch.waiting, 2);
  setTimeout(() => void endpoints.announceWakeDone('a'), 50);
  t.equal(await a, true, 'woken by the announcement');
  t.ok(Date.now() - started < 4_000, 'long before its timeout');
  t.equal(await b, false, 'another tenant times out');
  t.equal(watch.waiting, 0);
});

t.test('the re-check catches a wake that ended before the waiter was registered', async (t) => {
  const watch = new EndpointWatch({ redis, log, maxWaiters: 4 });
  t.teardown(() => watch.close());
  await watch.start();
  await endpoints.set('c', '127.0.0.1:1234');
  t.equal(await watch.waitFor('c', 5_000, async () => (await endpoints.get('c')) !== undefined), true);
});

t.test('at most maxWaiters wait; close() ends every wait with false', async (t) => {
  const watch = new EndpointWatch({ redis, log, maxWaiters: 2 });
  await watch.start();
  const waits = [watch.waitFor('d', 10_000, never), watch.waitFor('e', 10_000, never)];
  t.equal(await watch.waitFor('f', 10_000, never), false, 'third waiter parks at once');
  await watch.close();
  t.same(await Promise.all(waits), [false, false]);
  t.equal(await watch.waitFor('d', 10_000, never), false, 'closed: park');
});

t.test('options are checked at construction', async (t) => {
  t.throws(() => new EndpointWatch({ redis, log, maxWaiters: -1 }), /maxWaiters/);
});
