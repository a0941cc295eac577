import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import {
  e2eArgs, latencySpec, loadSummaries, parseSweepArgs, percentileRate, percentilesSpec, summaryFile, sweepSpecs, sweepTable, throughputSpec, writePlots,
  type SweepSummary,
} from '../bench/e2e-sweep.js';

/** Fixed summaries as bench/e2e.ts --json-out writes them; the cluster does not keep up at 3,000/s. */
const run = (redis: 'single' | 'cluster', rate: number, delivered: number, p50: number, p99: number, extra: Partial<SweepSummary> = {}): SweepSummary => ({
  redis, rate, deliveredPerS: delivered, p50, p90: p50 * 2, p99, p999: p99 * 3, max: p99 * 5, redisUsPerUpdate: redis === 'single' ? 140.7 : 226.4,
  commandsPerUpdate: 24, perMaster: redis === 'single' ? [{ port: 7000, usPerUpdate: 140.7, commandShare: 1 }]
    : [{ port: 7001, usPerUpdate: 77.9, commandShare: 0.34 }, { port: 7002, usPerUpdate: 73.1, commandShare: 0.33 }, { port: 7003, usPerUpdate: 76.2, commandShare: 0.33 }],
  correct: true, duration: 20, tenants: 1000, ...extra,
});
const SUMMARIES: SweepSummary[] = [
  run('cluster', 3000, 2400, 30, 400),
  run('single', 1000, 998, 1.8, 9.5),
  run('single', 3000, 2990, 4.2, 60),
  run('cluster', 1000, 997, 2.1, 12),
];

t.test('arguments: rates sorted and de-duplicated, topologies in a fixed order, e2e options passed through', async (t) => {
  const o = parseSweepArgs(['--rates', '2000,500, 1000,500', '--redis', 'cluster,single', '--duration', '20', '--tenants', '100', '--out-dir', '/tmp/x']);
  t.same(o.rates, [500, 1000, 2000]);
  t.same(o.topologies, ['single', 'cluster']);
  t.same(o.passThrough, ['--duration', '20', '--tenants', '100']);
  t.equal(o.summariesDir, path.join('/tmp/x', 'e2e-sweep'));
  t.same(e2eArgs(o, 1000, 'cluster'), ['--rate', '1000', '--redis', 'cluster', '--duration', '20', '--tenants', '100', '--json-out', path.join('/tmp/x/e2e-sweep', 'e2e-cluster-1000.json')]);
  t.same(parseSweepArgs(['--rates', '300', '--redis', 'both']).topologies, ['single', 'cluster']);
  t.equal(parseSweepArgs(['--rates', '300', '--summaries', '/s']).summariesDir, '/s');
  const from = parseSweepArgs(['--from', '/saved', '--out-dir', '/o']);
  t.equal(from.from, '/saved');
  t.equal(from.outDir, '/o');
  t.throws(() => parseSweepArgs([]), /--rates is required/);
  t.throws(() => parseSweepArgs(['--rates', '500,abc']), /"abc" is not a positive/);
  t.throws(() => parseSweepArgs(['--rates', '0']), /not a positive/);
  t.throws(() => parseSweepArgs(['--rates', '500', '--redis', 'sentinel']), /"sentinel" is not single/);
  t.throws(() => parseSweepArgs(['--rates', '500', '--json-out', 'x']), /Unknown option/, 'the sweep owns --json-out');
});

t.test('the table has a row per run, topology then rate, with its numbers', async (t) => {
  const lines = sweepTable(SUMMARIES).split('\n');
  t.equal(lines.length, 2 + 4);
  const cells = lines.slice(2).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
  t.same(cells.map((c) => [c[0], c[1]]), [['1,000', 'one node'], ['3,000', 'one node'], ['1,000', '3-master cluster'], ['3,000', '3-master cluster']]);
  t.same(cells[0], ['1,000', 'one node', '998', '1.80', '3.60', '9.50', '28.5', '140.7', '140.7', 'yes']);
  t.same(cells[3], ['3,000', '3-master cluster', '2,400', '30.0', '60.0', '400.0', '1200.0', '226.4', '77.9 / 73.1 / 76.2', 'yes']);
  // An older summary without p90 / p99.9 still makes a row.
  const old = sweepTable([{ ...run('single', 500, 500, 1, 5), p90: undefined, p999: undefined, correct: false }]).split('\n')[2] as string;
  t.same(old.split('|').slice(1, -1).map((c) => c.trim()).slice(3, 7), ['1.00', '-', '5.00', '-']);
  t.match(old, /\| NO +\|$/);
});

t.test('throughput plot: a series per topology with the delivered rates, and the ideal line', async (t) => {
  const spec = throughputSpec(SUMMARIES);
  t.same(spec.series.map((s) => s.name), ['one node', '3-master cluster', 'ideal: all offered']);
  t.same(spec.series[0]?.points, [[1000, 998], [3000, 2990]]);
  t.same(spec.series[1]?.points, [[1000, 997], [3000, 2400]]);
  t.same(spec.series[2]?.points, [[0, 0], [3000, 3000]]);
  t.equal(spec.series[2]?.dashed, true);
  t.equal(spec.series[2]?.markers, false);
  t.equal(spec.title, 'Delivered vs offered updates/s (bench:e2e, 20 s/point)', 'short enough for the 640 px frame');
  t.same(throughputSpec([run('single', 300, 299.93098457218256, 1, 2)]).series[0]?.points, [[300, 299.9]], 'rounded for the spec file');
  t.same(throughputSpec([run('cluster', 500, 490, 1, 2)]).series.map((s) => s.name), ['3-master cluster', 'ideal: all offered'], 'only the topologies that ran');
});

t.test('latency plot: p50 and p99 per topology on a log axis, p99 dashed in the same colour', async (t) => {
  const spec = latencySpec(SUMMARIES);
  t.equal(spec.y.log, true);
  t.same(spec.series.map((s) => [s.name, s.points]), [
    ['one node p50', [[1000, 1.8], [3000, 4.2]]],
    ['one node p99', [[1000, 9.5], [3000, 60]]],
    ['cluster p50', [[1000, 2.1], [3000, 30]]],
    ['cluster p99', [[1000, 12], [3000, 400]]],
  ]);
  t.equal(spec.series[0]?.colour, spec.series[1]?.colour);
  t.not(spec.series[0]?.colour, spec.series[2]?.colour);
  t.same(spec.series.map((s) => !!s.dashed), [false, true, false, true]);
  // A run with no measured latency (NaN is null in JSON) leaves its point out rather than breaking the log axis.
  const gap = latencySpec([run('single', 500, 0, Number.NaN, Number.NaN), run('single', 1000, 1000, 2, 8)]);
  t.same(gap.series[0]?.points, [[1000, 2]]);
  t.same(latencySpec([run('single', 300, 300, 1.44677734375, 6.96533203125)]).series.map((s) => s.points), [[[300, 1.45]], [[300, 6.97]]]);
});

t.test('percentile plot: at the highest rate every topology sustained, the four percentiles of each', async (t) => {
  t.equal(percentileRate(SUMMARIES), 1000, 'the cluster delivered 2,400 of 3,000 at 3,000/s');
  const spec = percentilesSpec(SUMMARIES);
  t.same(spec?.categories, ['p50', 'p90', 'p99', 'p99.9']);
  t.same(spec?.series, [{ name: 'one node', values: [1.8, 3.6, 9.5, 28.5] }, { name: '3-master cluster', values: [2.1, 4.2, 12, 36] }]);
  t.equal(spec?.title, 'Pipeline-added latency at 1,000/s offered (bench:e2e, 20 s/point)');
  t.equal(percentileRate(SUMMARIES.filter((s) => s.redis === 'single')), 3000);
  t.equal(percentileRate([run('single', 2000, 1000, 5, 50), run('single', 4000, 1100, 9, 90)]), 2000, 'none sustained: the lowest rate');
  t.equal(percentilesSpec([{ ...run('single', 500, 500, 1, 5), p90: undefined }]), undefined, 'older summaries without p90: no plot');
});

t.test('summaries saved by a sweep are re-plotted from their directory', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'e2e-sweep-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const s of SUMMARIES) writeFileSync(summaryFile(dir, s.redis, s.rate), JSON.stringify(s));
  writeFileSync(path.join(dir, 'e2e-latency.json'), JSON.stringify(latencySpec(SUMMARIES)));
  writeFileSync(path.join(dir, 'e2e-single-9000.json'), ''); // a run that died before writing
  const loaded = loadSummaries(dir);
  t.same(loaded.map((s) => [s.redis, s.rate, s.deliveredPerS]), [['single', 1000, 998], ['single', 3000, 2990], ['cluster', 1000, 997], ['cluster', 3000, 2400]]);
  const written = writePlots(loaded, dir);
  t.same(written.map((f) => path.basename(f)), [
    'e2e-offered-throughput.json', 'e2e-offered-throughput.svg', 'e2e-latency.json', 'e2e-latency.svg', 'e2e-latency-percentiles.json', 'e2e-latency-percentiles.svg',
  ]);
  t.same(JSON.parse(readFileSync(path.join(dir, 'e2e-offered-throughput.json'), 'utf8')), sweepSpecs(SUMMARIES)['e2e-offered-throughput']);
  const svg = readFileSync(path.join(dir, 'e2e-offered-throughput.svg'), 'utf8');
  t.equal(svg.match(/<path /g)?.length, 3, 'two topologies and the ideal line');
  t.equal(svg.match(/<circle /g)?.length, 4, 'markers on the measured points only');
  t.equal(svg.match(/stroke-dasharray/g)?.length, 2, 'the ideal line and its legend swatch');
  t.notMatch(readFileSync(path.join(dir, 'e2e-latency.svg'), 'utf8'), /NaN/);
  t.throws(() => sweepSpecs([]), /no summaries/);
});
