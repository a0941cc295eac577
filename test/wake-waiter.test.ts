/**
 * WakeWaiter (services/forwarder/wake-waiter.ts) against a real redis-server: a drain waits in place
 * until the waker publishes the endpoint, at most `perQueue` per queue (the rest park at once), and
 * parks at once without a watch.
 */
import t from 'tap';
import { createRedis, closeRedis, type RedisClient } from '../lib/redis.js';
import { Endpoints } from '../lib/delivery/endpoints.js';
import { EndpointWatch } from '../lib/delivery/endpoint-watch.js';
import { createLogger } from '../lib/logger.js';
import { WakeWaiter } from '../services/forwarder/wake-waiter.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { sleep } from './support/wait.js';

let server: TestRedis;
let redis: RedisClient;
let watch: EndpointWatch;
const log = createLogger({ service: 'test', level: 'silent' });

t.before(async () => {
  server = await startRedis();
  redis = createRedis({ url: server.url });
  watch = new EndpointWatch({ redis, log, maxWaiters: 10 });
  await watch.start();
});
t.teardown(async () => {
  await watch.close();
  await closeRedis(redis);
  await server.close();
});

t.test('without a watch a drain parks at once', async (t) => {
  const waiter = new WakeWaiter({ endpoints: new Endpoints({ redis }) });
  t.equal(await waiter.wait('a', '1', 'q0'), false);
  t.throws(() => new WakeWaiter({} as never), TypeError);
});

t.test('waits until the endpoint is published; one waiter per queue, the next parks at once', async (t) => {
  const endpoints = new Endpoints({ redis });
  const waiter = new WakeWaiter({ endpoints, watch, perQueue: 1 });
  let first: boolean | undefined;
  const waiting = waiter.wait('b', '1', 'q0').then((r) => { first = r; });
  await sleep(100);
  t.equal(first, undefined, 'still waiting for the wake');
  t.equal(await waiter.wait('c', '1', 'q0'), false, 'a second drain of the same queue parks at once');
  let other: boolean | undefined;
  const otherQueue = waiter.wait('b', '2', 'q1').then((r) => { other = r; });
  await endpoints.publish('b', '127.0.0.1:9');
  await Promise.all([waiting, otherQueue]);
  t.equal(first, true, 'the announcement ends the wait with an endpoint');
  t.equal(other, true, 'another queue had its own room');
  let again: boolean | undefined;
  const next = waiter.wait('d', '1', 'q0').then((r) => { again = r; });
  await sleep(50);
  t.equal(again, undefined, 'the queue has room again once the first wait ended');
  await endpoints.publish('d', '127.0.0.1:9');
  await next;
  t.equal(again, true);
});
