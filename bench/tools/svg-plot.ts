/**
 * Plots for docs/benchmarks.md: small, dependency-free SVG line and bar charts from a JSON spec, so a
 * benchmark's numbers and its picture come from the same file and render on GitHub without a build.
 *
 *   node --import tsx bench/tools/svg-plot.ts spec.json out.svg
 *
 * A spec is `{ kind: 'line', title, x: {label, log?}, y: {label, log?}, series: [{name, points: [[x, y], ...], dashed?, markers?, colour?}] }`
 * or `{ kind: 'bar', title, y: {label}, categories: [...], series: [{name, values: [...]}] }`.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export interface Axis { label: string; log?: boolean }
/**
 * `dashed`: drawn dashed (a second measure of the same series' colour, or a reference line such as
 * an ideal y = x, which also sets `markers: false`); `colour` overrides the palette.
 */
export interface LineSeries { name: string; points: Array<[number, number]>; dashed?: boolean; markers?: boolean; colour?: string }
export interface BarSeries { name: string; values: number[] }
export interface LineSpec { kind: 'line'; title: string; x: Axis; y: Axis; series: LineSeries[] }
export interface BarSpec { kind: 'bar'; title: string; y: Axis; categories: string[]; series: BarSeries[] }
export type PlotSpec = LineSpec | BarSpec;

const W = 640;
const H = 360;
const PAD = { left: 70, right: 20, top: 40, bottom: 70 };
/** Colour-blind-safe (Okabe–Ito). */
const COLOURS = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#F0E442', '#000000'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

interface Scale { map(v: number): number; ticks: number[] }

function scale(min: number, max: number, from: number, to: number, log = false): Scale {
  if (log) {
    if (min <= 0) throw new Error('svg-plot: a log axis needs positive values');
    const lo = Math.floor(Math.log10(min));
    const hi = Math.ceil(Math.log10(max));
    const span = Math.max(hi - lo, 1);
    const ticks: number[] = [];
    for (let e = lo; e <= hi; e++) ticks.push(10 ** e);
    return { map: (v) => from + ((Math.log10(v) - lo) / span) * (to - from), ticks };
  }
  const lo = Math.min(0, min);
  const raw = (max - lo) / 5 || 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const hi = Math.ceil(max / step) * step || step;
  const ticks: number[] = [];
  for (let t = lo; t <= hi + step / 2; t += step) ticks.push(+t.toPrecision(12));
  return { map: (v) => from + ((v - lo) / (hi - lo)) * (to - from), ticks };
}

interface LegendEntry { name: string; colour: string; dashed?: boolean }

function frame(title: string, body: string[], legend: LegendEntry[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    ...body,
    ...legend.map(({ name, colour, dashed }, i) => {
      const x = PAD.left + i * 150;
      const y = H - 18;
      const swatch = dashed
        ? `<line x1="${x}" y1="${y - 3}" x2="${x + 12}" y2="${y - 3}" stroke="${colour}" stroke-width="2" stroke-dasharray="4 2"/>`
        : `<rect x="${x}" y="${y - 9}" width="12" height="12" fill="${colour}"/>`;
      return `${swatch}<text x="${x + 17}" y="${y + 1}">${esc(name)}</text>`;
    }),
    '</svg>',
    '',
  ].join('\n');
}

function axes(xLabel: string, yLabel: string, ys: Scale, yFmt = fmt): string[] {
  const out = [
    `<line x1="${PAD.left}" y1="${H - PAD.bottom}" x2="${W - PAD.right}" y2="${H - PAD.bottom}" stroke="#333"/>`,
    `<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${H - PAD.bottom}" stroke="#333"/>`,
    `<text x="${(PAD.left + W - PAD.right) / 2}" y="${H - PAD.bottom + 36}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(16 ${(PAD.top + H - PAD.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  ];
  for (const t of ys.ticks) {
    const y = ys.map(t).toFixed(1);
    out.push(`<line x1="${PAD.left}" y1="${y}" x2="${W - PAD.right}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${PAD.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${yFmt(t)}</text>`);
  }
  return out;
}

export function lineChart(spec: LineSpec): string {
  const pts = spec.series.flatMap((s) => s.points);
  if (pts.length === 0) throw new Error('svg-plot: no points');
  const xs = scale(Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0])), PAD.left, W - PAD.right, spec.x.log);
  const ys = scale(Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1])), H - PAD.bottom, PAD.top, spec.y.log);
  const body = axes(spec.x.label, spec.y.label, ys);
  for (const t of xs.ticks) {
    body.push(`<text x="${xs.map(t).toFixed(1)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  const colourOf = (s: LineSeries, i: number): string => s.colour ?? COLOURS[i % COLOURS.length]!;
  spec.series.forEach((s, i) => {
    const c = colourOf(s, i);
    const d = s.points.map(([x, y], j) => `${j ? 'L' : 'M'}${xs.map(x).toFixed(1)},${ys.map(y).toFixed(1)}`).join(' ');
    body.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    if (s.markers === false) return;
    for (const [x, y] of s.points) body.push(`<circle cx="${xs.map(x).toFixed(1)}" cy="${ys.map(y).toFixed(1)}" r="3" fill="${c}"><title>${esc(s.name)}: ${fmt(x)}, ${fmt(y)}</title></circle>`);
  });
  return frame(spec.title, body, spec.series.map((s, i) => ({ name: s.name, colour: colourOf(s, i), dashed: s.dashed })));
}

export function barChart(spec: BarSpec): string {
  const values = spec.series.flatMap((s) => s.values);
  if (values.length === 0) throw new Error('svg-plot: no values');
  for (const s of spec.series) {
    if (s.values.length !== spec.categories.length) throw new Error(`svg-plot: series ${s.name} has ${s.values.length} values for ${spec.categories.length} categories`);
  }
  const ys = scale(Math.min(...values), Math.max(...values), H - PAD.bottom, PAD.top, spec.y.log);
  const body = axes('', spec.y.label, ys);
  const groupW = (W - PAD.left - PAD.right) / spec.categories.length;
  const barW = (groupW * 0.8) / spec.series.length;
  spec.categories.forEach((cat, ci) => {
    const gx = PAD.left + ci * groupW + groupW * 0.1;
    body.push(`<text x="${(gx + groupW * 0.4).toFixed(1)}" y="${H - PAD.bottom + 16}" text-anchor="middle">${esc(cat)}</text>`);
    spec.series.forEach((s, si) => {
      const v = s.values[ci]!;
      const y = ys.map(v);
      const base = ys.map(spec.y.log ? ys.ticks[0]! : 0);
      body.push(`<rect x="${(gx + si * barW).toFixed(1)}" y="${Math.min(y, base).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${Math.abs(base - y).toFixed(1)}" fill="${COLOURS[si % COLOURS.length]}"><title>${esc(s.name)} ${esc(cat)}: ${fmt(v)}</title></rect>`);
    });
  });
  return frame(spec.title, body, spec.series.map((s, i) => ({ name: s.name, colour: COLOURS[i % COLOURS.length]! })));
}

export function plot(spec: PlotSpec): string {
  if (spec.kind === 'line') return lineChart(spec);
  if (spec.kind === 'bar') return barChart(spec);
  throw new Error(`svg-plot: unknown kind ${(spec as { kind: unknown }).kind as string}`);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  const [specPath, outPath] = process.argv.slice(2);
  if (!specPath || !outPath) {
    console.error('usage: svg-plot.ts <spec.json> <out.svg>');
    process.exit(2);
  }
  writeFileSync(outPath, plot(JSON.parse(readFileSync(specPath, 'utf8')) as PlotSpec));
}
