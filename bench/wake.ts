/**
 * Wake benchmark: sleeping tenants woken by one message each, with a warm pool big enough for every
 * wake and with an empty pool (cold), through the whole platform as `npm start` runs it (ingress,
 * forwarder, waker, pool-keeper, local runtime with one shim process per tenant).
 *
 *   node --import tsx bench/wake.ts [--tenants 200] [--wave 20] [--modes warm,cold]
 *   node --import tsx bench/wake.ts --modes demand [--fixed 2] [--adaptive 0-8] [--hit-target 0.95]
 *   node --import tsx bench/wake.ts --modes demand-standin [--fixed 2,8] [--standin-start-ms 5000]
 *
 * `demand` (bench/lib/wake-demand.ts): wakes at a rate that changes by phase (steady, bursts, a
 * lull), the same arrivals against a fixed pool and the pool that follows demand, in the same run:
 * hit rate, wake latency p50/p99 and the member-seconds each pool held. `demand-standin`
 * (bench/lib/wake-demand-standin.ts): the same arrivals and the real pool-keeper on Redis, with
 * stand-in members that start elsewhere (no CPU here), every pool at once: the pool's policy alone.
 *
 * Measured per tenant: from the update's send (stamped in its text, a moment before it reaches the
 * ingress) to the agent receiving it, minus the agent's own start (its process birth to listening,
 * reported by the agent). What remains is the platform's part: the drain finding no endpoint, the
 * wake job, the claim (warm) or the shim's start (cold), state restore from S3, readiness, the
 * endpoint, promoting the parked drain and the delivery.
 *
 * The agent is bench/wake-agent.mjs (plain JavaScript, fast to start; see there). A local warm
 * member is a shim process (~100 MB with tsx): two hundred shims plus two hundred agents do not fit
 * beside other work, so tenants are woken in waves of --wave at once, the pool holding --wave ready
 * members before each warm wave ("big enough": every wake of the wave finds one); after a wave its
 * tenants are put back to sleep. Warm and cold waves alternate, so the machine's drift hits both.
 * During a warm wave the pool-keeper is paused (unless --refill-during-wave): replacing the claimed
 * members means starting --wave shims (node + tsx, about a CPU-second each) on the same two cores
 * as the wakes, where a production pool refills on other nodes; the refill happens between waves.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { Pool } from 'undici';
import { BENCH_DIR, fmt, machineInfo, printMachine, sleep, spawnChild, startBenchRedis, table, type ChildHandle } from './lib/common.js';
import { makeUpdateFactory } from './lib/updates.js';
import { loadConfig } from '../lib/config.js';
import { createLogger } from '../lib/logger.js';
import { createClients } from '../lib/platform/clients.js';
import { startPlatform } from '../services/platform/platform.js';
import { deriveWebhookSecret } from '../lib/webhook-secret.js';
import { Endpoints } from '../lib/delivery/endpoints.js';
import { StateUrlLedger } from '../lib/state/state-urls.js';
import { TenantRegistry } from '../lib/registry/tenant-registry.js';
import { TenantCache } from '../lib/tenants/tenant-cache.js';
import { IncarnationIndex } from '../lib/tenants/incarnation-index.js';
import { StateStore } from '../lib/state/state-store.js';
import { DEFAULT_PHASES, arrivals, printDemandTable, runDemand, type PoolVariant } from './lib/wake-demand.js';
import { runDemandStandIn } from './lib/wake-demand-standin.js';

const { values: opts } = parseArgs({
  options: {
    tenants: { type: 'string', default: '200' },
    wave: { type: 'string', default: '20' },
    modes: { type: 'string', default: 'warm,cold' },
    'wave-timeout': { type: 'string', default: '300' },
    /** info (default): the platform's and the shims' log lines give each wake's timeline (breakdown). */
    'log-level': { type: 'string', default: 'info' },
    'keep-data': { type: 'boolean', default: false },
    /** Let the pool-keeper refill the pool while a warm wave wakes (on one small machine the refills compete with the wakes). */
    'refill-during-wave': { type: 'boolean', default: false },
    /** Log the duration of each step of the waker's and the drains' wake path (bench diagnostic). */
    trace: { type: 'boolean', default: false },
    /** demand: the fixed pool sizes compared (comma-separated), the adaptive pool's min-max, its hit target, the arrivals' seed. */
    fixed: { type: 'string', default: '2' },
    adaptive: { type: 'string', default: '0-8' },
    'hit-target': { type: 'string', default: '0.95' },
    seed: { type: 'string', default: '15' },
    /** demand-standin: a stand-in member's start (ms) and a warm wake's latency (ms). */
    'standin-start-ms': { type: 'string', default: '5000' },
    'standin-warm-ms': { type: 'string', default: '100' },
  },
});
if (opts.trace) traceWakePath();
const TENANTS = Number(opts.tenants);
const WAVE = Number(opts.wave);
const MODES = (opts.modes ?? '').split(',').filter(Boolean) as Array<'warm' | 'cold' | 'demand' | 'demand-standin'>;
const WAVE_MODES = MODES.filter((m): m is 'warm' | 'cold' => m === 'warm' || m === 'cold');
const [adaptiveMin, adaptiveMax] = (opts.adaptive ?? '').split('-').map(Number) as [number, number];
const POOLS: PoolVariant[] = [
  ...(opts.fixed ?? '').split(',').filter(Boolean).map((n) => ({ kind: 'fixed' as const, size: Number(n) })),
  { kind: 'adaptive', min: adaptiveMin, max: adaptiveMax, hitTarget: Number(opts['hit-target']) },
];
const VARIANTS = MODES.includes('demand') ? POOLS : [];
const SEED = Number(opts.seed);
const SCHEDULE = arrivals(DEFAULT_PHASES, SEED);
const WAVE_TIMEOUT_MS = Number(opts['wave-timeout']) * 1000;
const now = (): number => performance.timeOrigin + performance.now();

function percentiles(values: number[], ...ps: number[]): number[] {
  const sorted = [...values].sort((a, b) => a - b);
  return ps.map((p) => (sorted.length ? (sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number) : Number.NaN));
}

const machine = machineInfo();
printMachine(machine);
if (WAVE_MODES.length) console.log(`# ${TENANTS} sleeping tenants per mode (${WAVE_MODES.join(', ')}), woken in waves of ${WAVE}, one message each`);

if (MODES.includes('demand-standin')) {
  const standin = await runDemandStandIn({
    variants: POOLS, phases: DEFAULT_PHASES, seed: SEED, startMs: Number(opts['standin-start-ms']), warmMs: Number(opts['standin-warm-ms']),
    log: createLogger({ service: 'bench', level: 'warn' }),
  });
  printDemandTable(standin);
}
if (!MODES.some((m) => m !== 'demand-standin')) process.exit(0);

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-bench-wake-'));
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
    REDIS_URL: redisServer.url, DYNAMODB_ENDPOINT: stores.ready.endpoint as string, DYNAMODB_TABLE: `wake-${randomBytes(4).toString('hex')}`,
    S3_ENDPOINT: stores.ready.s3Endpoint as string, S3_BUCKET: `wake-${randomBytes(4).toString('hex')}`,
    TELEGRAM_API_BASE: `http://127.0.0.1:${telegram.ready.telegramPort as number}`, WEBHOOK_SECRET: webhookSecret, WARM_POOL_SECRET: warmPoolSecret,
    DATA_DIR: dataDir, INGRESS_PORT: '0', ADMIN_PORT: '0', WARM_POOL_TARGET: '0', LOG_LEVEL: opts['log-level'] as string,
    AGENT_COMMAND: `${process.execPath} ${path.join(BENCH_DIR, 'wake-agent.mjs')} ${results}`,
    IDLE_CHECK_INTERVAL_S: '86400', RECONCILE_INTERVAL_S: '86400',
    // The agent appends its results to a file in the bench's own directory, which a sandboxed agent
    // (another uid, that directory read-only) cannot write; the sandbox is not what is measured here.
    AGENT_SANDBOX: 'off',
  });
  const platformLog = path.join(dataDir, 'platform.log');
  const log = createLogger({ service: 'platform', level: opts['log-level'] as string, destination: pino.destination({ dest: platformLog, sync: true }) });
  const clients = createClients(config, { name: 'bench' });
  await clients.registry.ensureTable();
  const ids: Record<string, string[]> = {};
  for (const [vi] of VARIANTS.entries()) ids[`demand-${vi}`] = SCHEDULE.map((_, i) => `dm-${vi}-${String(i).padStart(3, '0')}`);
  for (const mode of WAVE_MODES) ids[mode] = Array.from({ length: TENANTS }, (_, i) => `wake-${mode}-${String(i).padStart(4, '0')}`);
  // Each record has an incarnation, and the ingress verifies the secret derived from it (read from
  // the incarnation index, which the admin API's create writes; the registry's create alone does
  // not): publish it here, as the admin path would, and derive each tenant's secret from its record.
  const incarnations = new IncarnationIndex(clients.redis);
  const secretOf = new Map<string, string>();
  for (const mode of Object.keys(ids)) {
    const list = ids[mode] as string[];
    for (let i = 0; i < list.length; i += 20) {
      await Promise.all(list.slice(i, i + 20).map(async (id, k) => {
        const tenant = await clients.registry.create({
          tenant_id: id, bot_token: `${300_000_000 + i + k}:AA${randomBytes(25).toString('base64url').slice(0, 33)}`,
        });
        await incarnations.publish(tenant);
        secretOf.set(id, deriveWebhookSecret(webhookSecret, tenant));
      }));
    }
  }
  const platform = await startPlatform({ config, log, clients, secrets: { webhookSecret, warmPoolSecret } });
  const ingress = new Pool(`http://127.0.0.1:${platform.ingress.port}`, { connections: 16 });
  const makeUpdate = makeUpdateFactory(512);
  let updateId = 1;

  const poolReady = async (mode: 'warm' | 'cold'): Promise<void> => {
    platform.poolKeeper.setTarget(mode === 'warm' ? WAVE : 0);
    const deadline = Date.now() + WAVE_TIMEOUT_MS;
    for (;;) {
      const ready = await platform.runtime.countReadyWarm();
      const all = await platform.runtime.countWarm();
      if (mode === 'warm' ? ready >= WAVE : all === 0) return;
      if (Date.now() > deadline) throw new Error(`warm pool did not reach its target (${ready} ready of ${all})`);
      await sleep(100);
    }
  };
  /**
   * Waits (at most 10 s) until the machine's CPU is quiet (under a quarter busy over 250 ms): the
   * members that just became ready are still finishing their start (JIT, prewarm, GC), work a
   * production pool did long before its members are claimed. Returns how long it waited.
   */
  const settle = async (): Promise<number> => {
    const started = Date.now();
    const busy = (): [number, number] => {
      const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string).trim().split(/\s+/).slice(1).map(Number);
      const idle = (f[3] ?? 0) + (f[4] ?? 0);
      return [f.reduce((a, b) => a + b, 0) - idle, idle];
    };
    while (Date.now() - started < 10_000) {
      const [b0, i0] = busy();
      await sleep(250);
      const [b1, i1] = busy();
      if ((b1 - b0) / Math.max(1, b1 - b0 + i1 - i0) < 0.25) break;
    }
    return Date.now() - started;
  };
  const received = (): Map<string, { sent: number; arrival: number; born: number; listening: number }> => {
    const out = new Map<string, { sent: number; arrival: number; born: number; listening: number }>();
    if (!existsSync(results)) return out;
    for (const line of readFileSync(results, 'utf8').split('\n')) {
      if (!line) continue;
      const r = JSON.parse(line) as { tenant: string; sent: number; arrival: number; born: number; listening: number };
      if (!out.has(r.tenant)) out.set(r.tenant, r);
    }
    return out;
  };

  const shimLines = new Map<string, ShimLine[]>();
  interface Wake { mode: 'warm' | 'cold'; tenant: string; total: number; agentStart: number; platform: number; sent: number; arrival: number; listening: number }
  const wakes: Wake[] = [];
  const waves = WAVE_MODES.length ? Math.ceil(TENANTS / WAVE) : 0;
  for (let w = 0; w < waves; w++) {
    for (const mode of WAVE_MODES) {
      const wave = (ids[mode] as string[]).slice(w * WAVE, (w + 1) * WAVE);
      await poolReady(mode);
      // The pool is full: refills wait until the wave is done (see the header).
      const pauseRefills = mode === 'warm' && !opts['refill-during-wave'];
      if (pauseRefills) await platform.poolKeeper.close();
      const settled = existsSync('/proc/stat') ? await settle() : 0;
      await Promise.all(wave.map(async (tenant, i) => {
        const id = updateId++;
        const body = makeUpdate(id, 5000 + i, `s${now().toFixed(3)};`);
        const res = await ingress.request({
          method: 'POST', path: `/tg/${tenant}`, body,
          headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secretOf.get(tenant) as string },
        });
        await res.body.dump();
        if (res.statusCode !== 200) throw new Error(`ingress answered ${res.statusCode} for ${tenant}`);
      }));
      const deadline = Date.now() + WAVE_TIMEOUT_MS;
      let got = received();
      while (wave.some((t) => !got.has(t)) && Date.now() < deadline) {
        await sleep(20);
        got = received();
      }
      const missing = wave.filter((t) => !got.has(t));
      if (missing.length) throw new Error(`${mode} wave ${w + 1}: ${missing.length} tenants never received their message`);
      for (const tenant of wave) {
        const r = got.get(tenant) as { sent: number; arrival: number; born: number; listening: number };
        const agentStart = r.listening - r.born;
        wakes.push({ mode, tenant, total: r.arrival - r.sent, agentStart, platform: r.arrival - r.sent - agentStart, sent: r.sent, arrival: r.arrival, listening: r.listening });
      }
      const mine = wakes.filter((x) => x.mode === mode && wave.includes(x.tenant)).map((x) => x.platform);
      const [p50] = percentiles(mine, 50);
      console.log(`${mode} wave ${w + 1}/${waves}: ${wave.length} woken, platform part p50 ${fmt.ms(p50 as number)} ms, max ${fmt.ms(Math.max(...mine))} ms (CPU settled for ${settled} ms before)`);
      // The shims' log lines now: a warm member's directory goes with its clean exit at the sleep.
      collectShimLines(dataDir, shimLines);
      // Back to sleep (graceful: state saved), freeing the processes before the next wave.
      await Promise.all(wave.map((t) => platform.lifecycle.sleep(t)));
      if (pauseRefills) platform.poolKeeper.start();
    }
  }

  const rows = WAVE_MODES.map((mode) => {
    const of = wakes.filter((x) => x.mode === mode);
    const [p50, p99, max] = percentiles(of.map((x) => x.platform), 50, 99, 100) as [number, number, number];
    const [t50, t99] = percentiles(of.map((x) => x.total), 50, 99) as [number, number];
    const [s50] = percentiles(of.map((x) => x.agentStart), 50) as [number];
    return { mode, n: of.length, p50, p99, max, t50, t99, s50 };
  });
  if (rows.length) console.log(`\n${table(['pool', 'wakes', 'platform p50 ms', 'platform p99 ms', 'max ms', 'arrival → agent p50 / p99 ms', "agent's own start p50 ms"],
    rows.map((r) => [r.mode, r.n, fmt.ms(r.p50), fmt.ms(r.p99), fmt.ms(r.max), `${fmt.ms(r.t50)} / ${fmt.ms(r.t99)}`, fmt.ms(r.s50)]))}`);
  const warm = rows.find((r) => r.mode === 'warm');
  const cold = rows.find((r) => r.mode === 'cold');
  if (warm && cold) console.log(`\ncold / warm (platform part): p50 ${fmt.ratio(cold.p50 / warm.p50)}, p99 ${fmt.ratio(cold.p99 / warm.p99)}`);
  // Issue 14's targets: one warm wake at a time p50 ≤ 50 ms and p99 ≤ 150 ms; twenty at once p50 ≤ 500 ms.
  if (warm && WAVE === 1) console.log(`targets (warm, one at a time, platform part): p50 ≤ 50 ms ${warm.p50 <= 50 ? 'met' : 'NOT met'}, p99 ≤ 150 ms ${warm.p99 <= 150 ? 'met' : 'NOT met'}`);
  if (warm && WAVE >= 20) console.log(`target (warm, ${WAVE} at once, platform part): p50 ≤ 500 ms ${warm.p50 <= 500 ? 'met' : 'NOT met'}`);
  if (VARIANTS.length) {
    const demand = await runDemand({
      platform, clients, ingress, webhookSecret, log, platformLog, makeUpdate, nextUpdateId: () => updateId++, received, now, timeoutMs: WAVE_TIMEOUT_MS,
    }, VARIANTS, DEFAULT_PHASES, SEED);
    printDemandTable(demand);
  }
  await ingress.close();
  await platform.close();
  await clients.close();
  if (opts['log-level'] === 'info' && wakes.length) printBreakdown(wakes, shimLines);
} finally {
  for (const c of children.reverse()) await c.stop().catch(() => undefined);
  await redisServer.close();
  if (opts['keep-data']) console.log(`data (shim logs under tenants/<id>/agent.log): ${dataDir}`);
  else rmSync(dataDir, { recursive: true, force: true });
}

/**
 * Where a wake's time goes, from the log lines (ms resolution) of the shims (DATA_DIR/warm/<pod>/
 * agent.log, DATA_DIR/tenants/<id>/agent.log) and the platform, medians per pool mode.
 */
type ShimLine = { time: string; msg: string; tenant_id?: string };

/** Adds the log lines of every shim under `dir` to `into` (per tenant; a file read again replaces its lines). */
function collectShimLines(dir: string, into: Map<string, ShimLine[]>): void {
  const files = [
    ...(existsSync(path.join(dir, 'warm')) ? readdirSync(path.join(dir, 'warm')).map((p) => path.join(dir, 'warm', p, 'agent.log')) : []),
    ...(existsSync(path.join(dir, 'tenants')) ? readdirSync(path.join(dir, 'tenants')).map((p) => path.join(dir, 'tenants', p, 'agent.log')) : []),
  ];
  for (const f of files) {
    if (!existsSync(f)) continue;
    // A cold shim knows its tenant from the start; a warm one from its claim on.
    const coldTenant = f.includes(`${path.sep}tenants${path.sep}`) ? path.basename(path.dirname(f)) : undefined;
    const mine = new Map<string, ShimLine[]>();
    for (const raw of readFileSync(f, 'utf8').split('\n')) {
      let l: ShimLine;
      try {
        l = JSON.parse(raw) as ShimLine;
      } catch {
        continue;
      }
      const t = l.tenant_id ?? coldTenant;
      if (t) mine.set(t, [...(mine.get(t) ?? []), l]);
    }
    for (const [t, lines] of mine) into.set(t, lines);
  }
}

/**
 * Per wake, from the shims' log lines (ms resolution) and the agent's own stamps. The waker's
 * "tenant awake" line is not used: it comes after its bookkeeping, after the delivery.
 */
function printBreakdown(wakes: Array<{ mode: 'warm' | 'cold'; tenant: string; sent: number; arrival: number; listening: number }>, shimLines: Map<string, ShimLine[]>): void {
  const at = (lines: ShimLine[] | undefined, msg: RegExp): number | undefined => {
    const l = lines?.find((x) => msg.test(x.msg));
    return l ? Date.parse(l.time) : undefined;
  };
  const segments = ['update sent → the pod has the tenant (claim / cold shim up)', 'state restore from S3', "agent's own start (spawn → listening)",
    'agent listening → the shim reports ready (readiness probe)', 'shim ready → the agent has the update (claim answer, endpoint + announcement, delivery)'];
  const rows: Array<Array<string | number>> = [];
  for (const mode of ['warm', 'cold'] as const) {
    const cols: number[][] = segments.map(() => []);
    for (const w of wakes.filter((x) => x.mode === mode)) {
      const shim = shimLines.get(w.tenant);
      const bound = mode === 'warm' ? at(shim, /^claimed/) : at(shim, /^shim listening/);
      const r0 = at(shim, /^restoring state/);
      const r1 = at(shim, /^(no saved state|state restored)/);
      const spawned = at(shim, /^agent started/);
      const shimReady = at(shim, /^agent ready/);
      const values = [
        bound !== undefined ? bound - w.sent : NaN, r0 !== undefined && r1 !== undefined ? r1 - r0 : NaN,
        spawned !== undefined ? w.listening - spawned : NaN, shimReady !== undefined ? shimReady - w.listening : NaN,
        shimReady !== undefined ? w.arrival - shimReady : NaN,
      ];
      values.forEach((v, i) => Number.isFinite(v) && cols[i]?.push(v));
    }
    if (cols.every((c) => c.length === 0)) continue;
    segments.forEach((name, i) => rows.push([mode, name, fmt.ms(percentiles(cols[i] as number[], 50)[0] as number), fmt.ms(percentiles(cols[i] as number[], 99)[0] as number)]));
  }
  console.log(`\nbreakdown (log timestamps, ms resolution; segments overlap little but are not exactly additive)\n`);
  console.log(table(['pool', 'segment', 'p50 ms', 'p99 ms'], rows));
}

/** Wraps the async steps of the wake path to print start offset and duration (--trace). */
function traceWakePath(): void {
  const t0 = performance.now();
  const wrap = (proto: object, names: string[], label: string): void => {
    for (const name of names) {
      const original = (proto as Record<string, unknown>)[name] as ((...a: unknown[]) => Promise<unknown>) | undefined;
      if (typeof original !== 'function') continue;
      (proto as Record<string, unknown>)[name] = async function (this: unknown, ...args: unknown[]): Promise<unknown> {
        const start = performance.now();
        let result: unknown;
        try {
          result = await original.apply(this, args);
          return result;
        } finally {
          const shown = typeof result === 'number' || typeof result === 'boolean' ? ` → ${String(result)}` : '';
          console.log(`trace ${(start - t0).toFixed(0).padStart(7)} +${(performance.now() - start).toFixed(0).padStart(5)} ms ${label}.${name} ${typeof args[0] === 'string' ? args[0] : ''}${shown}`);
        }
      };
    }
  };
  wrap(Endpoints.prototype, ['get', 'set', 'promoteParked', 'park', 'isWaking', 'claimStartingNotice', 'lastWakeFailure', 'clearWakeFailure'], 'endpoints');
  wrap(StateUrlLedger.prototype, ['issued'], 'ledger');
  wrap(TenantRegistry.prototype, ['get', 'mutate'], 'registry');
  wrap(TenantCache.prototype, ['facts'], 'tenantCache');
  wrap(StateStore.prototype, ['presign'], 'state');
}
