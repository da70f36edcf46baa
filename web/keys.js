// Keys and usage: the database keys (GET /admin/keys) with revoke (DELETE /admin/keys/NAME)
// and a create form (POST /admin/keys, the key shown once), and usage charts per key and
// model from GET /v1/usage (tokens or requests per hour or day, stacked by key).

import { del, get, isAbort, post } from './api.js';
import { horizontalBars, stackedColumns } from './chart.js';
import { fill, fmtMs, fmtNum, fmtTime, h } from './dom.js';

const RANGES = { '24h': { s: 86400, by: 'hour' }, '7d': { s: 7 * 86400, by: 'day' }, '30d': { s: 30 * 86400, by: 'day' } };
const LIMIT_FIELDS = ['rpm', 'tpm', 'concurrency', 'max_tokens', 'budget_tokens'];

const limitText = (v) => (v > 0 ? fmtNum(v) : '–');

function keysTable(list, revoke) {
  if (!list.length) return h('p', { class: 'notice' }, 'No keys in the database yet (keys from the config file are not listed here).');
  return h('div', { class: 'scroll' }, h('table', { id: 'keys-table' },
    h('thead', {}, h('tr', {}, ['name', 'prefix', 'models', ...LIMIT_FIELDS, 'expires', 'created', '']
      .map((c) => h('th', { class: LIMIT_FIELDS.includes(c) ? 'num' : '' }, c)))),
    h('tbody', {}, list.map((k) => h('tr', { dataset: { key: k.name } },
      h('td', {}, h('strong', {}, k.name)),
      h('td', { class: 'mono' }, `${k.prefix}…`),
      h('td', {}, Array.isArray(k.models) && k.models.length ? k.models.map((m) => h('span', { class: 'chip' }, m)) : h('span', { class: 'muted' }, 'all')),
      LIMIT_FIELDS.map((f) => h('td', { class: 'num' }, limitText(k[f]))),
      h('td', {}, k.expires_at > 0 ? fmtTime(k.expires_at) : '–'),
      h('td', {}, fmtTime(k.created_at)),
      h('td', {}, k.revoked ? h('span', { class: 'badge failed' }, 'revoked') : revoke(k.name)))))));
}

function usageView(rows, range, metric) {
  const { s, by } = RANGES[range];
  const step = by === 'hour' ? 3600 : 86400;
  const now = Math.floor(Date.now() / 1000);
  const first = Math.floor((now - s) / step) * step + step;
  const value = (r) => (metric === 'requests' ? r.requests : r.total_tokens) || 0;
  const buckets = [];
  for (let t = first; t <= now; t += step) {
    const d = new Date(t * 1000);
    const label = by === 'hour' ? `${String(d.getHours()).padStart(2, '0')}:00`
      : `${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    buckets.push({ t, label, parts: {} });
  }
  const byKey = new Map();
  const byModel = new Map();
  const pairs = new Map();
  for (const r of rows) {
    const t = r[by];
    const b = buckets.find((x) => t >= x.t && t < x.t + step);
    if (b) b.parts[r.key] = (b.parts[r.key] || 0) + value(r);
    byKey.set(r.key, (byKey.get(r.key) || 0) + value(r));
    byModel.set(r.model, (byModel.get(r.model) || 0) + value(r));
    const p = pairs.get(`${r.key}\u0000${r.model}`) || { key: r.key, model: r.model, requests: 0, tokens: 0, errors: 0, latency: 0 };
    p.requests += r.requests || 0;
    p.tokens += r.total_tokens || 0;
    p.errors += r.errors || 0;
    p.latency += (r.avg_latency_ms || 0) * (r.requests || 0);
    pairs.set(`${r.key}\u0000${r.model}`, p);
  }
  if (!rows.length) return h('p', { class: 'notice' }, 'No usage in this range yet.');
  const sorted = (m) => [...m].map(([label, v]) => ({ label: String(label), value: v })).sort((a, b) => b.value - a.value);
  const unit = metric === 'requests' ? 'requests' : 'tokens';
  return h('div', {},
    h('div', { id: 'usage-chart' }, stackedColumns(buckets, [...byKey.keys()].sort(), { unit })),
    h('div', { class: 'grid' },
      h('div', {}, h('h2', {}, `${unit} per key`), horizontalBars(sorted(byKey), { unit })),
      h('div', {}, h('h2', {}, `${unit} per model`), horizontalBars(sorted(byModel), { unit }))),
    h('div', { class: 'scroll' }, h('table', { id: 'usage-table' },
      h('thead', {}, h('tr', {}, ['key', 'model', 'requests', 'tokens', 'errors', 'avg latency']
        .map((c, i) => h('th', { class: i >= 2 ? 'num' : '' }, c)))),
      h('tbody', {}, [...pairs.values()].sort((a, b) => b.tokens - a.tokens).map((p) => h('tr', {},
        h('td', {}, p.key), h('td', {}, p.model), h('td', { class: 'num' }, fmtNum(p.requests)),
        h('td', { class: 'num' }, fmtNum(p.tokens)), h('td', { class: 'num' }, fmtNum(p.errors)),
        h('td', { class: 'num' }, p.requests ? fmtMs(p.latency / p.requests) : '–')))))));
}

export default {
  mount(root) {
    const ctrl = new AbortController();
    const keysBox = h('div');
    const created = h('div', { id: 'new-key', role: 'status' });
    const formError = h('p', { class: 'error', role: 'alert' });
    const usageBox = h('div');
    const range = h('select', { 'aria-label': 'range' }, Object.keys(RANGES).map((r) => h('option', { value: r }, `last ${r}`)));
    const metric = h('select', { 'aria-label': 'measure' }, h('option', { value: 'tokens' }, 'tokens'), h('option', { value: 'requests' }, 'requests'));
    const input = (name, attrs = {}) => h('input', { name, ...attrs });
    const form = h('form', { id: 'key-form' },
      h('div', { class: 'form-row' },
        h('label', {}, 'name', input('name', { required: true, maxlength: 127, placeholder: 'team-a' })),
        h('label', { class: 'wide' }, 'models (comma-separated; empty: all)', input('models', { placeholder: 'llama-8b, qwen-7b' })),
        h('label', {}, 'expires in', input('expires_in', { placeholder: '30d', size: 6 }))),
      h('div', { class: 'form-row' },
        LIMIT_FIELDS.map((f) => h('label', {}, f, input(f, { type: 'number', min: 0, step: 1, placeholder: 'no limit' }))),
        h('button', { type: 'submit' }, 'Create key')),
      formError, created);

    const revokeButton = (name) => {
      const b = h('button', { class: 'small danger', type: 'button', dataset: { action: 'revoke' } }, 'Revoke');
      let armed = false;
      b.addEventListener('click', async () => {
        if (!armed) { // a second click within 4 s confirms
          armed = true;
          b.textContent = 'Confirm revoke';
          setTimeout(() => { armed = false; b.textContent = 'Revoke'; }, 4000);
          return;
        }
        b.disabled = true;
        try {
          await del(`/admin/keys/${encodeURIComponent(name)}`, { signal: ctrl.signal });
        } catch (e) {
          if (!isAbort(e)) formError.textContent = `revoke ${name}: ${e.message}`;
        }
        loadKeys();
      });
      return b;
    };

    const loadKeys = async () => {
      try {
        fill(keysBox, keysTable((await get('/admin/keys', { signal: ctrl.signal })).data || [], revokeButton));
      } catch (e) {
        if (!isAbort(e)) fill(keysBox, h('p', { class: 'error' }, `GET /admin/keys: ${e.message}`));
      }
    };

    const loadUsage = async () => {
      const { s, by } = RANGES[range.value];
      const from = Math.floor(Date.now() / 1000) - s;
      try {
        const usage = await get(`/v1/usage?group_by=key,model,${by}&from=${from}`, { signal: ctrl.signal });
        fill(usageBox, usageView(usage.data || [], range.value, metric.value));
      } catch (e) {
        if (!isAbort(e)) fill(usageBox, h('p', { class: 'error' }, `GET /v1/usage: ${e.message}`));
      }
    };

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      formError.textContent = '';
      fill(created);
      const data = new FormData(form);
      const body = { name: String(data.get('name')).trim() };
      const models = String(data.get('models') || '').split(',').map((m) => m.trim()).filter(Boolean);
      if (models.length) body.models = models;
      for (const f of LIMIT_FIELDS) if (data.get(f)) body[f] = Number(data.get(f));
      if (String(data.get('expires_in') || '').trim()) body.expires_in = String(data.get('expires_in')).trim();
      try {
        const key = await post('/admin/keys', body, { signal: ctrl.signal });
        form.reset();
        fill(created, h('div', { class: 'newkey' },
          h('strong', {}, `Key for ${key.name}: `), h('code', { id: 'new-key-value' }, key.key),
          h('div', { class: 'muted' }, 'Copy it now: it is shown only this once.')));
        loadKeys();
      } catch (e) {
        if (!isAbort(e)) formError.textContent = e.message;
      }
    });
    range.addEventListener('change', loadUsage);
    metric.addEventListener('change', loadUsage);

    fill(root,
      h('section', { class: 'card' }, h('h2', {}, 'API keys'), keysBox),
      h('section', { class: 'card' }, h('h2', {}, 'New key'), form),
      h('section', { class: 'card' },
        h('div', { class: 'head' }, h('h2', {}, 'Usage'), h('label', {}, 'range', range), h('label', {}, 'measure', metric),
          h('button', { class: 'small', type: 'button', onclick: loadUsage }, 'Refresh')),
        usageBox));
    loadKeys();
    loadUsage();
    return () => ctrl.abort();
  },
};
