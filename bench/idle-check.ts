/**
 * Janitor benchmark: one idle check with 100,000 registered tenants of which 10,000 are running.
 *
 *   node --import tsx bench/idle-check.ts [--registered 100000] [--running 10000] [--expired 100,1000,10000]
 *        [--repeats 5] [--real-stops 100]
 *
 * Setup: dynalite in its own process holds the registry (written with BatchWriteItem, 25 items per
 * call); a private redis-server holds the activity index (`ztm:activity`, `ztm:idle-deadline`) with
 * an entry per running tenant. The idle check (services/janitor/lifecycle-worker.ts idleCheck()) is
 * run in this process, the janitor's role, with every DynamoDB command counted by name (the
 * registry's client is wrapped), so "no Scan per check" is asserted, not assumed.
 *
 * Measured:
 *   1. 0 expired: the check a janitor runs every IDLE_CHECK_INTERVAL_S when nobody is idle.
 *   2. N expired with a lifecycle stub that only records the tenant: the cost of finding and taking
 *      the expired tenants (what the check itself does). Stopping an agent is per-tenant work that
 *      takes seconds by design (graceful checkpoint, pod deletion), runs 8 at a time, and does not
 *      depend on how many tenants are registered: timing it would measure the runtime, not the check.
 *   3. --real-stops expired with the real RuntimeLifecycle over a runtime whose stop() returns at
 *      once: the registry work per stopped tenant (reads, conditional writes), still no Scan.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { BENCH_DIR, fmt, machineInfo, median, printMachine, spawnChild, startBenchRedis, table } from './lib/common.js';
import { createDynamoClient } from '../lib/registry/dynamo-client.js';
import { TenantRegistry } from '../lib/registry/tenant-registry.js';
import { createLogger } from '../lib/logger.js';
import { createRedis, closeRedis } from '../lib/redis.js';
import { loadConfig } from '../lib/config.js';
import { activityKey } from '../lib/keys.js';
import { IDLE_DEADLINE_KEY } from '../lib/tenants/activity.js';
import { RuntimeLifecycle } from '../lib/tenants/tenant-lifecycle.js';
import { LifecycleWorker } from '../services/janitor/lifecycle-worker.js';
import { QUEUES, QUEUE_PREFIX } from '../lib/queues.js';
import type { Runtime } from '../lib/runtime/runtime.js';
import type { StateStore } from '../lib/state/state-store.js';

const { values: opts } = parseArgs({
  options: {
    registered: { type: 'string', default: '100000' },
    running: { type: 'string', default: '10000' },
    expired: { type: 'string', default: '100,1000,10000' },
    repeats: { type: 'string', default: '5' },
    'real-stops': { type: 'string', default: '100' },
    'scan-baseline': { type: 'boolean', default: true },
  },
});
const REGISTERED = Number(opts.registered);
const RUNNING = Number(opts.running);
const EXPIRED = (opts.expired ?? '').split(',').filter(Boolean).map(Number);
const REPEATS = Number(opts.repeats);
const REAL_STOPS = Number(opts['real-stops']);
if (RUNNING > REGISTERED) throw new Error('--running cannot exceed --registered');

const tenantId = (i: number): string => `idle-t${String(i).padStart(6, '0')}`;
const mem = (): { rss: number; heap: number } => {
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
};

const machine = machineInfo();
printMachine(machine);
console.log(`# ${fmt.int(REGISTERED)} registered tenants, ${fmt.int(RUNNING)} running; ${REPEATS} checks per case`);

const redisServer = await startBenchRedis('everysec');
const dynamo = await spawnChild(path.join(BENCH_DIR, 'lib/dynamo-server.ts'));
const endpoint = dynamo.ready.endpoint as string;
const base = createDynamoClient({ endpoint, region: 'us-east-1' });
const doc = DynamoDBDocumentClient.from(base);
// Every command the registry sends, by name (GetCommand, UpdateCommand, ScanCommand, ...).
const commands: Record<string, number> = {};
const send = doc.send.bind(doc) as (command: unknown, ...rest: unknown[]) => Promise<unknown>;
(doc as unknown as { send: typeof send }).send = (command, ...rest) => {
  const name = (command as { constructor: { name: string } }).constructor.name;
  commands[name] = (commands[name] ?? 0) + 1;
  return send(command, ...rest);
};
const countsSince = (before: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(commands).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => (v as number) > 0));

const table_ = `bench-${randomBytes(4).toString('hex')}`;
const registry = new TenantRegistry({ client: doc, table: table_ });
await registry.ensureTable();

// 1. The registry: REGISTERED items, RUNNING of them running, in BatchWriteItem calls of 25.
const writeStarted = performance.now();
const now = Date.now();
const iso = new Date(now).toISOString();
const token = (i: number): string => `${100_000_000 + i}:AAbench${randomBytes(12).toString('base64url')}`;
const batches: number[][] = [];
for (let i = 0; i < REGISTERED; i += 25) batches.push(Array.from({ length: Math.min(25, REGISTERED - i) }, (_, k) => i + k));
let next = 0;
await Promise.all(Array.from({ length: 8 }, async () => {
  while (next < batches.length) {
    const batch = batches[next++] as number[];
    let items: Record<string, unknown>[] | undefined = batch.map((i) => ({
      PutRequest: {
        Item: {
          tenant_id: tenantId(i), bot_token: token(i), status: i < RUNNING ? 'running' : 'idle', idle_timeout_s: 300,
          created_at: iso, updated_at: iso, version: 1, ...(i < RUNNING ? { pod_name: `zeroclaw-${tenantId(i)}`, pod_ip: '10.0.0.1' } : {}),
        },
      },
    }));
    while (items?.length) {
      const out = await send(new BatchWriteCommand({ RequestItems: { [table_]: items } })) as { UnprocessedItems?: Record<string, Record<string, unknown>[]> };
      items = out.UnprocessedItems?.[table_];
    }
  }
}));
const writeS = (performance.now() - writeStarted) / 1000;
console.log(`registry: ${fmt.int(REGISTERED)} tenants written to dynalite in ${writeS.toFixed(1)} s (${fmt.int(REGISTERED / writeS)}/s)`);

// 2. The activity index: one entry per running tenant, deadlines an hour ahead (nobody idle yet).
const redis = createRedis({ url: redisServer.url, name: 'janitor' });
const bull = createRedis({ url: redisServer.url, name: 'janitor-bull', blocking: true });
const setIndex = async (expiredCount: number): Promise<void> => {
  const tx = redis.pipeline();
  tx.del(activityKey, IDLE_DEADLINE_KEY);
  for (let i = 0; i < RUNNING; i += 1000) {
    const a: Array<string | number> = [];
    const d: Array<string | number> = [];
    for (let k = i; k < Math.min(RUNNING, i + 1000); k++) {
      const last = k < expiredCount ? now - 3_600_000 : now - 1000;
      a.push(last, tenantId(k));
      d.push(k < expiredCount ? last + 300_000 : now + 3_600_000, tenantId(k));
    }
    tx.zadd(activityKey, ...a);
    tx.zadd(IDLE_DEADLINE_KEY, ...d);
  }
  await tx.exec();
};
await setIndex(0);
const indexBytes = Number(await redis.call('MEMORY', 'USAGE', activityKey)) + Number(await redis.call('MEMORY', 'USAGE', IDLE_DEADLINE_KEY));
console.log(`activity index: ${fmt.int(await redis.zcard(IDLE_DEADLINE_KEY))} running tenants, ${fmt.mib(indexBytes)} in Redis (both sorted sets)`);

const config = loadConfig({ REDIS_URL: redisServer.url, DYNAMODB_ENDPOINT: endpoint, DYNAMODB_TABLE: table_, WEBHOOK_SECRET: randomBytes(24).toString('hex'), WARM_POOL_SECRET: randomBytes(24).toString('hex') });
const log = createLogger({ service: 'janitor', level: 'warn' });
const stopped: string[] = [];
const recorder = { sleep: async (id: string) => {
  stopped.push(id);
  return { tenant_id: id, stopped: true, status: 'idle' };
} } as unknown as RuntimeLifecycle;
const noopRuntime = { kind: 'local', stop: async () => true } as unknown as Runtime;
const wakeQueue = new Queue(QUEUES.wake, { connection: bull, prefix: QUEUE_PREFIX });
const realLifecycle = new RuntimeLifecycle({ registry, runtime: noopRuntime, state: {} as StateStore, redis, wakeQueue, log, wakeTimeoutS: 60 });
const worker = (lifecycle: RuntimeLifecycle): LifecycleWorker =>
  new LifecycleWorker({ config, log, redis, bull, registry, runtime: noopRuntime, lifecycle, state: {} as StateStore });
const recording = worker(recorder);
const real = worker(realLifecycle);

interface Case { name: string; ms: number[]; taken: number; commands: Record<string, number>; rssMiB: number; heapMiB: number }
const cases: Case[] = [];
let scans = 0;
const measure = async (name: string, expired: number, w: LifecycleWorker, repeats: number): Promise<void> => {
  const ms: number[] = [];
  let taken = 0;
  let cmds: Record<string, number> = {};
  for (let r = 0; r < repeats; r++) {
    await setIndex(expired);
    stopped.length = 0;
    const before = { ...commands };
    const t0 = performance.now();
    const result = await w.idleCheck(Date.now());
    ms.push(performance.now() - t0);
    taken = result.checked;
    cmds = countsSince(before);
    scans += cmds.ScanCommand ?? 0;
    if (result.checked !== expired) throw new Error(`${name}: the check took ${result.checked} tenants, expected ${expired}`);
    if (w === recording && stopped.length !== expired) throw new Error(`${name}: ${stopped.length} stops recorded, expected ${expired}`);
    if (w === real && result.stopped.length !== expired) throw new Error(`${name}: ${result.stopped.length} stopped, expected ${expired}`);
  }
  const m = mem();
  cases.push({ name, ms, taken, commands: cmds, rssMiB: m.rss / 2 ** 20, heapMiB: m.heap / 2 ** 20 });
  console.log(`${name.padEnd(46)} median ${fmt.ms(median(ms))} ms (min ${fmt.ms(Math.min(...ms))}, max ${fmt.ms(Math.max(...ms))})  ` +
    `DynamoDB: ${JSON.stringify(cmds)}  janitor RSS ${fmt.mib(m.rss)} heap ${fmt.mib(m.heap)}`);
};

try {
  // Warm-up (JIT, connections), not reported.
  await measure('warm-up', 0, recording, 2);
  cases.length = 0;
  await measure('0 expired', 0, recording, REPEATS);
  for (const n of EXPIRED.filter((n) => n <= RUNNING)) await measure(`${fmt.int(n)} expired (stub lifecycle: records only)`, n, recording, REPEATS);
  if (REAL_STOPS > 0) {
    // Real stops change the registry (status idle): reset those tenants to running between repeats.
    const reps = Math.min(REPEATS, 3);
    for (let r = 0; r < reps; r++) {
      await Promise.all(Array.from({ length: REAL_STOPS }, (_, i) => registry.mutate(tenantId(i), (cur) => (cur.status === 'idle' ? { status: 'provisioning' } : undefined))
        .then(() => registry.mutate(tenantId(i), (cur) => (cur.status === 'provisioning' ? { status: 'running', pod_name: `zeroclaw-${tenantId(i)}`, pod_ip: '10.0.0.1' } : undefined)))));
      await measure(`${fmt.int(REAL_STOPS)} expired (real lifecycle, no-op runtime)`, REAL_STOPS, real, 1);
    }
    const realCases = cases.splice(-reps);
    cases.push({ ...realCases[realCases.length - 1] as Case, ms: realCases.flatMap((c) => c.ms) });
  }
  // Baseline: what a check that scans the registry (the design the brief rules out) costs here.
  let baseline: { ms: number; scans: number; running: number } | undefined;
  if (opts['scan-baseline']) {
    const before = { ...commands };
    const t0 = performance.now();
    let running = 0;
    for await (const t of registry.iterate({ pageSize: 1000 })) if (t.status === 'running') running++;
    baseline = { ms: performance.now() - t0, scans: countsSince(before).ScanCommand ?? 0, running };
    console.log(`baseline: one full registry Scan (pages of 1,000): ${fmt.ms(baseline.ms)} ms, ${baseline.scans} Scan commands, ${fmt.int(running)} running found`);
  }
  const dyn = await dynamo.call<{ mem: NodeJS.MemoryUsage }>('usage');
  const redisMem = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
  console.log(`\n${table(['case', 'median ms', 'min-max ms', 'DynamoDB commands (last check)', 'janitor RSS / heap'], cases.map((c) => [
    c.name, fmt.ms(median(c.ms)), `${fmt.ms(Math.min(...c.ms))}-${fmt.ms(Math.max(...c.ms))}`,
    Object.keys(c.commands).length ? Object.entries(c.commands).map(([k, v]) => `${k.replace('Command', '')} ${v}`).join(', ') : 'none',
    `${c.rssMiB.toFixed(0)} / ${c.heapMiB.toFixed(0)} MiB`,
  ]))}`);
  console.log(`\nmemory: janitor (this process) RSS ${fmt.mib(process.memoryUsage().rss)}, dynalite ${fmt.mib(dyn.mem.rss)} RSS, redis used_memory ${fmt.mib(redisMem)}`);
  const zero = cases.find((c) => c.name === '0 expired') as Case;
  console.log(`targets: one idle check ≤ 200 ms: ${median(zero.ms) <= 200 ? 'met' : 'NOT met'} (0 expired, median ${fmt.ms(median(zero.ms))} ms); ` +
    `no DynamoDB Scan per check: ${scans === 0 ? 'met (0 Scan commands in every check)' : `NOT met (${scans} Scans)`}`);
  if (baseline) console.log(`ratio: full-Scan check / index check (0 expired): ${fmt.ratio(baseline.ms / median(zero.ms))}`);
  if (scans) process.exitCode = 1;
} finally {
  await recording.close();
  await real.close();
  await wakeQueue.close();
  await closeRedis(redis);
  await closeRedis(bull);
  base.destroy();
  await dynamo.stop();
  await redisServer.close();
}
