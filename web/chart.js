// Hand-written SVG charts: a sparkline, stacked columns over time, horizontal bars. Colours
// come from one palette, picked per series name so a key keeps its colour on every chart.

const NS = 'http://www.w3.org/2000/svg';
const PALETTE = ['#2563eb', '#16a34a', '#f59e0b', '#dc2626', '#7c3aed', '#0891b2', '#db2777',
  '#65a30d', '#ea580c', '#4f46e5'];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c);
  return el;
}

function text(x, y, s, anchor = 'start') {
  const t = svg('text', { x, y, 'text-anchor': anchor });
  t.textContent = s;
  return t;
}

function titled(el, s) {
  const t = svg('title');
  t.textContent = s;
  el.append(t);
  return el;
}

/** The colour of series NAME (stable for a name). */
export function colour(name) {
  let hash = 0;
  for (const ch of String(name)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

/** A sparkline of VALUES (oldest first) over SLOTS points, scaled to at least MINMAX. */
export function sparkline(values, { slots = 120, minMax = 1, label = '' } = {}) {
  const w = 300;
  const hgt = 48;
  const max = Math.max(minMax, ...values);
  const step = w / Math.max(1, slots - 1);
  const offset = slots - values.length;
  const pts = values.map((v, i) => `${((offset + i) * step).toFixed(1)},${(hgt - 2 - (v / max) * (hgt - 6)).toFixed(1)}`);
  const el = svg('svg', { class: 'spark', viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': label });
  el.append(svg('line', { x1: 0, y1: hgt - 1, x2: w, y2: hgt - 1, class: 'grid-line' }));
  if (pts.length > 1) {
    const first = pts[0].split(',')[0];
    el.append(svg('polygon', { points: `${first},${hgt} ${pts.join(' ')} ${w},${hgt}`, fill: '#2563eb', 'fill-opacity': 0.12 }));
    el.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: '#2563eb', 'stroke-width': 1.5, 'vector-effect': 'non-scaling-stroke' }));
  }
  return el;
}

/**
 * Stacked columns: BUCKETS [{label, parts: {series: value}}] in order, SERIES the names to
 * stack (legend order). Returns an element holding the chart and its legend.
 */
export function stackedColumns(buckets, series, { unit = '', height = 220 } = {}) {
  const w = 1100;
  const pad = { l: 48, r: 8, t: 8, b: 22 };
  const totals = buckets.map((b) => series.reduce((s, n) => s + (b.parts[n] || 0), 0));
  const max = Math.max(1, ...totals);
  const innerW = w - pad.l - pad.r;
  const innerH = height - pad.t - pad.b;
  const colW = innerW / Math.max(1, buckets.length);
  const el = svg('svg', { class: 'chart', viewBox: `0 0 ${w} ${height}`, role: 'img' });
  for (const f of [0, 0.5, 1]) {
    const y = pad.t + innerH * (1 - f);
    el.append(svg('line', { x1: pad.l, x2: w - pad.r, y1: y, y2: y, class: 'grid-line' }));
    el.append(text(pad.l - 6, y + 3, compact(max * f), 'end'));
  }
  const labelEvery = Math.ceil(buckets.length / 12);
  buckets.forEach((b, i) => {
    let y = pad.t + innerH;
    const x = pad.l + i * colW + colW * 0.15;
    for (const name of series) {
      const v = b.parts[name] || 0;
      if (v <= 0) continue;
      const hh = (v / max) * innerH;
      y -= hh;
      el.append(titled(svg('rect', { x: x.toFixed(1), y: y.toFixed(1), width: (colW * 0.7).toFixed(1), height: hh.toFixed(1), fill: colour(name) }),
        `${b.label} · ${name}: ${v.toLocaleString()} ${unit}`));
    }
    if (i % labelEvery === 0) el.append(text(pad.l + i * colW + colW / 2, height - 6, b.label, 'middle'));
  });
  return wrapLegend(el, series);
}

/** Horizontal bars: ITEMS [{label, value}] sorted by the caller. */
export function horizontalBars(items, { unit = '' } = {}) {
  const w = 540;
  const row = 22;
  const labelW = 140;
  const max = Math.max(1, ...items.map((i) => i.value));
  const el = svg('svg', { class: 'chart', viewBox: `0 0 ${w} ${Math.max(row, items.length * row)}`, role: 'img' });
  items.forEach((item, i) => {
    const y = i * row;
    const bw = ((w - labelW - 70) * item.value) / max;
    el.append(text(0, y + 15, truncate(item.label, 20)));
    el.append(titled(svg('rect', { x: labelW, y: y + 4, width: Math.max(1, bw).toFixed(1), height: row - 8, rx: 2, fill: colour(item.label) }),
      `${item.label}: ${item.value.toLocaleString()} ${unit}`));
    el.append(text(labelW + bw + 6, y + 15, compact(item.value)));
  });
  return el;
}

function wrapLegend(chart, series) {
  const legend = document.createElement('div');
  legend.className = 'legend';
  for (const name of series) {
    const item = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.style.background = colour(name);
    item.append(swatch, document.createTextNode(name));
    legend.append(item);
  }
  const box = document.createElement('div');
  box.append(chart, legend);
  return box;
}

function compact(v) {
  if (v >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return String(Math.round(v * 10) / 10);
}

function truncate(s, n) {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
