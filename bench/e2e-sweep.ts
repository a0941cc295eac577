/**
 * Offered-load sweep of the end-to-end benchmark: bench/e2e.ts once per (offered rate, Redis
 * topology), each in its own process (a fresh Redis, ingress, forwarder and agents per point, so no
 * point inherits another's backlog), then a table and the plots of docs/benchmarks.md.
 *
 *   node --import tsx bench/e2e-sweep.ts --rates 500,1000,2000,3000 [--redis single,cluster]
 *        [--out-dir docs/img] [--summaries <dir>] [--duration 20] [--warmup 5] [--tenants 1000]
 *        [--direct 10] [--chats …] [--hosts …] [--forwarders …] [--connections …] [--capacity …]
 *   node --import tsx bench/e2e-sweep.ts --from docs/img/e2e-sweep [--out-dir docs/img]
 *
 * Each run's summary (bench/e2e.ts --json-out) is kept in --summaries (default <out-dir>/e2e-sweep)
 * as e2e-<topology>-<rate>.json; --from re-plots from such a directory without running anything, so
 * the docs' pictures can be regenerated from the numbers they show. Plots written to --out-dir:
 * e2e-offered-throughput (delivered/s against offered, with the ideal y = x), e2e-latency
 * (pipeline-added p50 and p99 against offered, log axis) and e2e-latency-percentiles (p50 … p99.9 at
 * the highest offered rate every topology sustained), each as a JSON spec and its SVG.
 *
 * Runs go rate by rate, both topologies at each rate in turn, so a drift of the machine's load over
 * a long sweep falls on both topologies alike rather than on one.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BENCH_DIR, fmt, table } from './lib/common.js';
import { plot, type BarSpec, type LineSeries, type LineSpec, type PlotSpec } from './tools/svg-plot.js';

export type Topology = 'single' | 'cluster';
const TOPOLOGIES: readonly Topology[] = ['single', 'cluster'];
const LABEL: Record<Topology, string> = { single: 'one node', cluster: '3-master cluster' };
/** Short names for legends (svg-plot gives each legend entry 150 px). */
const SHORT: Record<Topology, string> = { single: 'one node', cluster: 'cluster' };
/** One colour per topology across the plots (Okabe–Ito, as svg-plot's palette). */
const COLOUR: Record<Topology, string> = { single: '#0072B2', cluster: '#E69F00' };
/** A point counts as sustained when this share of the offered rate was delivered (bench/e2e.ts's target). */
const SUSTAINED = 0.98;

/** bench/e2e.ts's options a sweep passes through unchanged to every run. */
const PASS_THROUGH = ['duration', 'warmup', 'tenants', 'chats', 'hosts', 'forwarders', 'connections', 'direct', 'capacity'] as const;

/** What the sweep reads of bench/e2e.ts's summary; fields added later are optional so older files still plot. */
export interface SweepSummary {
  redis: Topology;
  rate: number;
  deliveredPerS: number;
  p50: number;
  p99: number;
  p90?: number;
  p999?: number;
  max?: number;
  directP50?: number | null;
  directP99?: number | null;
  redisUsPerUpdate: number;
  commandsPerUpdate?: number;
  perMaster: Array<{ port: number; usPerUpdate: number; commandShare: number }>;
  correct: boolean;
  duration?: number;
  tenants?: number;
  machine?: { nproc: number; cpuModel: string; loadavg: string };
}

export interface SweepOptions {
  rates: number[];
  topologies: Topology[];
  outDir: string;
  summariesDir: string;
  /** Re-plot from this directory of summaries instead of running. */
  from?: string;
  /** Arguments for every bench/e2e.ts run besides --rate, --redis and --json-out. */
  passThrough: string[];
}

export function parseSweepArgs(argv: string[]): SweepOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      rates: { type: 'string' },
      redis: { type: 'string', default: 'single,cluster' },
      'out-dir': { type: 'string', default: 'docs/img' },
      summaries: { type: 'string' },
      from: { type: 'string' },
      ...Object.fromEntries(PASS_THROUGH.map((k) => [k, { type: 'string' as const }])),
    },
  });
  if (positionals.length) throw new Error(`unexpected argument ${positionals[0] as string}`);
  const v = values as Record<string, string | undefined>;
  const outDir = v['out-dir'] as string;
  const passThrough = PASS_THROUGH.flatMap((k) => (v[k] === undefined ? [] : [`--${k}`, v[k]]));
  if (v.from !== undefined) return { rates: [], topologies: [], outDir, summariesDir: v.from, from: v.from, passThrough };
  if (!v.rates) throw new Error('--rates is required (e.g. --rates 500,1000,2000), or --from <dir> to re-plot');
  const rates = [...new Set(v.rates.split(',').map((r) => {
    const n = Number(r.trim());
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--rates: ${JSON.stringify(r)} is not a positive whole number of updates/s`);
    return n;
  }))].sort((a, b) => a - b);
  const topologies = [...new Set((v.redis as string).split(',').flatMap((t) => {
    const name = t.trim();
    if (name === 'both') return [...TOPOLOGIES];
    if (!(TOPOLOGIES as readonly string[]).includes(name)) throw new Error(`--redis: ${JSON.stringify(name)} is not single, cluster or both`);
    return [name as Topology];
  }))].sort((a, b) => TOPOLOGIES.indexOf(a) - TOPOLOGIES.indexOf(b));
  return { rates, topologies, outDir, summariesDir: v.summaries ?? path.join(outDir, 'e2e-sweep'), passThrough };
}

export const summaryFile = (dir: string, topology: Topology, rate: number): string => path.join(dir, `e2e-${topology}-${rate}.json`);

/** The argument vector of one bench/e2e.ts run (after `node --import tsx bench/e2e.ts`). */
export function e2eArgs(opts: SweepOptions, rate: number, topology: Topology): string[] {
  return ['--rate', String(rate), '--redis', topology, ...opts.passThrough, '--json-out', summaryFile(opts.summariesDir, topology, rate)];
}

const isSummary = (x: unknown): x is SweepSummary => {
  const s = x as Partial<SweepSummary> | null;
  return !!s && typeof s === 'object' && (TOPOLOGIES as readonly unknown[]).includes(s.redis) && typeof s.rate === 'number' &&
    typeof s.deliveredPerS === 'number' && typeof s.p50 === 'number' && Array.isArray(s.perMaster);
};

/** Topology, then offered rate: the order of the table and of every series. */
export const bySweepOrder = (a: SweepSummary, b: SweepSummary): number => TOPOLOGIES.indexOf(a.redis) - TOPOLOGIES.indexOf(b.redis) || a.rate - b.rate;

/** Every summary in `dir` (other JSON files, e.g. plot specs, are skipped). */
export function loadSummaries(dir: string): SweepSummary[] {
  const out: SweepSummary[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path.join(dir, name), 'utf8'));
    } catch {
      continue;
    }
    if (isSummary(parsed)) out.push(parsed);
  }
  return out.sort(bySweepOrder);
}

const ms = (n: number | null | undefined): string => (typeof n === 'number' ? fmt.ms(n) : '-');

export function sweepTable(summaries: SweepSummary[]): string {
  return table(
    ['offered/s', 'Redis', 'delivered/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'Redis µs/update', 'per master µs/update', 'all once, in order'],
    [...summaries].sort(bySweepOrder).map((s) => [
      fmt.int(s.rate), LABEL[s.redis], fmt.int(s.deliveredPerS), ms(s.p50), ms(s.p90), ms(s.p99), ms(s.p999),
      s.redisUsPerUpdate.toFixed(1), s.perMaster.map((m) => m.usPerUpdate.toFixed(1)).join(' / '), s.correct ? 'yes' : 'NO',
    ]),
  );
}

const present = (summaries: SweepSummary[]): Topology[] => TOPOLOGIES.filter((t) => summaries.some((s) => s.redis === t));
const of = (summaries: SweepSummary[], t: Topology): SweepSummary[] => summaries.filter((s) => s.redis === t).sort(bySweepOrder);

/** ", 20 s per point, 1,000 tenants" when every run had the same; nothing when they differ (`short`: the duration only, for plot titles). */
function context(summaries: SweepSummary[], short = false): string {
  const same = (f: (s: SweepSummary) => number | undefined): number | undefined => {
    const v = new Set(summaries.map(f));
    return v.size === 1 ? [...v][0] : undefined;
  };
  const duration = same((s) => s.duration);
  const tenants = same((s) => s.tenants);
  if (short) return duration ? `, ${duration} s/point` : '';
  return `${duration ? `, ${duration} s per point` : ''}${tenants ? `, ${fmt.int(tenants)} tenants` : ''}`;
}

/** Plot specs are kept in docs/img beside their SVGs: rounded so they read as the figures they show. */
const round = (n: number, decimals: number): number => Math.round(n * 10 ** decimals) / 10 ** decimals;

export function throughputSpec(summaries: SweepSummary[]): LineSpec {
  const maxRate = Math.max(...summaries.map((s) => s.rate));
  const series: LineSeries[] = present(summaries).map((t) => ({ name: LABEL[t], colour: COLOUR[t], points: of(summaries, t).map((s) => [s.rate, round(s.deliveredPerS, 1)]) }));
  series.push({ name: 'ideal: all offered', colour: '#777777', dashed: true, markers: false, points: [[0, 0], [maxRate, maxRate]] });
  return { kind: 'line', title: `Delivered vs offered updates/s (bench:e2e${context(summaries, true)})`, x: { label: 'offered updates/s' }, y: { label: 'delivered updates/s' }, series };
}

/** p50 solid and p99 dashed in each topology's colour; points without a positive latency are left out (log axis). */
export function latencySpec(summaries: SweepSummary[]): LineSpec {
  const series: LineSeries[] = present(summaries).flatMap((t) => (['p50', 'p99'] as const).map((p) => ({
    name: `${SHORT[t]} ${p}`, colour: COLOUR[t], dashed: p === 'p99',
    points: of(summaries, t).filter((s) => Number.isFinite(s[p]) && s[p] > 0).map((s): [number, number] => [s.rate, round(s[p], 2)]),
  })));
  return { kind: 'line', title: `Pipeline-added latency vs offered load (bench:e2e${context(summaries, true)})`, x: { label: 'offered updates/s' }, y: { label: 'ms (ingress in → agent in)', log: true }, series };
}

const PERCENTILES = [['p50', 'p50'], ['p90', 'p90'], ['p99', 'p99'], ['p99.9', 'p999']] as const;

/**
 * The offered rate of the percentile plot: the highest at which every topology delivered
 * SUSTAINED of the offer (beyond it the percentiles measure a growing queue, not the pipeline),
 * else the lowest rate they all ran; undefined when no rate has every topology with all percentiles.
 */
export function percentileRate(summaries: SweepSummary[]): number | undefined {
  const topologies = present(summaries);
  const complete = (s: SweepSummary): boolean => PERCENTILES.every(([, k]) => Number.isFinite(s[k]) && (s[k] as number) > 0);
  const rates = [...new Set(summaries.map((s) => s.rate))].sort((a, b) => a - b)
    .filter((r) => topologies.every((t) => summaries.some((s) => s.redis === t && s.rate === r && complete(s))));
  if (rates.length === 0) return undefined;
  const sustained = rates.filter((r) => summaries.filter((s) => s.rate === r).every((s) => s.deliveredPerS >= SUSTAINED * r));
  return sustained.at(-1) ?? rates[0];
}

export function percentilesSpec(summaries: SweepSummary[]): BarSpec | undefined {
  const rate = percentileRate(summaries);
  if (rate === undefined) return undefined;
  return {
    kind: 'bar', title: `Pipeline-added latency at ${fmt.int(rate)}/s offered (bench:e2e${context(summaries, true)})`, y: { label: 'ms (log)', log: true },
    categories: PERCENTILES.map(([name]) => name),
    series: present(summaries).map((t) => {
      const s = summaries.find((x) => x.redis === t && x.rate === rate) as SweepSummary;
      return { name: LABEL[t], values: PERCENTILES.map(([, k]) => round(s[k] as number, 2)) };
    }),
  };
}

/** The specs by file stem (e2e-<name>.json / .svg in the out dir). */
export function sweepSpecs(summaries: SweepSummary[]): Record<string, PlotSpec> {
  if (summaries.length === 0) throw new Error('no summaries to plot');
  const specs: Record<string, PlotSpec> = { 'e2e-offered-throughput': throughputSpec(summaries), 'e2e-latency': latencySpec(summaries) };
  const percentiles = percentilesSpec(summaries);
  if (percentiles) specs['e2e-latency-percentiles'] = percentiles;
  return specs;
}

/** Writes each spec as JSON (the format docs/img keeps) and its SVG; returns the paths written. */
export function writePlots(summaries: SweepSummary[], outDir: string): string[] {
  mkdirSync(outDir, { recursive: true });
  return Object.entries(sweepSpecs(summaries)).flatMap(([stem, spec]) => {
    const json = path.join(outDir, `${stem}.json`);
    const svg = path.join(outDir, `${stem}.svg`);
    writeFileSync(json, `${JSON.stringify(spec)}\n`);
    writeFileSync(svg, plot(spec));
    return [json, svg];
  });
}

function runSweep(opts: SweepOptions): { summaries: SweepSummary[]; failed: string[] } {
  mkdirSync(opts.summariesDir, { recursive: true });
  const summaries: SweepSummary[] = [];
  const failed: string[] = [];
  const total = opts.rates.length * opts.topologies.length;
  let n = 0;
  for (const rate of opts.rates) {
    for (const topology of opts.topologies) {
      console.log(`\n## sweep ${++n}/${total}: ${fmt.int(rate)}/s offered, ${LABEL[topology]}\n`);
      const args = e2eArgs(opts, rate, topology);
      // A stale file from an earlier sweep must not stand in for a run that died before writing.
      writeFileSync(summaryFile(opts.summariesDir, topology, rate), '');
      const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'e2e.ts'), ...args], { stdio: 'inherit' });
      // e2e.ts exits 1 but still writes its summary when an update was lost or reordered: the table says so.
      let summary: unknown;
      try {
        summary = JSON.parse(readFileSync(summaryFile(opts.summariesDir, topology, rate), 'utf8'));
      } catch {
        summary = undefined;
      }
      if (isSummary(summary)) summaries.push(summary);
      else failed.push(`${topology} at ${rate}/s (exit ${r.status ?? r.signal})`);
    }
  }
  return { summaries, failed };
}

function main(): void {
  const opts = parseSweepArgs(process.argv.slice(2));
  let summaries: SweepSummary[];
  if (opts.from) {
    summaries = loadSummaries(opts.from);
  } else {
    const run = runSweep(opts);
    summaries = run.summaries;
    if (run.failed.length) {
      console.log(`\nno summary from: ${run.failed.join('; ')}`);
      process.exitCode = 1;
    }
  }
  if (summaries.length === 0) throw new Error(`no summaries${opts.from ? ` in ${opts.from}` : ''}`);
  if (summaries.some((s) => !s.correct)) process.exitCode = 1;
  const m = summaries.find((s) => s.machine)?.machine;
  // The 1-minute load average at each run's start: other work on the machine moves the figures.
  const loads = summaries.flatMap((s) => (s.machine ? [Number(s.machine.loadavg.split(' ')[0])] : []));
  const load = loads.length ? `, load avg (1 min) at the runs' starts ${Math.min(...loads).toFixed(2)}-${Math.max(...loads).toFixed(2)}` : '';
  console.log(`\n# offered-load sweep${context(summaries)}${m ? `; ${m.nproc} cores (${m.cpuModel})${load}` : ''}\n`);
  console.log(sweepTable(summaries));
  console.log(`\nsummaries: ${opts.summariesDir}\nplots: ${writePlots(summaries, opts.outDir).join(', ')}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
