/**
 * End-to-end benchmark: a steady stream of webhooks over many awake tenants, through the real
 * ingress and forwarder, to agents; the pipeline-added latency (ingress in → agent in) and the
 * forwarder's CPU per 1,000 updates (results and method: docs/benchmarks.md).
 *
 *   node --import tsx bench/e2e.ts [--rate 2000] [--duration 60] [--warmup 5] [--tenants 1000]
 *        [--chats 5] [--hosts 2] [--forwarders 1] [--connections 64] [--direct 10]
 *        [--redis single|cluster|both] [--json-out <file>]
 *
 * --redis cluster: a local Redis Cluster of 3 masters + 3 replicas (bench/lib/bench-cluster.ts)
 * instead of one redis-server; Redis CPU and commands are then summed over the masters and given
 * per master. --redis both: one run on each, in this order, then a table comparing them.
 *
 * Processes: this one (open-loop load generator: sends at --rate whatever the answers do), the
 * ingress (bench/ingress-server.ts real: the product's ingress + mailbox), the forwarder
 * (bench/e2e-forwarder.ts: the product's forwarder, default FORWARDER_CONCURRENCY and
 * TENANT_CONCURRENCY), --hosts agent hosts (bench/e2e-agents.ts), a private redis-server
 * (appendonly everysec) and dynalite (the registry the forwarder reads bot tokens from).
 *
 * 1,000 agent processes do not fit: each agent host serves many tenants, one listening port per
 * tenant, so every tenant still has its own endpoint (`router:endpoint:<id>` = 127.0.0.1:<its port>)
 * and its own connection pool in the forwarder, as with one pod per tenant. The agents answer at
 * once (no LLM, no SQLite): what is measured is the platform, not the agent. Telegram's
 * sendMessage (the forwarder sends every answer) is a stand-in in agent host 0 that answers at once.
 *
 * Each update's text starts with its send time; the agent records arrival − send. Tenants are
 * woken before the run (endpoints set), so no update waits for a wake.
 * Baseline (--direct seconds, same rate, after the pipeline run): the generator posts the same
 * payloads straight to the agents: one bare HTTP hop on the same machine at the same time.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Pool, request } from 'undici';
import { BENCH_DIR, fmt, machineInfo, printMachine, sleep, spawnChild, startBenchRedis, table, type ChildHandle } from './lib/common.js';
import { makeTenants, makeUpdateFactory } from './lib/updates.js';
import { createDynamoClient } from '../lib/registry/dynamo-client.js';
import { TenantRegistry } from '../lib/registry/tenant-registry.js';
import { createRedis, closeRedis } from '../lib/redis.js';
import { endpointKey, readyKey, runnersKey } from '../lib/keys.js';
import { Queue } from 'bullmq';
import { DEFAULT_DELIVERY_SHARDS, DeliveryLayout } from '../lib/delivery/shards.js';
import { QUEUE_PREFIX } from '../lib/queues.js';
import { DeadLetterStore } from '../lib/delivery/dead-letters.js';
import { startBenchCluster, type MasterFigures } from './lib/bench-cluster.js';

const { values: opts } = parseArgs({
  options: {
    rate: { type: 'string', default: '2000' },
    duration: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '5' },
    tenants: { type: 'string', default: '1000' },
    chats: { type: 'string', default: '5' },
    hosts: { type: 'string', default: '2' },
    forwarders: { type: 'string', default: '1' },
    connections: { type: 'string', default: '64' },
    direct: { type: 'string', default: '10' },
    capacity: { type: 'string', default: '20000' },
    prof: { type: 'string' },
    redis: { type: 'string', default: 'single' },
    'json-out': { type: 'string' },
    watch: { type: 'boolean', default: false },
  },
});
if (!['single', 'cluster', 'both'].includes(opts.redis)) throw new Error('--redis must be single, cluster or both');
if (opts.redis === 'both') {
  // One run per topology, in this process's order, then the comparison.
  const results: Record<string, E2eSummary> = {};
  for (const topology of ['single', 'cluster']) {
    const out = path.join(os.tmpdir(), `ztm-e2e-${topology}-${process.pid}.json`);
    const args = process.argv.slice(2).filter((a, i, all) => a !== '--redis' && all[i - 1] !== '--redis' && !a.startsWith('--redis='));
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'e2e.ts'), ...args, '--redis', topology, '--json-out', out], { stdio: 'inherit' });
    if (r.status !== 0) process.exitCode = 1;
    try {
      results[topology] = JSON.parse(readFileSync(out, 'utf8')) as E2eSummary;
      rmSync(out, { force: true });
    } catch {
      console.log(`no summary from the ${topology} run`);
    }
  }
  const row = (label: string, f: (r: E2eSummary) => string): string[] => [label, ...['single', 'cluster'].map((k) => (results[k] ? f(results[k]) : '-'))];
  console.log(`\n# same run: one Redis node vs a 3-master cluster\n${table(['measure', 'one node', '3-master cluster'], [
    row('delivered/s (offered)', (r) => `${fmt.int(r.deliveredPerS)} (${fmt.int(r.rate)})`),
    row('pipeline-added latency p50 / p99', (r) => `${fmt.ms(r.p50)} / ${fmt.ms(r.p99)} ms`),
    row('Redis CPU per delivered update (all masters)', (r) => `${r.redisUsPerUpdate.toFixed(1)} µs`),
    row('Redis commands per delivered update', (r) => r.commandsPerUpdate.toFixed(1)),
    row('per master: CPU µs per update (share of commands)', (r) => r.perMaster.map((m) => `${m.usPerUpdate.toFixed(1)} (${(100 * m.commandShare).toFixed(1)} %)`).join(' / ')),
    row('forwarder / ingress CPU per 1,000', (r) => `${fmt.int(r.forwarderPer1000)} / ${fmt.int(r.ingressPer1000)} ms`),
    row('capacity: drain rate; Redis µs per update', (r) => (r.capacity ? `${fmt.int(r.capacity.rate)}/s; ${(r.capacity.redisPer1000).toFixed(0)} µs` : '-')),
    row('every acknowledged update once, in order', (r) => (r.correct ? 'yes' : 'NO')),
  ])}`);
  process.exit();
}

interface E2eSummary {
  redis: string;
  rate: number;
  deliveredPerS: number;
  p50: number;
  p99: number;
  /** Added for bench/e2e-sweep.ts's plots; the baseline is null without --direct. */
  p90: number;
  p999: number;
  max: number;
  directP50: number | null;
  directP99: number | null;
  duration: number;
  tenants: number;
  machine: ReturnType<typeof machineInfo>;
  redisUsPerUpdate: number;
  commandsPerUpdate: number;
  perMaster: Array<{ port: number; usPerUpdate: number; commandShare: number }>;
  forwarderPer1000: number;
  ingressPer1000: number;
  capacity: { rate: number; redisPer1000: number } | undefined;
  correct: boolean;
}
const CLUSTER = opts.redis === 'cluster';
const RATE = Number(opts.rate);
const DURATION = Number(opts.duration);
const WARMUP = Number(opts.warmup);
const TENANTS = Number(opts.tenants);
const CHATS = Number(opts.chats);
const HOSTS = Number(opts.hosts);
const FORWARDERS = Number(opts.forwarders);
const CONNECTIONS = Number(opts.connections);
const DIRECT = Number(opts.direct);
const CAPACITY = Number(opts.capacity);
if (WARMUP >= DURATION) throw new Error('--warmup must be shorter than --duration');

const now = (): number => performance.timeOrigin + performance.now();
/** Chat of update `id` (tenant = id mod TENANTS); bench/e2e-agents.ts uses the same formula. */
const chatOf = (id: number): number => 100_000 + (Math.floor(id / TENANTS) % CHATS);
type Usage = { cpu: NodeJS.CpuUsage; mem: NodeJS.MemoryUsage };
type UsageSource = { call<T = unknown>(method: string, arg?: unknown): Promise<T> };
const usageOf = async (c: UsageSource): Promise<Usage> => c.call('usage');

/** The forwarder replicas as one: calls go to each; CPU, memory and counters are summed. */
function forwarderFleet(replicas: ChildHandle[]): UsageSource {
  return {
    async call<T>(method: string, arg?: unknown): Promise<T> {
      const answers = await Promise.all(replicas.map((r) => r.call<Record<string, unknown>>(method, arg as Record<string, unknown> | undefined)));
      if (method === 'usage') {
        const us = answers as unknown as Usage[];
        const sum = (f: (u: Usage) => number): number => us.reduce((a, u) => a + f(u), 0);
        return { cpu: { user: sum((u) => u.cpu.user), system: sum((u) => u.cpu.system) }, mem: { ...us[0]!.mem, rss: sum((u) => u.mem.rss) } } as T;
      }
      if (method === 'metrics') {
        const counters: Record<string, number> = {};
        for (const a of answers as Array<{ counters: Record<string, number> }>) for (const [k, v] of Object.entries(a.counters)) counters[k] = (counters[k] ?? 0) + v;
        return { counters } as T;
      }
      return answers[0] as T;
    },
  };
}
const cpuS = (a: { cpu: NodeJS.CpuUsage }, b: { cpu: NodeJS.CpuUsage }): number => (b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system) / 1e6;

function percentiles(values: number[], ...ps: number[]): number[] {
  const sorted = Float64Array.from(values).sort();
  return ps.map((p) => (sorted.length ? (sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number) : Number.NaN));
}

const machine = machineInfo();
printMachine(machine);
console.log(`# ${fmt.int(RATE)} updates/s for ${DURATION} s (first ${WARMUP} s not measured) over ${fmt.int(TENANTS)} awake tenants × ${CHATS} chats, ` +
  `${HOSTS} agent hosts, ${FORWARDERS} forwarder process(es), ${CONNECTIONS} connections to the ingress`);

const master = randomBytes(24).toString('base64url');
const tenants = makeTenants(TENANTS, master, 'e2e-t');
const makeUpdate = makeUpdateFactory(1024);
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-bench-e2e-'));
const children: ChildHandle[] = [];
// One redis-server, or a 3-master cluster: the same figures either way (perMaster: one entry for a node).
const redisServer: {
  url: string; cpuSeconds(): Promise<number>; commandCalls(): Promise<Record<string, number>>; perMaster(): Promise<MasterFigures[]>; close(): Promise<void>;
  /** A single node's user/system split (a cluster's is not summed). */
  cpuSplit?: () => Promise<{ user: number; sys: number }>;
} = CLUSTER
  ? await startBenchCluster()
  : await (async () => {
    const single = await startBenchRedis('everysec');
    return {
      ...single,
      async perMaster() {
        const c = await single.commandCalls();
        return [{ port: single.port, cpuSeconds: await single.cpuSeconds(), calls: Object.entries(c).filter(([k]) => k !== 'info').reduce((a, [, v]) => a + v, 0) }];
      },
    };
  })();
try {
  const dynamo = await spawnChild(path.join(BENCH_DIR, 'lib/dynamo-server.ts'));
  children.push(dynamo);
  const endpoint = dynamo.ready.endpoint as string;
  const dynamoClient = createDynamoClient({ endpoint, region: 'us-east-1' });
  const table_ = `e2e-${randomBytes(4).toString('hex')}`;
  const registry = new TenantRegistry({ client: dynamoClient, table: table_ });
  await registry.ensureTable();
  for (let i = 0; i < TENANTS; i += 20) {
    await Promise.all(tenants.ids.slice(i, i + 20).map((id, k) => registry.create({
      tenant_id: id, bot_token: `${200_000_000 + i + k}:AA${randomBytes(25).toString('base64url').slice(0, 33)}`,
    })));
  }
  dynamoClient.destroy();

  // Agent hosts: one port per tenant, spread over the hosts; host 0 also plays Telegram.
  const perHost = Math.ceil(TENANTS / HOSTS);
  const hosts: ChildHandle[] = [];
  for (let h = 0; h < HOSTS; h++) {
    const count = Math.min(perHost, TENANTS - h * perHost);
    hosts.push(await spawnChild(path.join(BENCH_DIR, 'e2e-agents.ts'), { args: [String(count), h === 0 ? '1' : '0', String(TENANTS), String(CHATS)] }));
  }
  children.push(...hosts);
  const ports = hosts.flatMap((h) => h.ready.ports as number[]);
  const telegramPort = hosts[0]?.ready.telegramPort as number;

  // Every tenant awake: its endpoint is set, as the waker leaves it.
  const redis = createRedis({ url: redisServer.url, name: 'bench', cluster: CLUSTER });
  // One command per key: on a cluster the endpoints hash to every slot.
  await Promise.all(tenants.ids.map((id, i) => redis.set(endpointKey(id), `127.0.0.1:${ports[i] as number}`, 'EX', 86_400)));

  const ingress = await spawnChild(path.join(BENCH_DIR, 'ingress-server.ts'), {
    args: ['real', redisServer.url, master], cpuProfDir: opts.prof ? path.resolve(opts.prof, 'ingress') : undefined,
    env: CLUSTER ? { BENCH_REDIS_CLUSTER: '1' } : {},
  });
  children.push(ingress);
  // --forwarders replicas of the forwarder (production scales it on queue depth), used as one.
  const replicas: ChildHandle[] = [];
  for (let i = 0; i < FORWARDERS; i++) {
    const replica = await spawnChild(path.join(BENCH_DIR, 'e2e-forwarder.ts'), {
      cpuProfDir: opts.prof ? path.resolve(opts.prof, `forwarder-${i}`) : undefined,
      env: {
        REDIS_URL: redisServer.url, REDIS_CLUSTER: CLUSTER ? 'true' : 'false', DYNAMODB_ENDPOINT: endpoint, DYNAMODB_TABLE: table_, TELEGRAM_API_BASE: `http://127.0.0.1:${telegramPort}`,
        WEBHOOK_SECRET: master, WARM_POOL_SECRET: randomBytes(24).toString('base64url'), DATA_DIR: dataDir, S3_ENDPOINT: 'http://127.0.0.1:9', LOG_LEVEL: 'warn',
      },
    });
    children.push(replica);
    replicas.push(replica);
  }
  const forwarder = forwarderFleet(replicas);

  // The open-loop generator.
  const pool = new Pool(`http://127.0.0.1:${ingress.ready.port as number}`, { connections: CONNECTIONS, pipelining: 1 });
  let nextId = 1;
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let inflight = 0;
  let maxInflight = 0;
  const statuses: Record<string, number> = {};
  const ackLatencies: number[] = [];
  let measuring = false;
  const send = (): void => {
    const id = nextId++;
    const t = id % TENANTS;
    const stamp = now();
    const body = makeUpdate(id, chatOf(id), `s${stamp.toFixed(3)};`);
    sent++;
    inflight++;
    maxInflight = Math.max(maxInflight, inflight);
    pool.request({
      method: 'POST', path: `/tg/${tenants.ids[t] as string}`, body,
      headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': tenants.secrets[t] as string },
    }).then(async (res) => {
      await res.body.dump();
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      if (res.statusCode === 200) ok++;
      else failed++;
      if (measuring) ackLatencies.push(now() - stamp);
    }, () => {
      failed++;
    }).finally(() => inflight--);
  };

  const phase = async (seconds: number, fire: () => void): Promise<void> => {
    const start = performance.now();
    let fired = 0;
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const elapsed = (performance.now() - start) / 1000;
        const due = Math.floor(Math.min(elapsed, seconds) * RATE);
        while (fired < due) {
          fire();
          fired++;
        }
        if (elapsed >= seconds) {
          clearInterval(tick);
          resolve();
        }
      }, 2);
    });
  };

  const deliveredSoFar = async (): Promise<number> =>
    (await Promise.all(hosts.map((h) => h.call<{ delivered: number }>('stats', { from: 0, to: 0 })))).reduce((a, s) => a + s.delivered, 0);
  const waitDelivered = async (count: number, timeoutMs: number): Promise<number> => {
    const started = Date.now();
    let got = 0;
    while ((got = await deliveredSoFar()) < count && Date.now() - started < timeoutMs) await sleep(50);
    return got;
  };
  /** Sends `count` updates as fast as `CONNECTIONS` connections allow (closed loop). */
  const burst = async (count: number): Promise<void> => {
    const target = sent + count;
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (inflight < CONNECTIONS && sent < target) send();
        if (sent >= target && inflight === 0) resolve();
        else setTimeout(pump, 1);
      };
      pump();
    });
  };

  // Warm-up: one update per tenant (the forwarder's tenant cache and its connections to every
  // agent are what an awake tenant has); not measured.
  console.log('warm-up: one update per tenant…');
  await burst(TENANTS);
  if ((await waitDelivered(ok, 120_000)) < ok) throw new Error('warm-up updates were not all delivered');

  // Forwarder capacity: CAPACITY updates accepted while the forwarder is paused, then drained.
  let capacity: { rate: number; cpuPer1000: number; redisPer1000: number; cores: number } | undefined;
  if (CAPACITY > 0) {
    console.log(`forwarder capacity: ${fmt.int(CAPACITY)} updates queued, then drained…`);
    await forwarder.call('pause');
    const before = await deliveredSoFar();
    await burst(CAPACITY);
    const f0 = await usageOf(forwarder);
    const r0 = await redisServer.cpuSeconds();
    const c0 = await redisServer.commandCalls();
    const t0 = performance.now();
    await forwarder.call('resume');
    const got = await waitDelivered(before + CAPACITY, 300_000);
    const seconds = (performance.now() - t0) / 1000;
    const fcpu = cpuS(f0, await usageOf(forwarder));
    const rcpu = (await redisServer.cpuSeconds()) - r0;
    const c1 = await redisServer.commandCalls();
    const perUpdate = Object.keys(c1).filter((c) => c !== 'info' && c1[c] !== c0[c])
      .map((c) => [c, ((c1[c] as number) - (c0[c] ?? 0)) / CAPACITY] as const).sort((a, b) => b[1] - a[1]);
    if (got < before + CAPACITY) throw new Error(`capacity phase: only ${got - before} of ${CAPACITY} delivered`);
    capacity = { rate: CAPACITY / seconds, cpuPer1000: (fcpu / CAPACITY) * 1e6, redisPer1000: (rcpu / CAPACITY) * 1e6, cores: fcpu / seconds };
    console.log(`  drained ${fmt.int(CAPACITY)} in ${seconds.toFixed(1)} s: ${fmt.int(capacity.rate)} updates/s, forwarder ${capacity.cores.toFixed(2)} cores, ` +
      `${fmt.int(capacity.cpuPer1000)} ms CPU per 1,000 updates (redis ${fmt.int(capacity.redisPer1000)} ms)`);
    console.log(`  Redis commands per delivered update (scripts' inner commands included): ${perUpdate.map(([c, n]) => `${c} ${n.toFixed(2)}`).join(', ')}`);
  }
  const sentBeforeRun = sent;

  console.log('pipeline run…');
  const load = phase(DURATION, send);
  // --watch: every 2 s, what waits where (ready lists, live runners, the shards' jobs by state).
  // The services run with the default layout (DELIVERY_SHARDS unset); the queues are opened once.
  const { shards } = DeliveryLayout.of(DEFAULT_DELIVERY_SHARDS);
  const watchQueues = opts.watch ? shards.map((s) => new Queue(s.queue, { connection: redis, prefix: QUEUE_PREFIX })) : [];
  const watch = opts.watch ? setInterval(() => void (async () => {
    const [ready, runners, counts] = await Promise.all([
      Promise.all(shards.map((s) => redis.llen(readyKey(s.tag)))),
      Promise.all(shards.map((s) => redis.zcount(runnersKey(s.tag), Date.now(), '+inf'))),
      Promise.all(watchQueues.map((q) => q.getJobCounts('waiting', 'active', 'delayed'))),
    ]);
    const sum = (k: 'waiting' | 'active' | 'delayed'): number => counts.reduce((a, c) => a + (c[k] ?? 0), 0);
    console.log(`  watch: ready ${ready.reduce((a, b) => a + b, 0)} (max ${Math.max(...ready)}), runners ${runners.reduce((a, b) => a + b, 0)}, jobs waiting ${sum('waiting')} active ${sum('active')} delayed ${sum('delayed')}`);
  })().catch(() => undefined), 2000) : undefined;
  void load.finally(() => {
    clearInterval(watch);
    void Promise.allSettled(watchQueues.map((q) => q.close()));
  });
  await sleep(WARMUP * 1000);
  measuring = true;
  const windowFrom = now();
  const m0 = await redisServer.perMaster();
  const calls0 = await redisServer.commandCalls();
  const u0 = { ingress: await usageOf(ingress), forwarder: await usageOf(forwarder), hosts: await Promise.all(hosts.map(usageOf)), redis: await redisServer.cpuSeconds(), self: process.cpuUsage() };
  const split0 = await redisServer.cpuSplit?.();
  await load;
  const windowTo = now();
  measuring = false;
  const u1 = { ingress: await usageOf(ingress), forwarder: await usageOf(forwarder), hosts: await Promise.all(hosts.map(usageOf)), redis: await redisServer.cpuSeconds(), self: process.cpuUsage(u0.self) };
  const split1 = await redisServer.cpuSplit?.();
  const m1 = await redisServer.perMaster();
  const calls1 = await redisServer.commandCalls();
  while (inflight > 0) await sleep(10);

  // Everything acknowledged must reach an agent: wait for the backlog to drain.
  const drainStarted = Date.now();
  const delivered = await waitDelivered(ok, 120_000);
  const backlogS = (Date.now() - drainStarted) / 1000;
  const stats = await Promise.all(hosts.map((h) => h.call<{ latencies: number[]; delivered: number; deliveries: number; duplicates: number; outOfOrder: number; malformed: number; telegramCalls: number }>(
    'stats', { from: windowFrom, to: windowTo })));
  const latencies = stats.flatMap((s) => s.latencies);
  const duplicates = stats.reduce((a, s) => a + s.duplicates, 0);
  const outOfOrder = stats.reduce((a, s) => a + s.outOfOrder, 0);
  const malformed = stats.reduce((a, s) => a + s.malformed, 0);
  const telegramCalls = stats.reduce((a, s) => a + s.telegramCalls, 0);
  const { counters } = await forwarder.call<{ counters: Record<string, number> }>('metrics');
  const dead = await new DeadLetterStore({ redis }).count();
  const windowS = (windowTo - windowFrom) / 1000;
  const inWindow = latencies.length;
  const [p50, p90, p99, p999, max] = percentiles(latencies, 50, 90, 99, 99.9, 100) as [number, number, number, number, number];
  const [a50, a99] = percentiles(ackLatencies, 50, 99) as [number, number];
  const per1000 = (cpu: number): number => (cpu / inWindow) * 1000 * 1000; // ms of CPU per 1,000 updates
  const fwdCpu = cpuS(u0.forwarder, u1.forwarder);
  const ingCpu = cpuS(u0.ingress, u1.ingress);
  const redisCpu = u1.redis - u0.redis;
  const genCpu = (u1.self.user + u1.self.system) / 1e6;
  const hostsCpu = u1.hosts.reduce((a, u, i) => a + cpuS(u0.hosts[i]!, u), 0);
  const mem = { ingress: (await usageOf(ingress)).mem.rss, forwarder: (await usageOf(forwarder)).mem.rss, hosts: (await Promise.all(hosts.map(usageOf))).map((u) => u.mem.rss) };
  const totalCalls = m1.reduce((a, m, i) => a + m.calls - (m0[i]?.calls ?? 0), 0);
  const masters = m1.map((m, i) => ({
    port: m.port, usPerUpdate: ((m.cpuSeconds - (m0[i]?.cpuSeconds ?? 0)) / inWindow) * 1e6, commandShare: (m.calls - (m0[i]?.calls ?? 0)) / totalCalls,
  }));
  const windowCalls = Object.keys(calls1).filter((c) => c !== 'info' && calls1[c] !== calls0[c])
    .map((c) => [c, ((calls1[c] as number) - (calls0[c] ?? 0)) / inWindow] as const).sort((x, y) => y[1] - x[1]);
  console.log(`  pipeline window: Redis commands per delivered update: ${windowCalls.map(([c, n]) => `${c} ${n.toFixed(2)}`).join(', ')}`);
  if (opts.redis === 'single') {
    // µs of Redis CPU per call of each command over the whole run (a script's own time includes its inner commands').
    const stats = [...(await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/gm)]
      .map((m) => ({ cmd: m[1] as string, usec: Number(m[3]), perCall: Number(m[4]) })).sort((x, y) => y.usec - x.usec).slice(0, 12);
    console.log(`  Redis time by command over the run (share, µs per call): ${stats.map((c) => `${c.cmd} ${(100 * c.usec / stats.reduce((a, x) => a + x.usec, 0)).toFixed(0)} % ${c.perCall.toFixed(1)}`).join(', ')}`);
    if (split0 && split1) {
      // What the commands and scripts cost (user) against the socket reads and writes and the AOF (system).
      const user = split1.user - split0.user;
      const sys = split1.sys - split0.sys;
      console.log(`  pipeline window: Redis CPU ${fmt.int((user / inWindow) * 1e6)} µs user + ${fmt.int((sys / inWindow) * 1e6)} µs system per update (${((100 * user) / (user + sys)).toFixed(0)} % user)`);
    }
  }
  const redisMem = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);

  // Baseline: the same payloads straight to the agents (one HTTP hop), same rate.
  let direct: number[] = [];
  if (DIRECT > 0) {
    console.log('direct baseline…');
    let d = 0;
    const directFrom = now();
    await phase(DIRECT, () => {
      const id = ++d;
      const t = id % TENANTS;
      const text = `s${now().toFixed(3)};${makeUpdate(id, chatOf(id)).slice(0, 900)}`;
      request(`http://127.0.0.1:${ports[t] as number}/webhook`, {
        method: 'POST', body: JSON.stringify({ message: text }), headers: { 'content-type': 'application/json', 'x-idempotency-key': `direct-${t}:${id}` },
      }).then((res) => res.body.dump(), () => undefined);
    });
    await sleep(1000);
    direct = (await Promise.all(hosts.map((h) => h.call<{ latencies: number[] }>('stats', { from: directFrom, to: now() })))).flatMap((s) => s.latencies);
  }
  const [d50, d99] = percentiles(direct, 50, 99) as [number, number];

  console.log(`\npipeline run: sent ${fmt.int(sent - sentBeforeRun)} (${fmt.int((sent - sentBeforeRun) / DURATION)}/s); all phases: sent ${fmt.int(sent)}, acknowledged 200: ${fmt.int(ok)}, other answers/errors: ${failed} ${JSON.stringify(statuses)}, ` +
    `max in flight at the ingress ${maxInflight}`);
  console.log(`delivered to agents (unique): ${fmt.int(delivered)}${delivered === ok ? ' = acknowledged' : ` ≠ acknowledged ${fmt.int(ok)}`}, ` +
    `deliveries repeated (before the agent's idempotency): ${duplicates}, out of chat order: ${outOfOrder}, malformed: ${malformed}, dead letters: ${dead}, ` +
    `sendMessage calls: ${fmt.int(telegramCalls)}; backlog after the load stopped drained in ${backlogS.toFixed(1)} s`);
  console.log(`forwarder counters: ${JSON.stringify(counters)}\n`);
  console.log(table(['measure (window of ' + windowS.toFixed(0) + ' s, ' + fmt.int(inWindow) + ' deliveries)', 'value'], [
    ['pipeline-added latency p50 (ingress in → agent in)', `${fmt.ms(p50)} ms`],
    ['pipeline-added latency p90 / p99 / p99.9 / max', `${fmt.ms(p90)} / ${fmt.ms(p99)} / ${fmt.ms(p999)} / ${fmt.ms(max)} ms`],
    ['baseline: one direct HTTP hop to the agent p50 / p99', DIRECT > 0 ? `${fmt.ms(d50)} / ${fmt.ms(d99)} ms` : '-'],
    ['ratio pipeline / direct hop p50 / p99', DIRECT > 0 ? `${fmt.ratio(p50 / d50)} / ${fmt.ratio(p99 / d99)}` : '-'],
    ['ingress acknowledgement (200) p50 / p99', `${fmt.ms(a50)} / ${fmt.ms(a99)} ms`],
    ['forwarder CPU per 1,000 updates', `${fmt.int(per1000(fwdCpu))} ms (${(fwdCpu / windowS).toFixed(2)} cores)`],
    ['forwarder capacity (queued backlog drained): updates/s; CPU per 1,000', capacity ? `${fmt.int(capacity.rate)}/s at ${capacity.cores.toFixed(2)} cores; ${fmt.int(capacity.cpuPer1000)} ms (redis ${fmt.int(capacity.redisPer1000)} ms)` : '-'],
    ['ingress CPU per 1,000 updates', `${fmt.int(per1000(ingCpu))} ms (${(ingCpu / windowS).toFixed(2)} cores)`],
    ['redis CPU per 1,000 updates', `${fmt.int(per1000(redisCpu))} ms (${(redisCpu / windowS).toFixed(2)} cores)`],
    ['redis per master: CPU µs per update / share of commands', masters.map((m) => `${m.port}: ${m.usPerUpdate.toFixed(1)} µs / ${(100 * m.commandShare).toFixed(1)} %`).join('; ')],
    ['load generator CPU', `${(genCpu / windowS).toFixed(2)} cores`],
    ['agent hosts CPU (agents + Telegram stand-in)', `${fmt.int(per1000(hostsCpu))} ms per 1,000 updates (${(hostsCpu / windowS).toFixed(2)} cores)`],
    ['whole machine: every process above', `${((fwdCpu + ingCpu + redisCpu + genCpu + hostsCpu) / windowS).toFixed(2)} cores of 2`],
    ['memory RSS: ingress / forwarder / agent hosts; redis used_memory', `${fmt.mib(mem.ingress)} / ${fmt.mib(mem.forwarder)} / ${mem.hosts.map(fmt.mib).join(' + ')}; ${fmt.mib(redisMem)}`],
  ]));
  const rateOk = inWindow / windowS >= RATE * 0.98;
  console.log(`\ntargets: sustained ${fmt.int(RATE)}/s ${rateOk ? 'met' : `NOT met (${fmt.int(inWindow / windowS)}/s delivered)`}; p50 ≤ 3 ms ${p50 <= 3 ? 'met' : 'NOT met'}; ` +
    `p99 ≤ 20 ms ${p99 <= 20 ? 'met' : 'NOT met'}; every acknowledged update delivered once, in chat order: ${delivered === ok && outOfOrder === 0 ? 'yes' : 'NO'}`);
  if (delivered !== ok || outOfOrder) process.exitCode = 1;
  if (opts['json-out']) {
    const summary: E2eSummary = {
      redis: opts.redis, rate: RATE, deliveredPerS: inWindow / windowS, p50, p99, redisUsPerUpdate: (redisCpu / inWindow) * 1e6,
      commandsPerUpdate: totalCalls / inWindow, perMaster: masters, forwarderPer1000: per1000(fwdCpu), ingressPer1000: per1000(ingCpu),
      capacity: capacity ? { rate: capacity.rate, redisPer1000: capacity.redisPer1000 } : undefined, correct: delivered === ok && outOfOrder === 0,
      p90, p999, max, directP50: DIRECT > 0 ? d50 : null, directP99: DIRECT > 0 ? d99 : null, duration: DURATION, tenants: TENANTS, machine,
    };
    writeFileSync(opts['json-out'], JSON.stringify(summary));
  }
  await pool.close();
  await closeRedis(redis);
} finally {
  for (const c of children.reverse()) await c.stop().catch(() => undefined);
  await redisServer.close();
  rmSync(dataDir, { recursive: true, force: true });
}
