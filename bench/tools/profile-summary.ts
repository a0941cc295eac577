/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by package/file, so a
 * benchmark's hot path can be read on a terminal. Usage: node --import tsx bench/tools/profile-summary.ts <file> [top]
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
const [file, topArg, callersOf] = process.argv.slice(2);
if (!file) throw new Error('usage: profile-summary <file.cpuprofile> [top] [function name: print its callers]');
const top = Number(topArg ?? 30);
const prof = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map<number, number>();
prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const fnTime = new Map<string, number>();
const fileTime = new Map<string, number>();
for (const [id, t] of self) {
  const n = byId.get(id);
  if (!n) continue;
  const url = n.callFrame.url.replace(/^file:\/\//, '').replace(/.*node_modules\//, 'nm:').replace(/.*\/work\/main\//, '');
  const fn = `${n.callFrame.functionName || '(anon)'} ${url}:${n.callFrame.lineNumber + 1}`;
  fnTime.set(fn, (fnTime.get(fn) ?? 0) + t);
  const pkg = url.startsWith('nm:') ? url.split('/').slice(0, url.startsWith('nm:@') ? 2 : 1).join('/') : url || n.callFrame.functionName;
  fileTime.set(pkg, (fileTime.get(pkg) ?? 0) + t);
}
const show = (m: Map<string, number>): void => {
  for (const [k, t] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${((t / total) * 100).toFixed(1).padStart(5)}%  ${(t / 1000).toFixed(0).padStart(6)} ms  ${k}`);
};
console.log(`total sampled ${(total / 1000).toFixed(0)} ms\n-- by package/file`);
show(fileTime);
console.log('-- by function');
show(fnTime);

if (callersOf) {
  // Self time of `callersOf` attributed to its call paths (3 frames up).
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const paths = new Map<string, number>();
  for (const [id, t] of self) {
    const n = byId.get(id);
    if (!n || n.callFrame.functionName !== callersOf) continue;
    const chain: string[] = [];
    let p = parent.get(id);
    for (let i = 0; i < Number(process.env.DEPTH ?? 4) && p !== undefined; i++, p = parent.get(p)) {
      const f = byId.get(p)?.callFrame;
      chain.push(`${f?.functionName || '(anon)'}@${(f?.url ?? '').split('/').slice(-2).join('/')}:${(f?.lineNumber ?? 0) + 1}`);
    }
    const key = chain.join(' < ');
    paths.set(key, (paths.get(key) ?? 0) + t);
  }
  console.log(`-- callers of ${callersOf}`);
  show(paths);
}
