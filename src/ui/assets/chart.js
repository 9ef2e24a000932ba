// Numeric metrics over a model's versions: one small SVG line chart per
// metric that at least two versions report as a number, drawn here with
// `s()` (no library): x the versions oldest to newest, y the value between
// its minimum and maximum. Each point's <title> carries its version and
// value, and a table below holds the same numbers. Names and values are
// text nodes, like everything else the registry gives the page.

import { h, s } from './core.js';
import { metricText } from './facts.js';

const W = 320, H = 150, LEFT = 60, RIGHT = 16, TOP = 14, BOTTOM = 32;

function numeric(metrics, name) {
  return metrics && Object.hasOwn(metrics, name) && typeof metrics[name] === 'number' && Number.isFinite(metrics[name]);
}

// [{name, points: [{v, value}]}] for each metric two versions or more report as a number.
export function chartedMetrics(versions) {
  const oldest = [...versions].reverse();
  const names = [];
  for (const v of oldest) for (const name of Object.keys(v.metrics || {})) if (numeric(v.metrics, name) && !names.includes(name)) names.push(name);
  return names
    .map((name) => ({ name, points: oldest.filter((v) => numeric(v.metrics, name)).map((v) => ({ v, value: v.metrics[name] })) }))
    .filter((m) => m.points.length >= 2);
}

function chart(metric, i) {
  const values = metric.points.map((p) => p.value);
  const min = Math.min(...values), max = Math.max(...values);
  const n = metric.points.length;
  const x = (k) => LEFT + (k * (W - LEFT - RIGHT)) / (n - 1);
  const y = (value) => (max === min ? TOP + (H - TOP - BOTTOM) / 2 : TOP + ((max - value) * (H - TOP - BOTTOM)) / (max - min));
  const line = metric.points.map((p, k) => `${k ? 'L' : 'M'}${x(k).toFixed(1)} ${y(p.value).toFixed(1)}`).join(' ');
  const every = Math.ceil(n / 8);
  const title = `chart-${i}-title`;
  return h('figure', { class: 'metric-chart', 'data-metric': metric.name },
    h('figcaption', {}, metric.name),
    s('svg', { class: 'spark', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': title },
      s('title', { id: title }, `${metric.name} over ${n} versions, from ${metricText(min, false)} to ${metricText(max, false)}`),
      s('line', { class: 'axis', x1: LEFT, y1: TOP, x2: LEFT, y2: H - BOTTOM }),
      s('line', { class: 'axis', x1: LEFT, y1: H - BOTTOM, x2: W - RIGHT, y2: H - BOTTOM }),
      s('text', { class: 'max', x: LEFT - 6, y: TOP + 4, 'text-anchor': 'end' }, metricText(max, true)),
      s('text', { class: 'min', x: LEFT - 6, y: H - BOTTOM, 'text-anchor': 'end' }, metricText(min, true)),
      s('path', { class: 'line', d: line }),
      metric.points.map((p, k) => s('circle', { class: 'dot', cx: x(k).toFixed(1), cy: y(p.value).toFixed(1), r: 4, 'data-number': p.v.number },
        s('title', {}, `v${p.v.label}: ${metric.name} = ${metricText(p.value, false)}`))),
      metric.points.map((p, k) => (k % every === 0 || k === n - 1
        ? s('text', { class: 'version', x: x(k).toFixed(1), y: H - BOTTOM + 18, 'text-anchor': 'middle' }, `v${p.v.label}`) : null))));
}

// The section, or null when no metric has two numbers to draw.
export function metricCharts(versions) {
  const metrics = chartedMetrics(versions);
  if (!metrics.length) return null;
  const rows = [...versions].reverse().filter((v) => metrics.some((m) => numeric(v.metrics, m.name)));
  return h('section', { id: 'metric-charts', 'aria-labelledby': 'metric-charts-h' },
    h('h2', { id: 'metric-charts-h' }, 'Metrics over versions'),
    h('div', { class: 'metric-charts' }, metrics.map(chart)),
    h('div', { class: 'table-wrap' }, h('table', { id: 'metric-values' },
      h('caption', { class: 'visually-hidden' }, 'Metric values by version, oldest first'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Version'), metrics.map((m) => h('th', { scope: 'col', class: 'num' }, m.name)))),
      h('tbody', {}, rows.map((v) => h('tr', { 'data-number': v.number }, h('th', { scope: 'row' }, `v${v.label}`),
        metrics.map((m) => h('td', { class: 'num' }, numeric(v.metrics, m.name) ? metricText(v.metrics[m.name], false) : '—'))))))));
}
