/**
 * The wake queue's contract (lib/wake/wake-contract.ts) on a real redis-server: one pending wake
 * per tenant, released by the job that held it (and only by it), the payload parser, and the
 * typed failure as stored beside the tenant (Endpoints) and read back by the drainer and ztm, with
 * the runtime's start failure reason; the wake lock holder (renewal) and the wake progress record.
 */
import t from 'tap';
import { Queue } from 'bullmq';
import { createRedis, closeRedis } from '../lib/redis.js';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { Endpoints } from '../lib/delivery/endpoints.js';
import { wakeFailedKey, wakeLockKey, wakeProgressKey } from '../lib/keys.js';
import {
  WakeFailedError, decodeWakeFailure, encodeWakeFailure, parseWakeJob, pendingWakeJobId, releaseWakeRequest, requestWake, startFailureReasonOf, wakeFailedText,
} from '../lib/wake/wake-contract.js';
import { WakeProgress, wakePhaseLine } from '../lib/wake/wake-progress.js';
import { ConfigError, RuntimeError } from '../lib/errors.js';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { WakeLockHolder } from '../services/waker/wake-lock-holder.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRedis } from './support/redis.js';
import { waitUntil } from './support/wait.js';

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

t.test("a start failure's reason: carried, stored, shown; anything else dropped", async (t) => {
  const failure = { code: 'start-failed' as const, reason: 'pod zeroclaw-x: ErrImagePull', start_reason: 'image_pull_failed' as const, at: 1_780_000_000_000 };
  t.same(decodeWakeFailure(encodeWakeFailure(failure)), failure, 'start_reason and at survive the store');
  t.equal(wakeFailedText(failure), 'wake failed: image_pull_failed: pod zeroclaw-x: ErrImagePull', 'the operator text leads with the reason code');
  t.same(decodeWakeFailure('{"code":"start-failed","reason":"x","start_reason":"made-up","at":"soon"}'), { code: 'start-failed', reason: 'x' }, 'an unknown reason or a bad time is dropped');
  t.equal(startFailureReasonOf(new RuntimeError('boom', { reason: 'crash_loop' })), 'crash_loop', "a RuntimeError's reason");
  t.equal(startFailureReasonOf(new RuntimeError('boom')), undefined, 'none said');
  t.equal(startFailureReasonOf(new Error('boom')), undefined);
});

t.test('the wake lock holder renews its own lock past the TTL, re-takes an expired one, never extends another wake’s, stops at its bound', async (t) => {
  const log = createLogger({ service: 'test', level: 'silent' });
  const key = wakeLockKey('lima');
  await redis.set(key, 'mine', 'EX', 2);
  const holder = new WakeLockHolder({ redis, log, tenantId: 'lima', token: 'mine', ttlS: 2, untilMs: Date.now() + 60_000 });
  t.teardown(() => holder.stop());
  await sleep(4_500);
  t.equal(await redis.get(key), 'mine', 'held past two TTLs by renewals');
  t.ok(holder.renewals >= 2, `renewed ${holder.renewals} times`);
  await redis.del(key); // cleared (a janitor's mistake, an eviction)
  await holder.renew();
  t.equal(await redis.get(key), 'mine', 'taken again when nobody holds it');
  await redis.set(key, 'theirs', 'EX', 30);
  await holder.renew();
  t.equal(holder.lost, true, 'lost to another wake');
  t.equal(await redis.get(key), 'theirs', 'whose lock stays theirs');
  t.ok((await redis.ttl(key)) > 25, 'and is not extended');
  holder.stop();

  await redis.set(key, 'bounded', 'EX', 1);
  const bounded = new WakeLockHolder({ redis, log, tenantId: 'lima', token: 'bounded', ttlS: 1, untilMs: Date.now() + 1_200 });
  t.teardown(() => bounded.stop());
  await waitUntil('the bounded lock gone', async () => (await redis.exists(key)) === 0, 5_000);
  t.pass('no renewal past its bound (COLD_START_TIMEOUT_S): the lock then expires on its own');
});

t.test('wake progress: phases recorded for ztm, the last failure kept, both gone with the tenant', async (t) => {
  const progress = new WakeProgress(redis);
  t.equal(await progress.read('mike'), undefined, 'no wake yet');
  await progress.begin('mike', { started: 1000, deadline: 601_000, ttlS: 30 });
  t.match(await progress.read('mike'), { phase: undefined, started: 1000, deadline: 601_000 });
  await progress.phase('mike', { phase: 'waiting-for-node', detail: '0/3 nodes are available: token=123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\nsecond line' }, 30);
  const view = await progress.read('mike');
  t.equal(view?.phase, 'waiting-for-node');
  t.notMatch(view?.detail ?? '', /AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/, 'a detail is redacted');
  t.notMatch(view?.detail ?? '', /second line/, 'and one line');
  t.equal(wakePhaseLine('waiting-for-node', undefined), 'waiting for a node', "the runbook's words");
  t.equal(wakePhaseLine('pulling-image', 'zeroclaw:1.2'), 'pulling image (zeroclaw:1.2)');
  await progress.end('mike', 'ready');
  t.ok((await redis.ttl(wakeProgressKey('mike'))) <= 60, 'an ended wake is readable briefly');
  await progress.recordFailure('mike', { code: 'start-failed', reason: 'no node', start_reason: 'unschedulable' });
  t.match(await progress.lastFailure('mike'), { start_reason: 'unschedulable', at: Number });
  await progress.forget('mike');
  t.equal(await progress.read('mike'), undefined);
  t.equal(await progress.lastFailure('mike'), undefined);
});

t.test('COLD_START_TIMEOUT_S: default 600, validated', async (t) => {
  t.equal(loadConfig({}).coldStartTimeoutS, 600, 'the default: ten minutes');
  t.equal(loadConfig({ COLD_START_TIMEOUT_S: '900' }).coldStartTimeoutS, 900);
  for (const bad of ['0', '4', '7201', '60s', '-5']) {
    let caught: unknown;
    try {
      loadConfig({ COLD_START_TIMEOUT_S: bad });
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof ConfigError && caught.variable === 'COLD_START_TIMEOUT_S' && /whole number from 5 to 7200/.test(caught.message), `${bad}: ${String(caught)}`);
  }
});
