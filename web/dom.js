// Small DOM and formatting helpers. Text always goes in as text nodes (never as HTML), so
// model names, log lines and replies cannot inject markup.

/** Creates element TAG with ATTRS (class, dataset, on* handlers, properties) and CHILDREN. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces EL's children with CHILDREN. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** "1.5 GiB" for a byte count. */
export function fmtBytes(n) {
  if (!Number.isFinite(n) || n <= 0) return n === 0 ? '0 B' : '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

/** "2h 03m" / "45 s" / "120 ms" for milliseconds. */
export function fmtMs(ms) {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor(s / 3600) % 24}h`;
}

/** "12,345" */
export function fmtNum(n, digits = 0) {
  if (!Number.isFinite(n)) return '–';
  return n.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** A local date-time for unix seconds, milliseconds or an RFC 3339 string. */
export function fmtTime(t) {
  if (t === null || t === undefined || t === '') return '–';
  const d = typeof t === 'number' ? new Date(t < 1e12 ? t * 1000 : t) : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

/** A badge for a model state. */
export function stateBadge(state) {
  return h('span', { class: `badge ${state || ''}`, dataset: { state: state || '' } }, state || 'unknown');
}

/** While MODEL (a /status entry) starts: its load progress as a percentage and a bar, else null. */
export function loadProgress(model) {
  if (model?.state !== 'starting' || typeof model.load_progress !== 'number') return null;
  const pct = Math.round(Math.min(1, Math.max(0, model.load_progress)) * 100);
  const fillEl = h('span');
  fillEl.style.width = `${pct}%`;
  return h('div', { class: 'progress', dataset: { progress: String(pct) }, title: 'loading' },
    h('span', { class: 'muted' }, `${pct}%`), h('div', { class: 'bar' }, fillEl));
}

/** A badge for an HTTP status. */
export function statusBadge(status) {
  const cls = status >= 500 ? 's5xx' : status >= 400 ? 's4xx' : status >= 200 ? 's2xx' : '';
  return h('span', { class: `badge ${cls}` }, String(status));
}

/** A "used of budget" bar with its caption; BUDGET 0 means no budget. */
export function usageBar(label, used, budget) {
  const frac = budget > 0 ? Math.min(1, used / budget) : 0;
  const fillEl = h('span');
  fillEl.style.width = `${(frac * 100).toFixed(1)}%`;
  const cls = frac >= 0.95 ? 'bar full' : frac >= 0.8 ? 'bar high' : 'bar';
  const caption = budget > 0
    ? `${fmtBytes(used)} of ${fmtBytes(budget)} (${Math.round(frac * 100)}%)`
    : `${fmtBytes(used)} in use, no budget set`;
  return h('div', { class: 'usage', dataset: { label } },
    h('div', {}, h('strong', {}, label), ' ', h('span', { class: 'muted' }, caption)),
    h('div', { class: cls }, fillEl));
}

/** Resolves after MS, or at once (rejecting nothing) when SIGNAL aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** The path of a model's log stream (ids may contain '/': each segment is encoded). */
export function modelPath(prefix, id) {
  return prefix + id.split('/').map(encodeURIComponent).join('/');
}
