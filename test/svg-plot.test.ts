import t from 'tap';
import { barChart, lineChart, plot } from '../bench/tools/svg-plot.js';

t.test('a line chart has one path per series and a point per value, names escaped', async (t) => {
  const svg = lineChart({
    kind: 'line', title: 'p50 & p99', x: { label: 'updates/s' }, y: { label: 'ms', log: true },
    series: [{ name: 'p50', points: [[500, 3], [2000, 44]] }, { name: '<p99>', points: [[500, 10], [2000, 267]] }],
  });
  t.equal(svg.match(/<path /g)?.length, 2);
  t.equal(svg.match(/<circle /g)?.length, 4);
  t.match(svg, /p50 &amp; p99/);
  t.match(svg, /&lt;p99&gt;/);
  t.notMatch(svg, /NaN/);
});

t.test('a bar chart draws a bar per series and category, and refuses ragged series', async (t) => {
  const svg = barChart({ kind: 'bar', title: 'CPU per master', y: { label: 'µs' }, categories: ['a', 'b', 'c'], series: [{ name: 'single', values: [213, 0, 0] }, { name: 'cluster', values: [70, 71, 69] }] });
  t.equal(svg.match(/<rect x=/g)?.length, 6 + 2, 'six bars and two legend swatches');
  t.notMatch(svg, /NaN/);
  t.throws(() => barChart({ kind: 'bar', title: 'x', y: { label: 'y' }, categories: ['a'], series: [{ name: 's', values: [1, 2] }] }), /2 values for 1 categories/);
  t.throws(() => plot({ kind: 'line', title: 'x', x: { label: 'x' }, y: { label: 'y', log: true }, series: [{ name: 's', points: [[1, 0]] }] }), /positive/);
});
