/**
 * Redis CPU of each mailbox script in the steady state of a live system (every update opens its
 * chat), measured alone on a private redis-server (appendonly everysec, as bench:e2e): accept (in
 * batches; with the opening chat's lease for its runner, as the product, and without, as before),
 * the runner's claimHead (without) or heldHead (with), keepAnswer, popNext. Where bench:e2e gives
 * the total per update, this says which script it goes to, and how much of a script's time its
 * commands take and how much the Lua machinery around them (INFO commandstats).
 *
 *   node --import tsx bench/mailbox-cost.ts [--updates 20000] [--batch 8] [--aof everysec|no]
 */
import { parseArgs } from 'node:util';
import { createRedis, closeRedis } from '../lib/redis.js';
import { Mailbox } from '../lib/delivery/mailbox.js';
import { DeliveryLayout } from '../lib/delivery/shards.js';
import { ShardQueues } from '../lib/delivery/shard-queues.js';
import { startBenchRedis, table } from './lib/common.js';

const { values: opts } = parseArgs({ options: { updates: { type: 'string', default: '20000' }, batch: { type: 'string', default: '8' }, aof: { type: 'string', default: 'everysec' } } });
const N = Number(opts.updates);
const BATCH = Number(opts.batch);

const server = await startBenchRedis(opts.aof === 'no' ? false : 'everysec');
const redis = createRedis({ url: server.url, autoPipelining: true });
const bull = createRedis({ url: server.url, blocking: true });
const layout = DeliveryLayout.of(24);
const queues = new ShardQueues(bull, layout);
// As the product's ingress: the accept takes the opening chat's lease for its runner (up to a
// tenant's limit: 100 here, as the claims below, and with no runner to empty the ready lists a
// backlog bound they never reach, so that every chat of the run gets one).
const mailbox = new Mailbox({ redis, queues, layout, acceptBatch: BATCH, openingLeaseLimit: 100, runnerBacklog: 1_000_000 });
const claimOnly = new Mailbox({ redis, queues, layout, acceptBatch: BATCH, runnerBacklog: 1_000_000 });
const raw = (id: number): string => JSON.stringify({ update_id: id, message: { message_id: id, date: 1, chat: { id: id % 5, type: 'private' }, text: `s123.456;${'x'.repeat(200)}` } });
const tenant = (i: number): string => `t${String(i % 1000).padStart(4, '0')}`;
const chat = (i: number): string => String(Math.floor(i / 1000));
const rows: string[][] = [];
async function phase(name: string, f: (i: number) => Promise<unknown>, perCall = 1): Promise<void> {
  await redis.config('RESETSTAT');
  const c0 = await server.cpuSeconds();
  const calls0 = await server.commandCalls();
  for (let b = 0; b < N; b += 64) await Promise.all(Array.from({ length: Math.min(64, N - b) }, (_, k) => f(b + k)));
  const c1 = await server.cpuSeconds();
  const calls1 = await server.commandCalls();
  const cmds = Object.keys(calls1).filter((c) => c !== 'info').reduce((a, c) => a + ((calls1[c] ?? 0) - (calls0[c] ?? 0)), 0);
  const usec = [...(await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)]
    .map((m) => [m[1] as string, Number(m[3]) / N] as const).filter(([c]) => c !== 'info' && c !== 'config').sort((a, b) => b[1] - a[1]);
  if (process.env.DETAIL) console.log(name, usec.map(([c, u]) => `${c} ${u.toFixed(2)}`).join(', '));
  // A script's own time (commandstats) includes its inner commands': the rest is the script
  // machinery (the call, KEYS/ARGV, each redis.call's way in and its reply back into Lua).
  // commandstats cannot tell an inner command from a plain one, so this holds for phases that
  // run scripts only (or, as heldHead, plain commands only): each phase here is one or the other.
  // (The accept's phase includes the run jobs' adds, BullMQ scripts themselves.)
  const script = usec.filter(([c]) => c === 'evalsha' || c === 'eval').reduce((a, [, u]) => a + u, 0);
  const inner = usec.filter(([c]) => c !== 'evalsha' && c !== 'eval').reduce((a, [, u]) => a + u, 0);
  rows.push([name, (((c1 - c0) / N) * 1e6 / perCall).toFixed(1), (cmds / N).toFixed(1), inner.toFixed(1), script > 0 ? (script - inner).toFixed(1) : '-']);
}
const heads = new Map<number, string>();
const gens = new Map<number, string>();
const tokens = new Map<number, string>();
const { chatLeaseKey, drainKey } = await import('../lib/keys.js');
// Without opening leases (the accept before them), then a runner's claim of each chat.
await phase('accept without opening leases (batches of ' + BATCH + ')', (i) => claimOnly.accept(tenant(i), chat(i), i + 1, raw(i + 1)));
for (let i = 0; i < N; i++) gens.set(i, (await redis.get(drainKey(tenant(i), chat(i), layout))) as string);
await phase('claimHead (its runner, without an opening lease)', async (i) => { const c = await mailbox.claimHead(tenant(i), chat(i), gens.get(i)!, `L${i}`, 100); heads.set(i, c.head as string); });
await redis.flushall();
// The product's: the accept leases each chat it opens, the runner reads the head under that lease.
await phase('accept (fresh chat, batches of ' + BATCH + ', with its lease)', (i) => mailbox.accept(tenant(i), chat(i), i + 1, raw(i + 1)));
for (let i = 0; i < N; i++) {
  gens.set(i, (await redis.get(drainKey(tenant(i), chat(i), layout))) as string);
  tokens.set(i, (await redis.get(chatLeaseKey(tenant(i), chat(i), layout))) as string);
}
await phase('heldHead (its runner, under the opening lease)', async (i) => { const c = await mailbox.heldHead(tenant(i), chat(i), tokens.get(i)!, 1000); heads.set(i, c?.head as string); });
await phase('keepAnswer', (i) => mailbox.keepAnswer(tenant(i), chat(i), heads.get(i)!, tokens.get(i)!, 'You said: hello'));
await phase('popNext (ends the drain)', (i) => mailbox.popNext(tenant(i), chat(i), heads.get(i)!, i + 1, tokens.get(i)!, gens.get(i)!));
console.log(table(['script', 'Redis CPU µs per update', 'commands per update (inner included)', 'µs in the commands', 'µs in the script machinery'], rows));
await queues.close();
await closeRedis(redis);
await closeRedis(bull);
await server.close();
