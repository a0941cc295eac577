/**
 * ztm start-up: wall time of `ztm --help` (parse, print, exit) as an operator's shell runs it,
 * against baselines measured in the same run: a bare `node -e 0` (the floor) and ztm through tsx
 * from the TypeScript sources (what `cli/ztm.js` ran before it used the compiled dist/).
 *
 *   node --import tsx bench/ztm-startup.ts [--runs 20]
 *
 * Runs are interleaved (node, dist, tsx, node, dist, tsx, …) so that load from anything else on the
 * machine hits all three alike; medians and p90 are reported, with the ratios to the floor.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fmt, machineInfo, printMachine, ROOT, Samples, table } from './lib/common.js';
import { ensureBuilt } from '../scripts/build.mjs';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 3 || runs > 1000) throw new Error('--runs: a whole number from 3 to 1000');

const VARIANTS: Record<string, string[]> = {
  'node -e 0 (floor)': ['-e', '0'],
  'ztm --help (dist, cli/ztm.js)': [path.join(ROOT, 'cli/ztm.js'), '--help'],
  'ztm --help (tsx, sources)': ['--import', 'tsx', path.join(ROOT, 'cli/run.ts'), '--help'],
};

await ensureBuilt();
const samples = new Map(Object.keys(VARIANTS).map((k) => [k, new Samples()]));
for (let i = 0; i < runs + 1; i++) {
  for (const [name, args] of Object.entries(VARIANTS)) {
    const started = process.hrtime.bigint();
    const res = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (res.status !== 0) throw new Error(`${name} exited ${res.status}: ${res.stderr.toString().slice(0, 300)}`);
    if (i > 0) samples.get(name)?.add(ms); // the first round warms the page cache
  }
}

printMachine(machineInfo());
const floor = samples.get('node -e 0 (floor)')?.percentiles(50)[0] ?? Number.NaN;
console.log(table(['variant', 'p50 ms', 'p90 ms', 'p50 / floor'], [...samples].map(([name, s]) => {
  const [p50, p90] = s.percentiles(50, 90) as [number, number];
  return [name, fmt.ms(p50), fmt.ms(p90), fmt.ratio(p50 / floor)];
})));
