/**
 * Ingress benchmark: acknowledged, durably enqueued webhooks per second and their latency, against
 * two baselines measured in the same run (results and method: docs/benchmarks.md).
 *
 *   node --import tsx bench/ingress.ts [--generator autocannon,wrk] [--duration 10] [--warmup 2]
 *        [--repeats 3] [--connections 64] [--tenants 1000] [--size 1024] [--busy-chats 10]
 *        [--only ceiling,real-busy,real-fresh,naive] [--prof <dir>] [--json <file>]
 *
 * Each run gets a fresh redis-server (appendonly yes, appendfsync everysec) and a fresh server
 * process (bench/ingress-server.ts); the load generator runs in or from this process. Scenarios,
 * interleaved within each repeat so that the shared machine's drift hits them alike:
 *   ceiling     bare uWebSockets.js answering 200 at once
 *   real-busy   the product; each tenant's updates go to one of --busy-chats chats, so after the first
 *               update of each chat its mailbox already has a drain job (no BullMQ add)
 *   real-fresh  the product; every update is the first of its chat, so every accept also adds a drain
 *               job (what a live system does when the forwarder keeps mailboxes empty)
 *   naive       node:http + `await queue.add()` per request
 * Generators: autocannon (Node, in this process; tracks every update_id it got a 200 for) and wrk
 * (C + LuaJIT, a separate process; far cheaper per request, so more of the two cores are left to
 * the system under test). After every run the stored updates are read back from Redis: every
 * acknowledged update must be there exactly once.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import type { Redis } from 'ioredis';
import { BENCH_DIR, Samples, cpuSecondsSince, fmt, machineInfo, median, printMachine, sleep, spawnChild, startBenchRedis, table } from './lib/common.js';
import { makeTenants, makeUpdateFactory, updateTemplate } from './lib/updates.js';
import { DEFAULT_DELIVERY_SHARDS, DeliveryLayout } from '../lib/delivery/shards.js';
import { readyKey } from '../lib/keys.js';

const { values: opts } = parseArgs({
  options: {
    generator: { type: 'string', default: 'autocannon,wrk' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    repeats: { type: 'string', default: '3' },
    connections: { type: 'string', default: '64' },
    tenants: { type: 'string', default: '1000' },
    size: { type: 'string', default: '1024' },
    'busy-chats': { type: 'string', default: '10' },
    'wrk-threads': { type: 'string', default: '1' },
    only: { type: 'string' },
    prof: { type: 'string' },
    json: { type: 'string' },
  },
});
const DURATION = Number(opts.duration);
const WARMUP = Number(opts.warmup);
const REPEATS = Number(opts.repeats);
const CONNECTIONS = Number(opts.connections);
const TENANTS = Number(opts.tenants);
const BUSY_CHATS = Number(opts['busy-chats']);
const WRK_THREADS = Number(opts['wrk-threads']);
const SIZE = Number(opts.size);
type Generator = 'autocannon' | 'wrk';
const GENERATORS = (opts.generator ?? '').split(',').filter(Boolean) as Generator[];
for (const g of GENERATORS) if (g !== 'autocannon' && g !== 'wrk') throw new Error(`unknown generator ${g}`);
if (GENERATORS.includes('wrk') && spawnSync('wrk', ['-v']).error) throw new Error('wrk is not installed (Debian: apt-get install wrk), or pass --generator autocannon');

type Mode = 'ceiling' | 'real' | 'naive';
type Chats = 'fresh' | 'busy';
interface Scenario {
  name: string;
  mode: Mode;
  chats: Chats;
  env?: Record<string, string>;
  /** Only when named in --only. */
  optional?: boolean;
}
const ALL_SCENARIOS: Scenario[] = [
  { name: 'ceiling', mode: 'ceiling', chats: 'fresh' },
  { name: 'real-busy', mode: 'real', chats: 'busy' },
  { name: 'real-fresh', mode: 'real', chats: 'fresh' },
  { name: 'naive', mode: 'naive', chats: 'fresh' },
  // The product with one accept script per update (no batching): what batching buys, same run.
  { name: 'real-busy-unbatched', mode: 'real', chats: 'busy', env: { BENCH_ACCEPT_BATCH: '1' }, optional: true },
];
const SCENARIOS = ALL_SCENARIOS.filter((s) => (opts.only ? opts.only.split(',').includes(s.name) : !s.optional));
/** Chat of update `id` (ids are global; the tenant is id mod TENANTS). Mirrored in the Lua below. */
const chatOf = (chats: Chats, id: number): number => (chats === 'fresh' ? 1_000_000_000 + id : 100_000 + (Math.floor(id / TENANTS) % BUSY_CHATS));

const master = randomBytes(24).toString('base64url');
const tenants = makeTenants(TENANTS, master);
const makeUpdate = makeUpdateFactory(SIZE);
const workDir = mkdtempSync(path.join(os.tmpdir(), 'ztm-bench-ingress-'));

/** Bitmaps over update ids: sent by the generator; answered 200 (autocannon only: wrk cannot tell which). */
class IdTracker {
  next = 1;
  sent = new Uint8Array(1 << 20);
  ok = new Uint8Array(1 << 20);
  /** 200s counted without knowing their ids (wrk). */
  anonymousOk = 0;
  /** Requests that may have been in flight when a load phase stopped. */
  cutOffBound = 0;
  grow(id: number): void {
    while (id >= this.sent.length) {
      for (const k of ['sent', 'ok'] as const) {
        const b = new Uint8Array(this[k].length * 2);
        b.set(this[k]);
        this[k] = b;
      }
    }
  }
  take(): number {
    const id = this.next++;
    this.grow(id);
    this.sent[id] = 1;
    return id;
  }
}

interface LoadResult {
  ok: number;
  non2xx: number;
  errors: number;
  elapsed: number;
  latencies: { p50: number; p99: number; p999: number };
}

async function autocannonLoad(url: string, scenario: Scenario, ids: IdTracker, seconds: number): Promise<LoadResult> {
  const latencies = new Samples();
  const t0 = performance.now();
  const instance = autocannon({
    url,
    connections: CONNECTIONS,
    pipelining: 1,
    duration: seconds,
    timeout: 10,
    requests: [{
      method: 'POST',
      setupRequest(req, context) {
        const id = ids.take();
        const t = id % TENANTS;
        context.id = id;
        req.path = `/tg/${tenants.ids[t]}`;
        req.headers = { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': tenants.secrets[t] as string };
        req.body = makeUpdate(id, chatOf(scenario.chats, id));
        return req;
      },
      onResponse(status, _body, context) {
        if (status === 200) ids.ok[context.id as number] = 1;
      },
    }],
  });
  instance.on('response', (_client, status, _bytes, ms) => {
    if (status === 200) latencies.add(ms);
  });
  const result = await instance;
  ids.cutOffBound += CONNECTIONS;
  const [p50, p99, p999] = latencies.percentiles(50, 99, 99.9) as [number, number, number];
  return { ok: result['2xx'], non2xx: result.non2xx, errors: result.errors, elapsed: (performance.now() - t0) / 1000, latencies: { p50, p99, p999 } };
}

/** The wrk script: the same requests as autocannonLoad, built in LuaJIT. */
function wrkScript(scenario: Scenario, offset: number): string {
  const q = (s: string): string => JSON.stringify(s); // JSON string literals are valid Lua literals here (ASCII)
  const parts = updateTemplate(SIZE).map((p) => (typeof p === 'string' ? q(p) : p.v === 'id' ? 'id' : p.v === 'mid' ? 'string.format("%d", id % 1000000)' : p.v === 'chat' ? 'chat' : '""'));
  return `-- generated by bench/ingress.ts
local tenants = {${tenants.ids.map(q).join(',')}}
local secrets = {${tenants.secrets.map(q).join(',')}}
local NT, BUSY, OFFSET, THREADS = ${TENANTS}, ${BUSY_CHATS}, ${offset}, ${WRK_THREADS}
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
n = 0
function request()
  local num = OFFSET + tid + n * THREADS
  n = n + 1
  local id = string.format("%d", num)
  local t = num % NT
  local chat = string.format("%d", ${scenario.chats === 'fresh' ? '1000000000 + num' : '100000 + (math.floor(num / NT) % BUSY)'})
  local body = ${parts.join(' .. ')}
  return wrk.format("POST", "/tg/" .. tenants[t + 1], { ["Content-Type"] = "application/json", ["X-Telegram-Bot-Api-Secret-Token"] = secrets[t + 1] }, body)
end
function done(summary, latency, requests)
  local ns = {}
  for i, t in ipairs(threads) do ns[i] = string.format("%d", t:get("n")) end
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50":%d,"p99":%d,"p999":%d,"ns":[%s]}\\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), table.concat(ns, ",")))
end
`;
}

async function wrkLoad(url: string, scenario: Scenario, ids: IdTracker, seconds: number): Promise<LoadResult & { cpuSeconds: number }> {
  const offset = ids.next;
  const script = path.join(workDir, `wrk-${offset}.lua`);
  writeFileSync(script, wrkScript(scenario, offset));
  const t0 = performance.now();
  const { stdout, cpuSeconds } = await new Promise<{ stdout: string; cpuSeconds: number }>((resolve, reject) => {
    const child = execFile('wrk', ['-t', String(WRK_THREADS), '-c', String(CONNECTIONS), '-d', `${seconds}s`, '--timeout', '10s', '-s', script, `${url}/`],
      { maxBuffer: 1 << 20 }, (err, out, errOut) => (err ? reject(new Error(`wrk failed: ${errOut || err.message}`)) : resolve({ stdout: out, cpuSeconds })));
    let cpuSeconds = Number.NaN;
    const pid = child.pid;
    // The generator's CPU from the kernel's accounting (utime + stime of /proc/<pid>/stat, in
    // USER_HZ = 100 ticks), sampled every 100 ms until it exits: at most 0.1 s is missed.
    const poll = setInterval(() => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ');
        if (stat) cpuSeconds = (Number(stat[11]) + Number(stat[12])) / 100;
      } catch {
        /* exited */
      }
    }, 100);
    child.once('close', () => clearInterval(poll));
  });
  const elapsed = (performance.now() - t0) / 1000;
  const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk printed no summary:\n${stdout}`);
  const r = JSON.parse(line.slice(8)) as { requests: number; duration_us: number; status: number; connect: number; read: number; write: number; timeout: number; p50: number; p99: number; p999: number; ns: number[] };
  let last = offset;
  r.ns.forEach((n, tid) => {
    for (let j = 0; j < n; j++) {
      const id = offset + tid + j * WRK_THREADS;
      ids.grow(id);
      ids.sent[id] = 1;
      last = Math.max(last, id);
    }
  });
  ids.next = last + 1;
  const ok = r.requests - r.status;
  ids.anonymousOk += ok;
  ids.cutOffBound += CONNECTIONS;
  return {
    ok, non2xx: r.status, errors: r.connect + r.read + r.write + r.timeout, elapsed: r.duration_us / 1e6 || elapsed,
    latencies: { p50: r.p50 / 1000, p99: r.p99 / 1000, p999: r.p999 / 1000 }, cpuSeconds,
  };
}

/** update_ids stored in Redis by the server under test (each occurrence). */
async function storedIds(redis: Redis, mode: Mode): Promise<number[]> {
  const out: number[] = [];
  if (mode === 'naive') {
    for (const jobId of await redis.lrange('ztm:{naive}:wait', 0, -1)) out.push(Number(jobId.slice(jobId.lastIndexOf('.') + 1)));
    return out;
  }
  const lua = `local out = {}
for _, k in ipairs(KEYS) do
  for _, v in ipairs(redis.call('LRANGE', k, 0, -1)) do out[#out + 1] = string.sub(v, 1, string.find(v, '|', 1, true) - 1) end
end
return out`;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', '{mbox*}:q:*', 'COUNT', 2000);
    cursor = next;
    // One key per call: the keys of one scan page span the shards' slots.
    for (const k of keys) for (const id of (await redis.eval(lua, 1, k)) as string[]) out.push(Number(id));
  } while (cursor !== '0');
  return out;
}

async function countKeys(redis: Redis, pattern: string): Promise<number> {
  let n = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
    cursor = next;
    n += keys.length;
  } while (cursor !== '0');
  return n;
}

interface Verify {
  stored: number;
  /** 200s the generator received (all phases). */
  acknowledged: number;
  /** Acknowledged updates not in Redis (autocannon: by id; wrk: by count). */
  lost: number;
  duplicated: number;
  /** Stored updates whose 200 the generator never saw: in flight when a load phase stopped. */
  cutOff: number;
  cutOffBound: number;
  notSent: number;
  /** Chats with a responsible generation not on a ready list, plus shards with ready chats and no runner (real only). */
  jobsMismatch?: number;
}

async function verifyRun(r: Redis, mode: Mode, ids: IdTracker): Promise<Verify> {
  const v: Verify = { stored: 0, acknowledged: 0, lost: 0, duplicated: 0, cutOff: 0, cutOffBound: ids.cutOffBound, notSent: 0 };
  const seen = new Uint8Array(ids.next + 1);
  for (const id of await storedIds(r, mode)) {
    v.stored++;
    if (!(id > 0 && id < ids.next) || !ids.sent[id]) v.notSent++;
    else if (seen[id]) v.duplicated++;
    else seen[id] = 1;
  }
  let unaccounted = ids.anonymousOk;
  for (let id = 1; id < ids.next; id++) {
    if (ids.ok[id]) {
      v.acknowledged++;
      if (!seen[id]) v.lost++;
    } else if (seen[id]) {
      // Stored without an id-tracked 200: a 200 wrk counted, or a request cut off at a phase end.
      if (unaccounted > 0) unaccounted--;
      else v.cutOff++;
    }
  }
  v.acknowledged += ids.anonymousOk;
  v.lost += unaccounted; // wrk 200s with no stored update left to account for them
  if (mode === 'real') {
    // Invariant 4: every chat with a responsible generation is on its shard's ready list (no forwarder
    // runs here), and every shard with ready chats has a runner's job waiting.
    const generations = await countKeys(r, '{mbox*}:drain:*');
    let ready = 0;
    let unserved = 0;
    for (const shard of DeliveryLayout.of(Number(process.env.DELIVERY_SHARDS ?? DEFAULT_DELIVERY_SHARDS)).shards) {
      const n = await r.llen(readyKey(shard.tag));
      ready += n;
      if (n > 0 && (await r.llen(`ztm:${shard.queue}:wait`)) === 0) unserved++;
    }
    v.jobsMismatch = generations - ready + unserved;
  }
  return v;
}

const verified = (v: Verify): boolean => v.lost === 0 && v.duplicated === 0 && v.notSent === 0 && v.cutOff <= v.cutOffBound && (v.jobsMismatch ?? 0) === 0;

interface RunResult {
  generator: Generator;
  scenario: string;
  repeat: number;
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  ok: number;
  non2xx: number;
  errors: number;
  serverCores: number;
  redisCores: number;
  generatorCores: number;
  serverRssMiB: number;
  /** EVALSHA calls per acknowledged update during the measured phase (< 1: accept scripts carry batches). */
  evalshaPerUpdate: number;
  redisCalls: number;
  verify?: Verify;
  counters: Record<string, number>;
}

async function runOnce(generator: Generator, scenario: Scenario, repeat: number): Promise<RunResult> {
  const redis = await startBenchRedis('everysec');
  const profDir = opts.prof && scenario.mode === 'real' ? path.resolve(opts.prof, `${generator}-${scenario.name}-${repeat}`) : undefined;
  const server = await spawnChild(path.join(BENCH_DIR, 'ingress-server.ts'), { args: [scenario.mode, redis.url, master], cpuProfDir: profDir, env: scenario.env ?? {} });
  const url = `http://127.0.0.1:${server.ready.port as number}`;
  const ids = new IdTracker();
  const load = generator === 'wrk' ? wrkLoad : autocannonLoad;
  try {
    if (WARMUP > 0) await load(url, scenario, ids, WARMUP);
    const before = await server.call<{ cpu: NodeJS.CpuUsage }>('usage');
    const redisBefore = await redis.cpuSeconds();
    const callsBefore = await redis.commandCalls();
    const selfBefore = process.cpuUsage();
    const result = await load(url, scenario, ids, DURATION);
    const selfCpu = cpuSecondsSince(selfBefore);
    const after = await server.call<{ cpu: NodeJS.CpuUsage; mem: NodeJS.MemoryUsage }>('usage');
    const redisCores = ((await redis.cpuSeconds()) - redisBefore) / result.elapsed;
    const callsAfter = await redis.commandCalls();
    const calls = (c: string): number => (callsAfter[c] ?? 0) - (callsBefore[c] ?? 0);
    // Every command Redis executed in the phase (inside scripts too), minus our own probes.
    const redisCalls = Object.keys(callsAfter).filter((c) => c !== 'info').reduce((n, c) => n + calls(c), 0);
    const serverCores = (after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system) / 1e6 / result.elapsed;
    const generatorCores = ('cpuSeconds' in result ? (result.cpuSeconds as number) : selfCpu) / result.elapsed;
    // Writes of requests cut off by the end of the run may still complete: let them.
    await sleep(1000);
    const { counters } = await server.call<{ counters: Record<string, number> }>('stats');
    const verify = scenario.mode === 'ceiling' ? undefined : await verifyRun(redis.client(), scenario.mode, ids);
    return {
      generator, scenario: scenario.name, repeat, rps: result.ok / result.elapsed, ...result.latencies, ok: result.ok, non2xx: result.non2xx,
      errors: result.errors, serverCores, redisCores, generatorCores, serverRssMiB: after.mem.rss / 2 ** 20, verify, counters,
      evalshaPerUpdate: calls('evalsha') / result.ok, redisCalls,
    };
  } finally {
    await server.stop();
    await redis.close();
  }
}

function describeVerify(v: Verify): string {
  return `${verified(v) ? 'OK' : 'FAILED'}: ${fmt.int(v.acknowledged)} acknowledged, ${fmt.int(v.stored)} stored, lost ${v.lost}, duplicated ${v.duplicated}, ` +
    `stored but cut off before the answer ${v.cutOff} (≤ ${v.cutOffBound} in flight at phase ends)` +
    `${v.jobsMismatch === undefined ? '' : `, generations without a drain ${v.jobsMismatch}`}`;
}

const machine = machineInfo();
printMachine(machine);
console.log(`# ${CONNECTIONS} connections, ${TENANTS} tenants, ${SIZE}-byte updates, warmup ${WARMUP}s + ${DURATION}s per run, ${REPEATS} repeats, ` +
  `redis appendonly everysec, generators ${GENERATORS.join(' and ')}${GENERATORS.includes('wrk') ? ` (wrk threads ${WRK_THREADS})` : ''}`);
const results: RunResult[] = [];
let failed = false;
try {
  for (let repeat = 1; repeat <= REPEATS; repeat++) {
    for (const generator of GENERATORS) {
      for (const scenario of SCENARIOS) {
        const r = await runOnce(generator, scenario, repeat);
        results.push(r);
        console.log(`${generator.padEnd(10)} ${r.scenario.padEnd(10)} #${repeat}: ${fmt.int(r.rps)} req/s  p50 ${fmt.ms(r.p50)} ms  p99 ${fmt.ms(r.p99)} ms  ` +
          `p99.9 ${fmt.ms(r.p999)} ms  non-2xx ${r.non2xx} errors ${r.errors}  ` +
          `cpu: server ${r.serverCores.toFixed(2)} redis ${r.redisCores.toFixed(2)} generator ${r.generatorCores.toFixed(2)} cores ` +
          `(µs per request: server ${fmt.int((r.serverCores / r.rps) * 1e6)}, redis ${fmt.int((r.redisCores / r.rps) * 1e6)})` +
          (r.scenario === 'ceiling' ? '' : `  evalsha/update ${r.evalshaPerUpdate.toFixed(3)}`));
        if (r.verify) {
          console.log(`${' '.repeat(22)}verify: ${describeVerify(r.verify)}`);
          if (!verified(r.verify)) failed = true;
        }
        if (r.non2xx || r.errors) console.log(`${' '.repeat(22)}server counters: ${JSON.stringify(r.counters)}`);
      }
    }
  }
} finally {
  rmSync(workDir, { recursive: true, force: true });
}

// Medians over repeats; ratios per repeat (same cycle, closest in time), then their median.
console.log(`\nmedian of ${REPEATS} (ratios: median of the per-repeat ratios)`);
for (const generator of GENERATORS) {
  const by = (name: string): RunResult[] => results.filter((r) => r.scenario === name && r.generator === generator);
  const med = (name: string, k: 'rps' | 'p50' | 'p99' | 'serverCores' | 'redisCores' | 'generatorCores' | 'serverRssMiB'): number => median(by(name).map((r) => r[k]));
  const ratio = (a: string, b: string): number => median(by(a).map((r) => r.rps / (by(b).find((x) => x.repeat === r.repeat)?.rps ?? Number.NaN)));
  const rows = SCENARIOS.map((s) => [
    s.name, fmt.int(med(s.name, 'rps')), fmt.ms(med(s.name, 'p50')), fmt.ms(med(s.name, 'p99')),
    fmt.ratio(ratio(s.name, 'ceiling')), fmt.ratio(ratio(s.name, 'naive')),
    `${med(s.name, 'serverCores').toFixed(2)} / ${med(s.name, 'redisCores').toFixed(2)} / ${med(s.name, 'generatorCores').toFixed(2)}`,
    `${med(s.name, 'serverRssMiB').toFixed(0)} MiB`,
  ]);
  console.log(`\n${generator}\n`);
  console.log(table(['scenario', 'req/s', 'p50 ms', 'p99 ms', 'vs ceiling', 'vs naive', 'cores: server / redis / generator', 'server RSS'], rows));
  for (const name of ['real-busy', 'real-fresh', 'real-busy-unbatched']) {
    if (!by(name).length) continue;
    const checks = [
      ['≥ 25,000/s', med(name, 'rps') >= 25_000], ['≥ 40% of ceiling', ratio(name, 'ceiling') >= 0.4],
      ['≥ 3× naive', ratio(name, 'naive') >= 3], ['p99 ≤ 10 ms', med(name, 'p99') <= 10],
    ] as const;
    console.log(`${name}: ${checks.map(([label, ok]) => `${label} ${ok ? 'met' : 'NOT met'}`).join(', ')}`);
  }
}
if (opts.json) writeFileSync(opts.json, JSON.stringify({ machine, options: opts, results }, null, 2));
if (failed) {
  console.error('correctness check FAILED');
  process.exitCode = 1;
}
