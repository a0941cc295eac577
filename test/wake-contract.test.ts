/**
 * The wake queue's contract (lib/wake/wake-contract.ts) on a real redis-server: one pending wake
 * per tenant, released by the job that held it (and only by it), the payload parser, and the
 * typed failure as stored beside the tenant (Endpoints) and read back by the drainer and ztm.
 */
import t from 'tap';
import { Queue } from 'bullmq';
import { createRedis, closeRedis } from '../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { Endpoints } from '../lib/delivery/endpoints.js';
import { wakeFailedKey } from '../lib/keys.js';
import {
  WakeFailedError, decodeWakeFailure, encodeWakeFailure, parseWakeJob, pendingWakeJobId, releaseWakeRequest, requestWake, wakeFailedText,
} from '../lib/wake/wake-contract.js';
import { startRedis } from './support/redis.js';

const server = await startRedis();
const redis = createRedis({ url: server.url, name: 'wake-contract-test' });
const bull = createRedis({ url: server.url, name: 'wake-contract-bull', blocking: true });
const queue = new Queue(QUEUES.wake, { connection: bull, prefix: QUEUE_PREFIX });
t.teardown(async () => {
  await queue.close();
  await closeRedis(bull);
  await closeRedis(redis);
  await server.close();
});

t.test('one pending wake per tenant; the job that held it releases it, a newer one keeps it', async (t) => {
  await requestWake(queue, 'alpha');
  await requestWake(queue, 'alpha');
  await requestWake(queue, 'beta');
  t.equal(await queue.count(), 3 - 1, 'two requests for alpha are one job');
  const first = await pendingWakeJobId(queue, 'alpha');
  t.ok(first, 'alpha has a pending wake');
  const job = (await queue.getJob(first!))!;
  t.same(parseWakeJob(job.data), { t: 'alpha' }, 'its payload parses');

  // The waker's end of a wake: released before the job itself is finished (still in the queue).
  await releaseWakeRequest(job);
  t.equal(await pendingWakeJobId(queue, 'alpha'), undefined, 'released');
  t.ok(await queue.getJob(first!), 'while the ended job is still there');
  await requestWake(queue, 'alpha');
  const second = await pendingWakeJobId(queue, 'alpha');
  t.ok(second && second !== first, `the next request is a new job (${first} then ${second})`);
  await releaseWakeRequest(job);
  t.equal(await pendingWakeJobId(queue, 'alpha'), second, "the old job's release leaves the newer request alone");
});

t.test('requests and payloads are validated', async (t) => {
  await t.rejects(requestWake(queue, 'Not A Tenant'), { code: 'E_VALIDATION' });
  for (const bad of [undefined, null, 'alpha', {}, { t: 7 }, { t: '../x' }]) t.equal(parseWakeJob(bad), undefined, `malformed: ${JSON.stringify(bad)}`);
});

t.test('wake failures: stored with a code, read back typed; operator text unchanged', async (t) => {
  const endpoints = new Endpoints({ redis });
  await endpoints.recordWakeFailure('gamma', { code: 'start-failed', reason: 'agent for gamma was not ready within 6s' });
  t.same(await endpoints.lastWakeFailure('gamma'), { code: 'start-failed', reason: 'agent for gamma was not ready within 6s' });
  t.ok((await redis.ttl(wakeFailedKey('gamma'))) > 0, 'it expires');
  await endpoints.clearWakeFailure('gamma');
  t.equal(await endpoints.lastWakeFailure('gamma'), undefined, 'cleared');

  // What a platform of before this contract left (plain text) reads as an internal failure.
  t.same(decodeWakeFailure('unknown tenant'), { code: 'internal', reason: 'unknown tenant' }, 'plain text: internal, never matched on');
  t.same(decodeWakeFailure('{"code":"nonsense","reason":"x"}'), { code: 'internal', reason: '{"code":"nonsense","reason":"x"}' }, 'unknown code: internal');
  t.equal(decodeWakeFailure(null), undefined);
  t.equal(JSON.parse(encodeWakeFailure({ code: 'internal', reason: 'x'.repeat(1000) })).reason.length, 300, 'reason bounded');

  t.equal(wakeFailedText({ code: 'start-failed', reason: 'boom' }), 'wake failed: boom', 'dead letters and ztm show `wake failed: <reason>`');
  t.equal(wakeFailedText(undefined), 'wake failed: unknown');
  const err = new WakeFailedError({ code: 'unknown-tenant', reason: 'unknown tenant' });
  t.match(err, { code: 'E_NOT_FOUND', message: 'wake failed: unknown tenant', failure: { code: 'unknown-tenant' } });
  t.equal(new WakeFailedError({ code: 'start-failed', reason: 'r' }).code, 'E_RUNTIME');
});
