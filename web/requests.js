// Requests: the request log (GET /admin/requests), filtered by model, key and status (a
// code, or its class: 4 for 4xx), a page at a time (newest first, older pages by
// `before=<id>`). On the newest page, requests that finish while it is open appear at the
// top (live `request` events, which carry no row id yet).

import { get, isAbort } from './api.js';
import { fill, fmtBytes, fmtMs, fmtNum, fmtTime, h, statusBadge } from './dom.js';

function matches(row, f) {
  const status = String(row.status);
  return (!f.model || row.model === f.model) && (!f.key || row.key === f.key) &&
    (!f.status || status === f.status || (f.status.length === 1 && status[0] === f.status));
}

const ms = (v) => (v === null || v === undefined ? '–' : fmtMs(v));

function rowOf(r) {
  return h('tr', { dataset: { requestId: r.request_id || '' } },
    h('td', { class: 'mono' }, fmtTime(r.ts)),
    h('td', {}, r.model || '–'),
    h('td', {}, r.key || '–'),
    h('td', { class: 'mono' }, r.endpoint || ''),
    h('td', {}, statusBadge(r.status), r.stream ? h('span', { class: 'muted' }, ' stream') : null),
    h('td', { class: 'num' }, fmtNum(r.prompt_tokens)),
    h('td', { class: 'num' }, fmtNum(r.completion_tokens)),
    h('td', { class: 'num' }, ms(r.queue_ms)),
    h('td', { class: 'num' }, ms(r.ttft_ms)),
    h('td', { class: 'num' }, fmtMs(r.duration_ms)),
    h('td', { class: 'num' }, `${fmtBytes(r.bytes_in)} / ${fmtBytes(r.bytes_out)}`),
    h('td', { class: 'mono' }, r.client || ''),
    h('td', { class: 'mono muted' }, r.request_id || ''),
    h('td', { class: 'error' }, r.error || ''));
}

export default {
  mount(root, { live }) {
    const f = { model: '', key: '', status: '', limit: '50' };
    const pages = []; // the `before` of each page shown so far (null: the newest)
    let rows = [];
    let hasMore = false;
    let ctrl = null;
    const model = h('select', { name: 'model' }, h('option', { value: '' }, 'any'));
    const key = h('input', { name: 'key', placeholder: 'key name', size: 14 });
    const status = h('input', { name: 'status', placeholder: '404, or 4: 4xx', size: 14, inputmode: 'numeric' });
    const limit = h('select', { name: 'limit' }, ['25', '50', '100', '200'].map((n) => h('option', { value: n }, n)));
    limit.value = f.limit;
    const body = h('div');
    const older = h('button', { class: 'small', type: 'button', disabled: true }, 'Older →');
    const newest = h('button', { class: 'small', type: 'button', disabled: true }, '⇤ Newest');
    const where = h('span', { class: 'muted' });

    const show = () => {
      older.disabled = !hasMore;
      newest.disabled = pages.length <= 1;
      where.textContent = `page ${pages.length}, ${rows.length} request${rows.length === 1 ? '' : 's'}`;
      fill(body, rows.length
        ? h('div', { class: 'scroll' }, h('table', { id: 'requests-table' },
          h('thead', {}, h('tr', {}, ['time', 'model', 'key', 'endpoint', 'status', 'prompt', 'completion', 'queued', 'TTFT', 'duration', 'in / out', 'client', 'request id', 'error']
            .map((c, i) => h('th', { class: i >= 5 && i <= 10 ? 'num' : '' }, c)))),
          h('tbody', {}, rows.map(rowOf))))
        : h('p', { class: 'notice' }, 'No requests match.'));
    };

    const load = async () => {
      if (ctrl) ctrl.abort();
      ctrl = new AbortController();
      const before = pages[pages.length - 1];
      const q = new URLSearchParams();
      for (const k of ['model', 'key', 'status']) if (f[k]) q.set(k, f[k]);
      q.set('limit', f.limit);
      if (before !== null && before !== undefined) q.set('before', String(before));
      try {
        const answer = await get(`/admin/requests?${q}`, { signal: ctrl.signal });
        rows = answer.data || [];
        hasMore = !!answer.has_more;
        show();
      } catch (e) {
        if (isAbort(e)) return;
        rows = [];
        hasMore = false;
        fill(body, e.status === 404
          ? h('p', { class: 'notice', id: 'requests-unavailable' }, 'The request log is not available on this server: ',
            h('code', {}, 'GET /admin/requests'), ' answered 404 (an infergate without the request log).')
          : h('p', { class: 'error' }, `GET /admin/requests: ${e.message}`));
      }
    };

    const apply = (event) => {
      event?.preventDefault();
      Object.assign(f, { model: model.value, key: key.value.trim(), status: status.value.trim(), limit: limit.value });
      pages.length = 0;
      pages.push(null);
      load();
    };
    older.addEventListener('click', () => {
      const last = rows.filter((r) => r.id !== undefined).pop(); // live rows have no id yet
      if (!last) return;
      pages.push(last.id);
      load();
    });
    newest.addEventListener('click', apply);

    fill(root, h('section', { class: 'card' },
      h('h2', {}, 'Requests'),
      h('form', { class: 'form-row', id: 'requests-filter', onsubmit: apply },
        h('label', {}, 'model', model), h('label', {}, 'key', key), h('label', {}, 'status', status),
        h('label', {}, 'per page', limit), h('button', { type: 'submit' }, 'Apply')),
      body,
      h('div', { class: 'pager' }, newest, older, where)));

    const fillModels = (st) => {
      const ids = (st?.models || []).map((m) => m.id);
      if (model.options.length - 1 === ids.length) return;
      const chosen = model.value;
      fill(model, h('option', { value: '' }, 'any'), ids.map((id) => h('option', { value: id }, id)));
      model.value = chosen;
    };
    fillModels(live.status);
    const offStatus = live.on('status', fillModels);
    const offRequest = live.on('request', (r) => {
      if (pages.length !== 1 || !matches(r, f)) return;
      const all = [r, ...rows.filter((x) => !r.request_id || x.request_id !== r.request_id)];
      if (all.length > Number(f.limit)) hasMore = true;
      rows = all.slice(0, Number(f.limit));
      show();
    });
    apply();
    return () => {
      offStatus();
      offRequest();
      if (ctrl) ctrl.abort();
    };
  },
};
