// Overview: every model with its state, memory in use against the budget, generated tok/s
// and the queue depth over the last two minutes (rates as /status reports them: the last
// five seconds), and the latest model events.

import { sparkline } from './chart.js';
import { fill, fmtBytes, fmtMs, fmtNum, fmtTime, h, loadProgress, stateBadge, usageBar } from './dom.js';

function stat(label, value, id) {
  return h('div', { class: 'stat', dataset: { stat: id } }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
}

function modelRows(status) {
  return (status.models || []).map((m) => h('tr', { dataset: { model: m.id } },
    h('td', {}, h('strong', {}, m.id)),
    h('td', { class: 'state' }, stateBadge(m.state), m.draining ? h('span', { class: 'muted' }, ' draining') : null,
      loadProgress(m)),
    h('td', { class: 'num' }, m.pid > 0 ? String(m.pid) : '–'),
    h('td', { class: 'num' }, fmtNum(m.in_flight)),
    h('td', { class: 'num' }, fmtNum(m.waiting)),
    h('td', { class: 'num' }, fmtNum(m.tok_per_s, 1)),
    h('td', { class: 'num' }, fmtNum(m.requests_total)),
    h('td', { class: 'num' }, m.memory_bytes > 0 ? fmtBytes(m.memory_bytes) : '–'),
    h('td', { class: 'num' }, m.state === 'ready' ? fmtMs(m.uptime_ms) : '–'),
    h('td', { class: 'error' }, m.last_error || '')));
}

export default {
  mount(root, { live }) {
    const stats = h('div', { class: 'stats' });
    const memory = h('div');
    const queue = h('div');
    const rate = h('div');
    const tbody = h('tbody');
    const events = h('ul', { class: 'events' });
    fill(root,
      stats,
      h('div', { class: 'grid' },
        h('section', { class: 'card' }, h('h2', {}, 'Memory'), memory),
        h('section', { class: 'card' }, h('h2', {}, 'Queue depth (requests waiting, last 2 min)'), queue),
        h('section', { class: 'card' }, h('h2', {}, 'Generated tokens per second (last 2 min)'), rate)),
      h('section', { class: 'card' }, h('h2', {}, 'Models'),
        h('div', { class: 'scroll' }, h('table', { id: 'overview-models' },
          h('thead', {}, h('tr', {}, ['model', 'state', 'pid', 'in flight', 'waiting', 'tok/s', 'requests', 'memory (est.)', 'up', 'last error']
            .map((c, i) => h('th', { class: i >= 2 && i <= 8 ? 'num' : '' }, c)))),
          tbody))),
      h('section', { class: 'card' }, h('h2', {}, 'Model events'), events));

    const render = (status) => {
      const list = status.models || [];
      const ready = list.filter((m) => m.state === 'ready').length;
      const b = status.budget || {};
      fill(stats,
        stat('models ready', `${ready} / ${list.length}`, 'ready'),
        stat('in flight', fmtNum(status.in_flight), 'in_flight'),
        stat('waiting', fmtNum(status.waiting), 'waiting'),
        stat('tok/s', fmtNum(status.tok_per_s, 1), 'tok_s'),
        stat('requests/s', fmtNum(status.rps, 1), 'rps'),
        stat('processes', fmtNum(status.children), 'children'),
        stat('uptime', fmtMs((status.uptime_s || 0) * 1000), 'uptime'),
        stat('version', status.version || '–', 'version'));
      fill(memory,
        usageBar('RAM', b.ram_used_bytes || 0, b.ram_bytes || 0),
        usageBar('VRAM', b.vram_used_bytes || 0, b.vram_bytes || 0),
        h('p', { class: 'muted' }, 'Estimates of the loaded models (budget.ram / budget.vram).'));
      fill(queue, sparkline(live.queue, { label: 'queue depth' }),
        h('div', { class: 'muted' }, `now ${fmtNum(status.waiting)}, max ${fmtNum(Math.max(0, ...live.queue))}`));
      fill(rate, sparkline(live.rates, { label: 'tokens per second' }),
        h('div', { class: 'muted' }, `now ${fmtNum(status.tok_per_s, 1)} tok/s, ${fmtNum(status.completion_tokens_total)} tokens generated since start`));
      fill(tbody, list.length ? modelRows(status) : h('tr', {}, h('td', { colspan: 10, class: 'muted' }, 'No models configured.')));
    };
    const renderEvents = () => {
      fill(events, live.modelEvents.length
        ? live.modelEvents.map((e) => h('li', {}, h('span', { class: 'muted' }, fmtTime(e.ts)), ' ', h('strong', {}, e.model), ' ', e.event,
          e.state && !String(e.event).includes(e.state) ? ` (${e.state})` : '',
          e.detail ? h('span', { class: 'muted' }, ` — ${e.detail}`) : null))
        : h('li', { class: 'muted' }, 'None yet.'));
    };
    if (live.status) render(live.status);
    else fill(stats, h('p', { class: 'muted' }, 'Waiting for the first status…'));
    renderEvents();
    const offStatus = live.on('status', render);
    const offModel = live.on('model', renderEvents);
    return () => {
      offStatus();
      offModel();
    };
  },
};
