/**
 * Where a warm wake's time goes, segment by segment: the platform of bench/wake.ts (one process:
 * ingress, forwarder, waker, pool-keeper, local runtime; dynalite + s3rver in a child; a Telegram
 * stand-in), warm wakes one at a time and in bursts, each wake's timeline stamped at every hop.
 *
 *   node --import tsx bench/wake-trace.ts [--singles 10] [--bursts 2] [--burst 20] [--variants base] [--state 65536]
 *
 * Stamps (ms, one clock): in this process by wrapping the wake path's methods (the update's send
 * and the ingress's answer, the wake job's add, the waker's start, registry read, presign, the
 * claim POST and its answer, the endpoint, the announcement, the delivery); in the shim from its
 * log lines (claim taken, restore, agent spawned, agent ready); in the agent
 * (bench/wake-agent.mjs: birth, listening, arrival). Per burst also the CPU each kind of process
 * used (/proc, clock ticks) and this process's event-loop delay: on a shared two-core machine the
 * CPU-seconds and the count of hops say more than wall times.
 *
 * --variants: shim settings compared in the same run, alternating per round (name=ENV=value,...;
 * `base` is the shim as configured). Each variant's env goes to the warm members started for its rounds.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import pino from 'pino';
import { Pool } from 'undici';
import { BENCH_DIR, fmt, machineInfo, printMachine, sleep, spawnChild, startBenchRedis, table, type ChildHandle } from './lib/common.js';
import { makeUpdateFactory } from './lib/updates.js';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { createClients } from '../lib/platform/clients.js';
import { startPlatform } from '../services/platform/platform.js';
import { deriveWebhookSecret } from '../lib/webhook-secret.js';
import { IncarnationIndex } from '../lib/tenants/incarnation-index.js';
import { Endpoints } from '../lib/delivery/endpoints.js';
import { TenantRegistry } from '../lib/registry/tenant-registry.js';
import { StateStore } from '../lib/state/state-store.js';
import { StateUrlLedger } from '../lib/state/state-urls.js';
import { Waker } from '../services/waker/waker.js';
import { ShimProcess } from '../lib/runtime/local-process.js';
import { LocalRuntime } from '../lib/runtime/local-runtime.js';
import { AgentClient } from '../services/forwarder/agent-client.js';
import { packState } from '../agent/state-archive.js';
import { uploadState } from '../agent/state-transfer.js';
import Database from 'better-sqlite3';

const { values: opts } = parseArgs({
  options: {
    singles: { type: 'string', default: '10' },
    bursts: { type: 'string', default: '2' },
    burst: { type: 'string', default: '20' },
    variants: { type: 'string', default: 'base' },
    /** Bytes of saved state (a brain.db) each tenant restores at its wake, as a tenant that was awake before; 0: none (a first wake). */
    state: { type: 'string', default: '65536' },
    /** Keep the data directory, with each claimed shim's log (shim-<tenant>.log: the members' own directories go with their sleep). */
    'keep-data': { type: 'boolean', default: false },
    /** Write a CPU profile of this process (the platform) per burst into this directory. */
    'cpu-prof': { type: 'string' },
  },
});
const SINGLES = Number(opts.singles);
const BURSTS = Number(opts.bursts);
const BURST = Number(opts.burst);
const STATE_BYTES = Number(opts.state);
if (!Number.isInteger(STATE_BYTES) || STATE_BYTES < 0) throw new Error('--state: a number of bytes, 0 or more');
/** `name` or `name=K=V,K=V`: extra shim environment per variant. */
const VARIANTS = (opts.variants ?? 'base').split(';').filter(Boolean).map((spec) => {
  const [name, ...pairs] = spec.split('=');
  const rest = spec.slice((name ?? '').length + 1);
  const env: Record<string, string> = {};
  if (pairs.length) for (const kv of rest.split(',')) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return { name: name as string, env };
});
const now = (): number => performance.timeOrigin + performance.now();

/** A state archive of the agent's default state path (memory/brain.db) holding about `bytes` of rows. */
async function packSeedState(dir: string, bytes: number): Promise<string> {
  const root = path.join(dir, 'root');
  mkdirSync(path.join(root, 'memory'), { recursive: true });
  const db = new Database(path.join(root, 'memory/brain.db'));
  db.exec('CREATE TABLE memories (id INTEGER PRIMARY KEY, text TEXT)');
  const insert = db.prepare('INSERT INTO memories (text) VALUES (?)');
  for (let n = 0; n * 200 < bytes; n++) insert.run(randomBytes(150).toString('base64'));
  db.close();
  const packed = await packState({ root, paths: [{ path: 'memory/brain.db', kind: 'sqlite' }], scratchDir: path.join(dir, 'scratch'), maxBytes: 1 << 30 });
  return packed.file;
}

// ------------------------------------------------------------------------------------------------
// Stamps: the first time each label is seen per tenant (every tenant is woken once).
const stamps = new Map<string, Map<string, number>>();
function stamp(tenant: string | undefined, label: string, t = now()): void {
  if (!tenant) return;
  let m = stamps.get(tenant);
  if (!m) stamps.set(tenant, (m = new Map()));
  if (!m.has(label)) m.set(label, t);
}
const podOf = new Map<string, string>();

/** Wraps an async method: stamps `<label>` when it starts (if `start`), `<label>.done` when it settles. */
function wrap(proto: object, name: string, labelOrFn: string | ((tenant: string | undefined) => string), tenantOf: (args: unknown[], self: unknown) => string | undefined, start = false): void {
  const original = (proto as Record<string, unknown>)[name] as (...a: unknown[]) => Promise<unknown>;
  if (typeof original !== 'function') throw new Error(`cannot trace: no method ${name}`);
  (proto as Record<string, unknown>)[name] = function (this: unknown, ...args: unknown[]): Promise<unknown> {
    const tenant = tenantOf(args, this);
    const label = typeof labelOrFn === 'string' ? labelOrFn : labelOrFn(tenant);
    if (start) stamp(tenant, label);
    const p = original.apply(this, args);
    return Promise.resolve(p).finally(() => stamp(tenant, `${label}.done`));
  };
}
const first = (args: unknown[]): string | undefined => (typeof args[0] === 'string' ? args[0] : undefined);
const tenantIdOf = (args: unknown[]): string | undefined => (args[0] as { tenant_id?: string } | undefined)?.tenant_id;
wrap(Queue.prototype, 'add', 'wake-job.add', (args) => (args[0] === 'wake' ? (args[1] as { t?: string }).t : undefined), true);
wrap(Waker.prototype, 'wake', 'waker', first, true);
// The forwarder reads the record too (the bot token, through its cache): only the waker's read counts.
wrap(TenantRegistry.prototype, 'get', (t) => (t && stamps.get(t)?.has('waker') ? 'registry.get' : 'registry.get.other'), first, true);
wrap(TenantRegistry.prototype, 'mutate', 'registry.mutate', first, true);
wrap(StateStore.prototype, 'presign', 'presign', tenantIdOf, true);
wrap(StateUrlLedger.prototype, 'issued', 'ledger', first, true);
wrap(LocalRuntime.prototype, 'start', 'runtime.start', tenantIdOf, true);
wrap(ShimProcess.prototype, 'claim', 'claim', (args, self) => {
  const t = (args[1] as { tenant_id?: string }).tenant_id;
  if (t) podOf.set(t, (self as ShimProcess).name);
  return t;
}, true);
// The waker publishes the endpoint and the announcement in one pipeline (Endpoints.publish).
wrap(Endpoints.prototype, 'publish', 'endpoint.publish', first, true);
wrap(Endpoints.prototype, 'promoteParked', 'promote', first, true);
wrap(AgentClient.prototype, 'deliver', 'deliver', (args) => (args[0] as { tenantId?: string }).tenantId, true);

// Variant env for the warm members the pool-keeper starts (the runtime's per-shim environment).
let variantEnv: Record<string, string> = {};
const proto = LocalRuntime.prototype as unknown as { baseEnv: () => Record<string, string> };
const baseEnv = proto.baseEnv;
proto.baseEnv = function (this: unknown): Record<string, string> {
  return { ...baseEnv.call(this), ...variantEnv };
};

// ------------------------------------------------------------------------------------------------
// CPU per kind of process (clock ticks of /proc/<pid>/stat, this process's descendants).
const TICK_MS = 10;
type Kind = 'platform' | 'stores' | 'shims' | 'agents' | 'other';
function cpuSnapshot(): Map<number, { kind: Kind; ticks: number }> {
  const procs = new Map<number, { ppid: number; ticks: number; cmd: string }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      procs.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]), cmd });
    } catch {
      // gone
    }
  }
  const out = new Map<number, { kind: Kind; ticks: number }>();
  const mine = (pid: number): boolean => {
    for (let p = pid, n = 0; p > 1 && n < 20; p = procs.get(p)?.ppid ?? 0, n++) if (p === process.pid) return true;
    return false;
  };
  for (const [pid, p] of procs) {
    if (!mine(pid)) continue;
    const kind: Kind = pid === process.pid ? 'platform' : p.cmd.includes('agent/shim.ts') ? 'shims' : p.cmd.includes('wake-agent.mjs') ? 'agents'
      : p.cmd.includes('dynamo-server') ? 'stores' : 'other';
    out.set(pid, { kind, ticks: p.ticks });
  }
  return out;
}
function cpuDelta(a: Map<number, { kind: Kind; ticks: number }>, b: Map<number, { kind: Kind; ticks: number }>): Record<Kind, number> {
  const out: Record<Kind, number> = { platform: 0, stores: 0, shims: 0, agents: 0, other: 0 };
  for (const [pid, x] of b) out[x.kind] += (x.ticks - (a.get(pid)?.ticks ?? 0)) * TICK_MS;
  return out;
}

/** Consecutive segments of the critical path: each from one stamp to the next. */
const SEGMENTS: Array<[string, string, string]> = [
  ['sent', 'ingress.done', 'ingress accepts (HTTP answer)'],
  ['ingress.done', 'wake-job.add', 'drain: no endpoint → wake job added'],
  ['wake-job.add', 'waker', 'wake job → waker runs it (BullMQ)'],
  ['waker', 'registry.get.done', 'waker: lock, progress, registry read'],
  ['registry.get.done', 'presign.done', 'presign'],
  ['presign.done', 'runtime.start', 'ledger write'],
  ['runtime.start', 'claim', 'runtime: checks, member health probe'],
  ['claim', 'shim.claimed', 'claim POST → shim has it'],
  ['shim.claimed', 'shim.restore', 'shim: mkdir, checkpointer'],
  ['shim.restore', 'shim.restored', 'state restore (S3 GET, unpack)'],
  ['shim.restored', 'shim.spawned', 'prepare, port check, spawn'],
  ['shim.spawned', 'agent.born', 'spawn → agent process born (setpriv, sh, node)'],
  ['agent.born', 'agent.listening', "agent's own start (subtracted)"],
  ['agent.listening', 'shim.ready', 'agent listening → shim sees it ready (probe)'],
  ['shim.ready', 'claim.done', 'claim answer reaches the runtime'],
  ['claim.done', 'endpoint.publish', 'runtime.start → waker publishes (waits for the provisioning write?)'],
  ['endpoint.publish', 'endpoint.publish.done', 'endpoint set + announcement (one pipeline)'],
  ['endpoint.publish.done', 'deliver', 'drain wakes up, reads endpoint → deliver'],
  ['deliver', 'agent.arrival', 'delivery POST → agent has it'],
];

interface Round { variant: string; kind: 'single' | 'burst'; tenants: string[]; cpu?: Record<Kind, number>; loop?: { p50: number; p99: number; max: number }; redisCpuMs?: number }

// ------------------------------------------------------------------------------------------------
const machine = machineInfo();
printMachine(machine);
console.log(`# warm wakes: ${SINGLES} one at a time, ${BURSTS} burst(s) of ${BURST}, per variant: ${VARIANTS.map((v) => v.name).join(', ')}`);
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-bench-wake-trace-'));
const results = path.join(dataDir, 'agent-results.jsonl');
writeFileSync(results, '');
const children: ChildHandle[] = [];
const redisServer = await startBenchRedis('everysec');
try {
  const stores = await spawnChild(path.join(BENCH_DIR, 'lib/dynamo-server.ts'), { args: ['s3'] });
  children.push(stores);
  const telegram = await spawnChild(path.join(BENCH_DIR, 'e2e-agents.ts'), { args: ['0', '1', '1', '1'] });
  children.push(telegram);
  const webhookSecret = randomBytes(24).toString('base64url');
  const warmPoolSecret = randomBytes(24).toString('base64url');
  const config = loadConfig({
    REDIS_URL: redisServer.url, DYNAMODB_ENDPOINT: stores.ready.endpoint as string, DYNAMODB_TABLE: `wt-${randomBytes(4).toString('hex')}`,
    S3_ENDPOINT: stores.ready.s3Endpoint as string, S3_BUCKET: `wt-${randomBytes(4).toString('hex')}`,
    TELEGRAM_API_BASE: `http://127.0.0.1:${telegram.ready.telegramPort as number}`, WEBHOOK_SECRET: webhookSecret, WARM_POOL_SECRET: warmPoolSecret,
    DATA_DIR: dataDir, INGRESS_PORT: '0', ADMIN_PORT: '0', WARM_POOL_TARGET: '0', LOG_LEVEL: 'info',
    AGENT_COMMAND: `${process.execPath} ${path.join(BENCH_DIR, 'wake-agent.mjs')} ${results}`,
    IDLE_CHECK_INTERVAL_S: '86400', RECONCILE_INTERVAL_S: '86400',
    // The agent appends to a results file outside its workspace: the sandbox would not let it.
    AGENT_SANDBOX: 'off',
  });
  const log = createLogger({ service: 'platform', level: 'info', destination: pino.destination({ dest: path.join(dataDir, 'platform.log'), sync: true }) });
  const clients = createClients(config, { name: 'bench' });
  await clients.registry.ensureTable();
  const perVariant = SINGLES + BURSTS * BURST;
  const ids = new Map(VARIANTS.map((v) => [v.name, Array.from({ length: perVariant }, (_, i) => `wt-${v.name}-${String(i).padStart(4, '0')}`)]));
  const all = [...ids.values()].flat();
  for (let i = 0; i < all.length; i += 20) {
    await Promise.all(all.slice(i, i + 20).map((id, k) => clients.registry.create({
      tenant_id: id, bot_token: `${300_000_000 + i + k}:AA${randomBytes(25).toString('base64url').slice(0, 33)}`,
    })));
  }
  if (STATE_BYTES > 0) {
    await clients.state.ensureBucket();
    const file = await packSeedState(path.join(dataDir, 'seed'), STATE_BYTES);
    for (let i = 0; i < all.length; i += 20) {
      await Promise.all(all.slice(i, i + 20).map(async (id) => uploadState((await clients.state.presign(await clients.registry.require(id))).putUrl, file)));
    }
    stamps.clear(); // the seeding's presigns are not the wakes'
    console.log(`# every tenant has ${fmt.int(statSync(file).size)} bytes of saved state (a ${fmt.int(STATE_BYTES)}-byte brain.db) to restore`);
  }
  const platform = await startPlatform({ config, log, clients, secrets: { webhookSecret, warmPoolSecret } });
  const ingress = new Pool(`http://127.0.0.1:${platform.ingress.port}`, { connections: 32 });
  const makeUpdate = makeUpdateFactory(512);
  let updateId = 1;

  const fillPool = async (n: number): Promise<void> => {
    platform.poolKeeper.setTarget(n);
    platform.poolKeeper.start();
    const deadline = Date.now() + 300_000;
    while ((await platform.runtime.countReadyWarm()) < n) {
      if (Date.now() > deadline) throw new Error('warm pool did not fill');
      await sleep(100);
    }
    // Nothing refills during the measured wakes (production refills on other nodes).
    await platform.poolKeeper.close();
    await sleep(1500); // the members' start-up CPU settles
  };
  const received = (): Map<string, { sent: number; arrival: number; born: number; listening: number }> => {
    const out = new Map<string, { sent: number; arrival: number; born: number; listening: number }>();
    for (const line of readFileSync(results, 'utf8').split('\n')) {
      if (!line) continue;
      const r = JSON.parse(line) as { tenant: string; sent: number; arrival: number; born: number; listening: number };
      if (!out.has(r.tenant)) out.set(r.tenant, r);
    }
    return out;
  };
  const shimStamps = (tenant: string): void => {
    const pod = podOf.get(tenant);
    const file = pod && path.join(dataDir, 'warm', pod, 'agent.log');
    if (!file || !existsSync(file)) return;
    if (opts['keep-data']) copyFileSync(file, path.join(dataDir, `shim-${tenant}.log`));
    const marks: Array<[RegExp, string]> = [[/^claimed/, 'shim.claimed'], [/^restoring state/, 'shim.restore'], [/^(no saved state|state restored)/, 'shim.restored'],
      [/^agent started/, 'shim.spawned'], [/^agent ready/, 'shim.ready']];
    for (const l of readFileSync(file, 'utf8').split('\n')) {
      let x: { time?: number | string; msg?: string };
      try {
        x = JSON.parse(l) as { time?: number | string; msg?: string };
      } catch {
        continue;
      }
      const t = typeof x.time === 'string' ? Date.parse(x.time) : x.time;
      for (const [re, label] of marks) if (x.msg && re.test(x.msg) && t !== undefined) stamp(tenant, label, t);
    }
  };

  // The secret the ingress verifies against: from the identity it reads (the incarnation index).
  const index = new IncarnationIndex(clients.redis);
  // The janitor publishes each record's incarnation at start-up: wait until every tenant's is there.
  const secretOf = new Map<string, string>();
  for (const deadline = Date.now() + 60_000; secretOf.size < all.length && Date.now() < deadline; await sleep(200)) {
    for (const t of all) {
      const who = await index.identity(t);
      if (who.incarnation !== undefined) secretOf.set(t, deriveWebhookSecret(webhookSecret, who));
    }
  }
  if (secretOf.size < all.length) throw new Error('the incarnation index did not fill');
  await sleep(1100); // the ingress's own negative lookups (1 s) expire

  /** Wakes `tenants` at once; resolves when every agent has its message. */
  const wakeAll = async (tenants: string[]): Promise<void> => {
    await Promise.all(tenants.map(async (tenant, i) => {
      const id = updateId++;
      const sent = now();
      stamp(tenant, 'sent', sent);
      const res = await ingress.request({
        method: 'POST', path: `/tg/${tenant}`, body: makeUpdate(id, 5000 + i, `s${sent.toFixed(3)};`),
        headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secretOf.get(tenant) as string },
      });
      await res.body.dump();
      stamp(tenant, 'ingress.done');
      if (res.statusCode !== 200) throw new Error(`ingress answered ${res.statusCode} for ${tenant}`);
    }));
    const deadline = Date.now() + 120_000;
    let got = received();
    while (tenants.some((t) => !got.has(t)) && Date.now() < deadline) {
      await sleep(20);
      got = received();
    }
    for (const t of tenants) {
      const r = got.get(t);
      if (!r) throw new Error(`${t} never received its message`);
      stamp(t, 'agent.born', r.born);
      stamp(t, 'agent.listening', r.listening);
      stamp(t, 'agent.arrival', r.arrival);
      shimStamps(t);
    }
  };

  const rounds: Round[] = [];
  const next = new Map(VARIANTS.map((v) => [v.name, 0]));
  const take = (v: string, n: number): string[] => {
    const i = next.get(v) as number;
    next.set(v, i + n);
    return (ids.get(v) as string[]).slice(i, i + n);
  };
  // Singles, then bursts, alternating variants so the machine's drift hits each alike.
  const plan: Array<{ kind: 'single' | 'burst'; n: number }> = [
    ...Array.from({ length: SINGLES }, () => ({ kind: 'single' as const, n: 1 })), ...Array.from({ length: BURSTS }, () => ({ kind: 'burst' as const, n: BURST })),
  ];
  for (const step of plan) {
    for (const v of VARIANTS) {
      variantEnv = v.env;
      await fillPool(step.n);
      const tenants = take(v.name, step.n);
      const loop = monitorEventLoopDelay({ resolution: 5 });
      const cpu0 = cpuSnapshot();
      const r0 = await redisServer.cpuSeconds();
      const profiler = step.kind === 'burst' && opts['cpu-prof'] ? new Session() : undefined;
      if (profiler) {
        profiler.connect();
        await profiler.post('Profiler.enable');
        await profiler.post('Profiler.start');
      }
      loop.enable();
      await wakeAll(tenants);
      loop.disable();
      if (profiler) {
        const { profile } = await profiler.post('Profiler.stop');
        writeFileSync(path.join(opts['cpu-prof'] as string, `platform-${v.name}-${rounds.length}.cpuprofile`), JSON.stringify(profile));
        profiler.disconnect();
      }
      const round: Round = { variant: v.name, kind: step.kind, tenants };
      if (step.kind === 'burst') {
        round.cpu = cpuDelta(cpu0, cpuSnapshot());
        round.redisCpuMs = ((await redisServer.cpuSeconds()) - r0) * 1000;
        round.loop = { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 };
        console.log(`${v.name} burst of ${step.n}: platform part p50 ${fmt.ms(p(platformPart(tenants), 50))} ms; CPU ms ${JSON.stringify(round.cpu)} redis ${fmt.ms(round.redisCpuMs)}; event loop delay p99 ${fmt.ms(round.loop.p99)} max ${fmt.ms(round.loop.max)} ms`);
      }
      rounds.push(round);
      await Promise.all(tenants.map((t) => platform.lifecycle.sleep(t)));
    }
  }
  report(rounds);
  await ingress.close();
  await platform.close();
  await clients.close();
} finally {
  for (const c of children.reverse()) await c.stop().catch(() => undefined);
  await redisServer.close();
  if (opts['keep-data']) console.log(`data: ${dataDir}`);
  else rmSync(dataDir, { recursive: true, force: true });
}

function p(values: number[], q: number): number {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.max(0, Math.ceil((q / 100) * s.length) - 1))] as number) : Number.NaN;
}
function at(t: string, label: string): number {
  return stamps.get(t)?.get(label) ?? Number.NaN;
}
function platformPart(tenants: string[]): number[] {
  return tenants.map((t) => at(t, 'agent.arrival') - at(t, 'sent') - (at(t, 'agent.listening') - at(t, 'agent.born')));
}


function report(rounds: Round[]): void {
  const header = ['segment', ...VARIANTS.flatMap((v) => [`${v.name} single p50`, `${v.name} burst p50`, `${v.name} burst p99`])];
  const rows = SEGMENTS.map(([a, b, name]) => [name, ...VARIANTS.flatMap((v) => {
    const single = rounds.filter((r) => r.variant === v.name && r.kind === 'single').flatMap((r) => r.tenants);
    const burst = rounds.filter((r) => r.variant === v.name && r.kind === 'burst').flatMap((r) => r.tenants);
    const seg = (ts: string[]): number[] => ts.map((t) => at(t, b) - at(t, a));
    return [fmt.ms(p(seg(single), 50)), fmt.ms(p(seg(burst), 50)), fmt.ms(p(seg(burst), 99))];
  })]);
  const totals = VARIANTS.flatMap((v) => {
    const single = rounds.filter((r) => r.variant === v.name && r.kind === 'single').flatMap((r) => r.tenants);
    const burst = rounds.filter((r) => r.variant === v.name && r.kind === 'burst').flatMap((r) => r.tenants);
    return [`${fmt.ms(p(platformPart(single), 50))} / p99 ${fmt.ms(p(platformPart(single), 99))}`, fmt.ms(p(platformPart(burst), 50)), fmt.ms(p(platformPart(burst), 99))];
  });
  rows.push(['(not a segment) provisioning write done − claim answer', ...VARIANTS.flatMap((v) => {
    const of = (kind: 'single' | 'burst'): number[] => rounds.filter((r) => r.variant === v.name && r.kind === kind).flatMap((r) => r.tenants).map((t) => at(t, 'registry.mutate.done') - at(t, 'claim.done'));
    return [fmt.ms(p(of('single'), 50)), fmt.ms(p(of('burst'), 50)), fmt.ms(p(of('burst'), 99))];
  })]);
  rows.push(['PLATFORM PART (arrival − sent − agent start)', ...totals]);
  rows.push(['(waker logs "tenant awake", after the delivery)', ...VARIANTS.flatMap(() => ['', '', ''])]);
  console.log(`\n${table(header, rows)}`);
  const cpuRows = rounds.filter((r) => r.kind === 'burst').map((r) => [r.variant, ...(['platform', 'stores', 'shims', 'agents', 'other'] as const).map((k) => fmt.ms((r.cpu as Record<Kind, number>)[k])),
    fmt.ms(r.redisCpuMs ?? NaN), `${fmt.ms(r.loop?.p50 ?? NaN)} / ${fmt.ms(r.loop?.p99 ?? NaN)} / ${fmt.ms(r.loop?.max ?? NaN)}`]);
  console.log(`\nper burst: CPU ms by process kind (clock ticks, ±10 ms each) and the platform's event-loop delay\n`);
  console.log(table(['variant', 'platform', 'stores (dynalite+s3rver)', 'shims', 'agents', 'other', 'redis', 'loop delay p50 / p99 / max ms'], cpuRows));
}
