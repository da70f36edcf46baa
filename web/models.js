// Models: every configured model (GET /models, the llama.cpp router list) with its live
// state, capabilities and memory estimate, load/unload buttons (POST /models/load and
// /models/unload), and a log tail read as server-sent events from /logs/stream/SOURCE.

import { get, isAbort, post, readEvents } from './api.js';
import { fill, fmtBytes, fmtNum, h, loadProgress, modelPath, stateBadge } from './dom.js';

const MAX_LOG_LINES = 2000;

function details(m) {
  const d = m.details || {};
  const parts = [d.architecture, d.parameters, d.quantization,
    d.context_length ? `ctx ${fmtNum(d.context_length)}` : null].filter(Boolean);
  return parts.length ? parts.join(' · ') : (m.path ? m.path.split('/').pop() : '');
}

export default {
  mount(root, { live }) {
    let list = [];
    const pending = new Map(); // model id -> 'loading' | 'unloading'
    const notice = h('div', { class: 'error', role: 'alert' });
    const tbody = h('tbody');
    const source = h('select', { id: 'log-source', 'aria-label': 'log source' });
    const logs = h('pre', { class: 'logs', id: 'logs' });
    let logCtrl = null;

    const liveOf = (id) => live.status?.models?.find((m) => m.id === id);
    const stateOf = (id) => liveOf(id)?.state;

    const act = async (id, action) => {
      pending.set(id, action === 'load' ? 'loading' : 'unloading');
      notice.textContent = '';
      render();
      try {
        await post(action === 'load' ? '/models/load' : '/models/unload', { model: id });
      } catch (e) {
        if (!isAbort(e)) notice.textContent = `${action} ${id}: ${e.message}`;
      } finally {
        pending.delete(id);
        render();
      }
    };

    const row = (m) => {
      const state = stateOf(m.id) || m.state;
      const busy = pending.get(m.id);
      const isUp = state === 'ready' || state === 'starting';
      return h('tr', { dataset: { model: m.id } },
        h('td', {}, h('strong', {}, m.id), m.name ? h('div', { class: 'muted' }, m.name) : null,
          (m.aliases || []).length ? h('div', { class: 'muted' }, `aliases: ${m.aliases.join(', ')}`) : null,
          m.unlisted ? h('div', { class: 'muted' }, 'unlisted') : null),
        h('td', { class: 'state' }, stateBadge(state), loadProgress(liveOf(m.id)),
          busy ? h('div', { class: 'muted' }, `${busy}…`) : null,
          m.status?.failed && m.status.error ? h('div', { class: 'error' }, m.status.error) : null),
        h('td', {}, (m.capabilities || []).length ? m.capabilities.map((c) => h('span', { class: 'chip' }, c))
          : h('span', { class: 'muted', title: 'known from the GGUF file' }, 'unknown')),
        h('td', { class: 'num' }, m.memory_bytes ? fmtBytes(m.memory_bytes) : '–',
          m.vram_bytes ? h('div', { class: 'muted' }, `VRAM ${fmtBytes(m.vram_bytes)}`) : null),
        h('td', { class: 'muted' }, details(m)),
        h('td', {}, h('div', { class: 'actions' },
          h('button', { class: 'small', type: 'button', disabled: !!busy || isUp, dataset: { action: 'load' },
            onclick: () => act(m.id, 'load') }, 'Load'),
          h('button', { class: 'small', type: 'button', disabled: !!busy || !(isUp || state === 'failed'), dataset: { action: 'unload' },
            onclick: () => act(m.id, 'unload') }, 'Unload'),
          h('button', { class: 'small', type: 'button', dataset: { action: 'logs' },
            onclick: () => { source.value = m.id; streamLogs(); } }, 'Logs'))));
    };

    let shown = '';
    const render = () => {
      // Only when something shown changed: a rebuilt button between press and release
      // would lose the click.
      const key = JSON.stringify([list, [...pending], list.map((m) => [stateOf(m.id), liveOf(m.id)?.load_progress])]);
      if (key === shown) return;
      shown = key;
      fill(tbody, list.length ? list.map(row) : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No models configured.')));
    };

    const refresh = async () => {
      try {
        list = (await get('/models')).data || [];
        const chosen = source.value;
        fill(source, h('option', { value: '' }, 'everything'), h('option', { value: 'proxy' }, 'infergate'),
          h('option', { value: 'upstream' }, 'all models'), list.map((m) => h('option', { value: m.id }, `model ${m.id}`)));
        source.value = chosen;
        render();
      } catch (e) {
        notice.textContent = `GET /models: ${e.message}`;
      }
    };

    const addLine = (line) => {
      const stick = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
      logs.append(document.createTextNode(`${line}\n`));
      while (logs.childNodes.length > MAX_LOG_LINES) logs.firstChild.remove();
      if (stick) logs.scrollTop = logs.scrollHeight;
    };

    const streamLogs = async () => {
      if (logCtrl) logCtrl.abort();
      const ctrl = new AbortController();
      logCtrl = ctrl;
      fill(logs);
      const path = source.value ? modelPath('/logs/stream/', source.value) : '/logs/stream';
      try {
        await readEvents(path, { signal: ctrl.signal, onEvent: (e) => addLine(e.data) });
        if (!ctrl.signal.aborted) addLine('[the log stream ended]');
      } catch (e) {
        if (!isAbort(e) && !ctrl.signal.aborted) addLine(`[log stream: ${e.message}]`);
      }
    };

    source.addEventListener('change', streamLogs);
    fill(root,
      h('section', { class: 'card' },
        h('div', { class: 'head' }, h('h2', {}, 'Models'),
          h('button', { class: 'small', type: 'button', onclick: refresh }, 'Refresh')),
        notice,
        h('div', { class: 'scroll' }, h('table', { id: 'models-table' },
          h('thead', {}, h('tr', {}, ['model', 'state', 'capabilities', 'memory (est.)', 'details', '']
            .map((c, i) => h('th', { class: i === 3 ? 'num' : '' }, c)))),
          tbody))),
      h('section', { class: 'card' },
        h('div', { class: 'head' }, h('h2', {}, 'Logs'), h('label', {}, 'source', source),
          h('button', { class: 'small', type: 'button', onclick: () => fill(logs) }, 'Clear')),
        logs));
    const off = live.on('status', (status) => {
      if ((status.models || []).some((m) => !list.find((x) => x.id === m.id))) refresh();
      else render();
    });
    let isGone = false;
    refresh().then(() => {
      if (!isGone) streamLogs();
    });
    return () => {
      isGone = true;
      off();
      if (logCtrl) logCtrl.abort();
    };
  },
};
