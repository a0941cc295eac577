/**
 * retryTransient: a write that records what Telegram already took survives a Redis that goes away
 * and comes back (a failover), is not retried for the command's own errors, and gives up at its
 * deadline. Against a real redis-server killed and restarted on the same port.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { EmbeddedRedis } from '../lib/embedded-redis.js';
import { isTransientRedisError, retryTransient } from '../lib/util/redis-retry.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'ztm-retry-'));
let server = await EmbeddedRedis.start({ dir, persist: false });
const port = Number(new URL(server.url).port);
const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 50, lazyConnect: false });
client.on('error', () => undefined);
t.teardown(async () => {
  client.disconnect();
  await server.stop('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

t.test('a command error is not transient; a lost server is', async (t) => {
  const replyError = await client.call('NOSUCHCOMMAND').catch((e: unknown) => e);
  t.equal(isTransientRedisError(replyError), false, 'ERR unknown command');
  await server.stop('SIGKILL');
  const lost = await client.set('k', 'v').catch((e: unknown) => e);
  t.equal(isTransientRedisError(lost), true, `${(lost as Error).name}: ${(lost as Error).message}`);
  t.equal(isTransientRedisError(new Error('CLUSTERDOWN The cluster is down')), false, 'a plain Error is not a reply');
  server = await EmbeddedRedis.start({ dir, port, persist: false });
});

t.test('a write retried across a restart of the server lands once it is back', async (t) => {
  await server.stop('SIGKILL');
  const back = new Promise<void>((resolve) => setTimeout(() => void EmbeddedRedis.start({ dir, port, persist: false }).then((s) => { server = s; resolve(); }), 700));
  let retries = 0;
  const result = await retryTransient(() => client.set('k', 'after'), { deadlineMs: 10_000, onRetry: () => retries++ });
  await back;
  t.equal(result, 'OK');
  t.ok(retries >= 1, `retried ${retries} times`);
  t.equal(await client.get('k'), 'after');
});

t.test('not retried for the command\'s own error; given up at the deadline', async (t) => {
  let calls = 0;
  await t.rejects(retryTransient(() => (calls++, client.call('NOSUCHCOMMAND')), { deadlineMs: 5_000 }), /unknown command/);
  t.equal(calls, 1);
  await server.stop('SIGKILL');
  let tries = 0;
  await t.rejects(retryTransient(() => (tries++, client.set('k', 'never')), { deadlineMs: 600 }));
  t.ok(tries >= 1 && tries < 20, `gave up after ${tries} tries`);
  server = await EmbeddedRedis.start({ dir, port, persist: false });
});
