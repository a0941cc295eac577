/**
 * Bull Board's API never answers a secret: the real board (lib/ops/dashboard.ts) over a real
 * redis-server, with an admin job whose data nests secrets, a failed job whose reason, stack
 * trace, progress and logs carry a Redis password, a presigned URL and an encoded bot token, and a
 * dead letter whose update and reason carry them too. Every view the browser fetches is read
 * (queue listings per status, one job, its logs) and grepped; what operators need stays readable.
 * The browser-level view is test/dashboard.test.ts.
 */
import t from 'tap';
import { Queue, Worker } from 'bullmq';
import { request } from 'undici';
import { serveDashboard, type ServedDashboard } from '../lib/ops/dashboard.js';
import { DEAD_LETTERS_BOARD_NAME } from '../lib/ops/dead-letter-adapter.js';
import { DEAD_LETTER_INDEX } from '../lib/delivery/dead-letters.js';
import { encodeEnvelope } from '../lib/delivery/update.js';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import { closeRedis, createRedis, type RedisClient } from '../lib/redis.js';
import { startRedis, type TestRedis } from './support/redis.js';
import { waitUntil } from './support/wait.js';

const BOT_ID = '123456789';
const SECRET = 'AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1';
const TOKEN = `${BOT_ID}:${SECRET}`;
const ENCODED = `${BOT_ID}%3A${SECRET}`;
const PW = 'board-redis-pw-0123456789';
const SIG = 'c'.repeat(64);
const SESSION = 'IQoJb3JpZ2luX2VjEJrSessionToken';
const SIGNED = `http://127.0.0.1:9000/ztm-state/alice/brain.tar?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLEKEY%2F20240101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-Security-Token=${SESSION}&X-Amz-Signature=${SIG}&X-Amz-SignedHeaders=host`;
const SECRETS = [SECRET, PW, SIG, SESSION, 'AKIAEXAMPLEKEY', 'whsec-nested-1', 'llm-key-nested-1'];

let redis: TestRedis;
let client: RedisClient;
let bull: RedisClient;
let workerRedis: RedisClient;
let board: ServedDashboard;
const queues: Queue[] = [];

async function api(path: string): Promise<{ status: number; text: string }> {
  const res = await request(`${board.url}api/${path}`);
  return { status: res.statusCode, text: await res.body.text() };
}

t.before(async () => {
  redis = await startRedis();
  client = createRedis({ url: redis.url });
  bull = createRedis({ url: redis.url, blocking: true });
  workerRedis = createRedis({ url: redis.url, blocking: true });

  // An admin job as ztm sends it, with secrets deeper than the top level; delayed, so it stays.
  const admin = new Queue(QUEUES.admin, { connection: bull, prefix: QUEUE_PREFIX });
  queues.push(admin);
  await admin.add('tenant.create', {
    tenant_id: 'alice', bot_token: TOKEN,
    options: { profile: { agent: { api_key: 'llm-key-nested-1', webhookSecret: 'whsec-nested-1' } }, state_url: SIGNED },
  }, { jobId: 'nested-secrets', delay: 3_600_000 });

  // A failed job: reason, stack trace, progress and logs carry what a library's message might.
  const wake = new Queue(QUEUES.wake, { connection: bull, prefix: QUEUE_PREFIX });
  queues.push(wake);
  await wake.add('wake', { tenant_id: 'bob' }, { jobId: 'failed-wake', attempts: 1 });
  const worker = new Worker(QUEUES.wake, async (job) => {
    await job.log(`restoring from ${SIGNED}`);
    await job.log(`telegram https://api.telegram.org/bot${ENCODED}/setWebhook`);
    await job.updateProgress({ step: 'restore', detail: { from: SIGNED, redis: `redis://:${PW}@10.0.0.5:6379` } });
    throw new Error(`connect ECONNREFUSED redis://:${PW}@10.0.0.5:6379 while GET ${SIGNED} for bot ${ENCODED}`);
  }, { connection: workerRedis, prefix: QUEUE_PREFIX, autorun: true });
  await waitUntil('the wake job to fail', async () => (await wake.getFailedCount()) === 1);
  await worker.close();

  // A dead letter as the forwarder stores it: a user pasted a token, the reason has a password.
  const update = { update_id: 31337, message: { message_id: 5, date: 1, chat: { id: 77, type: 'private' }, text: `my token is ${ENCODED}`, entities: [{ type: 'url', offset: 0, length: 3, url: `rediss://app:${PW}@r.example:6380` }] } };
  const letter = {
    id: 'carol.77.31337', tenant_id: 'carol', chat_id: '77', update_id: 31337, failed_at: new Date().toISOString(), attempts: 5,
    reason: `agent answered 500: redis://:${PW}@10.0.0.5:6379 ${TOKEN}`, envelope: encodeEnvelope(31337, Date.now(), JSON.stringify(update)),
  };
  await client.zadd(DEAD_LETTER_INDEX, Date.now(), letter.id);
  await client.hset(`${DEAD_LETTER_INDEX}:data`, letter.id, JSON.stringify(letter));

  board = await serveDashboard({ redis: client, port: 0 });
});

t.teardown(async () => {
  await board?.close();
  await Promise.allSettled(queues.map((q) => q.close()));
  await closeRedis(bull);
  await closeRedis(workerRedis);
  await closeRedis(client);
  await redis?.close();
});

t.test('every job view of the board is redacted, at any depth, the dead letters too', async (t) => {
  const views = [
    `queues?activeQueue=${encodeURIComponent(QUEUES.admin)}&status=delayed&page=1&jobsPerPage=50`,
    `queues?activeQueue=${encodeURIComponent(QUEUES.wake)}&status=failed&page=1&jobsPerPage=50`,
    `queues?activeQueue=${encodeURIComponent(DEAD_LETTERS_BOARD_NAME)}&status=failed&page=1&jobsPerPage=50`,
    `queues/${encodeURIComponent(QUEUES.admin)}/nested-secrets`,
    `queues/${encodeURIComponent(QUEUES.wake)}/failed-wake`,
    `queues/${encodeURIComponent(QUEUES.wake)}/failed-wake/logs`,
    `queues/${encodeURIComponent(DEAD_LETTERS_BOARD_NAME)}/carol.77.31337`,
  ];
  const answers: Record<string, string> = {};
  for (const view of views) {
    const { status, text } = await api(view);
    t.equal(status, 200, `${view}: answered`);
    answers[view] = text;
    for (const secret of SECRETS) t.notOk(text.includes(secret), `${view}: no ${secret.slice(0, 10)}…`);
  }

  // The views did carry the jobs (a redaction that blanked everything would pass the greps).
  const adminJob = JSON.parse(answers[views[3] as string] ?? '{}') as { job: { data: Record<string, any> } };
  t.equal(adminJob.job.data.tenant_id, 'alice');
  t.equal(adminJob.job.data.bot_token, `${BOT_ID}:[REDACTED]`, 'the bot id stays');
  t.equal(adminJob.job.data.options.profile.agent.api_key, '[REDACTED]', 'a secret three levels deep');
  t.match(adminJob.job.data.options.state_url, /X-Amz-Expires=3600.*X-Amz-Signature=\[REDACTED\]/);

  const wakeJob = JSON.parse(answers[views[4] as string] ?? '{}') as { job: { failedReason: string; stacktrace: string[]; progress: Record<string, any> } };
  t.match(wakeJob.job.failedReason, `redis://:[REDACTED]@10.0.0.5:6379`, 'the failed reason is kept, redacted');
  t.match(wakeJob.job.failedReason, `bot ${BOT_ID}%3A[REDACTED]`);
  t.ok(wakeJob.job.stacktrace.length > 0 && wakeJob.job.stacktrace.every((l) => l.includes('[REDACTED]')), 'the stack trace too');
  t.match(wakeJob.job.progress, { step: 'restore', detail: { redis: 'redis://:[REDACTED]@10.0.0.5:6379' } });
  t.match(answers[views[5] as string], /restoring from http:\/\/127\.0\.0\.1:9000\/ztm-state\/alice\/brain\.tar/, 'the logs are shown');

  const dead = JSON.parse(answers[views[6] as string] ?? '{}') as { job: { data: Record<string, any>; failedReason: string } };
  t.equal(dead.job.data.text, `my token is ${BOT_ID}%3A[REDACTED]`, "the update's text, redacted");
  t.equal(dead.job.data.update.message.entities[0].url, 'rediss://app:[REDACTED]@r.example:6380');
  t.match(dead.job.failedReason, `redis://:[REDACTED]@10.0.0.5:6379 ${BOT_ID}:[REDACTED]`);
});
