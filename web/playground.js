// Playground: a streaming chat with any model (POST /v1/chat/completions with stream:true
// and stream_options.include_usage, read as server-sent events), showing the time to the
// first token and the generation speed (completion tokens, from the usage chunk or counted
// per chunk when there is none, over the time since the first token).

import { get, isAbort, readEvents } from './api.js';
import { fill, fmtMs, fmtNum, h } from './dom.js';

function perfText(p) {
  const parts = [];
  if (p.ttftMs !== null) parts.push(`TTFT ${Math.round(p.ttftMs)} ms`);
  const genMs = p.lastMs - p.firstMs;
  if (p.tokens > 1 && genMs > 0) parts.push(`${fmtNum(((p.tokens - 1) * 1000) / genMs, 1)} tok/s`);
  parts.push(`${fmtNum(p.tokens)} tokens`);
  if (p.prompt !== null) parts.push(`${fmtNum(p.prompt)} prompt tokens`);
  parts.push(fmtMs(p.lastMs - p.startMs));
  return parts.join(' · ');
}

export default {
  mount(root) {
    const history = []; // {role, content} sent with the next turn
    let ctrl = null;
    const model = h('select', { id: 'pg-model', 'aria-label': 'model' });
    const system = h('textarea', { id: 'pg-system', rows: 3, placeholder: 'You are a helpful assistant.' });
    const maxTokens = h('input', { id: 'pg-max-tokens', type: 'number', min: 1, value: '256' });
    const temperature = h('input', { id: 'pg-temperature', type: 'number', min: 0, max: 2, step: 0.1, value: '0.7' });
    const messages = h('div', { class: 'messages', id: 'pg-messages', 'aria-live': 'polite' });
    const prompt = h('textarea', { id: 'pg-prompt', placeholder: 'Message (Enter sends, Shift+Enter: new line)' });
    const send = h('button', { type: 'submit', id: 'pg-send' }, 'Send');
    const stop = h('button', { type: 'button', class: 'quiet', id: 'pg-stop', disabled: true }, 'Stop');
    const clear = h('button', { type: 'button', class: 'quiet', id: 'pg-clear' }, 'Clear');
    const perf = h('div', { class: 'perf', id: 'pg-perf' });
    const form = h('form', { class: 'composer' }, prompt, h('div', { class: 'actions' }, send, stop, clear));

    const scroll = () => {
      messages.scrollTop = messages.scrollHeight;
    };

    const run = async () => {
      const text = prompt.value.trim();
      if (!text || !model.value || ctrl) return;
      prompt.value = '';
      history.push({ role: 'user', content: text });
      messages.append(h('div', { class: 'msg user' }, text));
      const reply = h('div', { class: 'msg assistant', dataset: { streaming: 'true' } });
      messages.append(reply);
      scroll();
      const body = {
        model: model.value,
        messages: [...(system.value.trim() ? [{ role: 'system', content: system.value.trim() }] : []), ...history],
        stream: true,
        stream_options: { include_usage: true },
      };
      if (Number(maxTokens.value) > 0) body.max_tokens = Number(maxTokens.value);
      if (temperature.value !== '') body.temperature = Number(temperature.value);
      const p = { startMs: performance.now(), firstMs: 0, lastMs: performance.now(), ttftMs: null, tokens: 0, prompt: null, usage: null };
      let content = '';
      ctrl = new AbortController();
      send.disabled = true;
      stop.disabled = false;
      perf.textContent = 'waiting for the first token…';
      try {
        await readEvents('/v1/chat/completions', {
          body,
          signal: ctrl.signal,
          onEvent: ({ data }) => {
            if (data === '[DONE]') return;
            let chunk;
            try {
              chunk = JSON.parse(data);
            } catch {
              return;
            }
            if (chunk.error) throw Object.assign(new Error(chunk.error.message || 'upstream error'), { isStreamError: true });
            const now = performance.now();
            const delta = chunk.choices?.[0]?.delta || {};
            const piece = (delta.content || '') + (delta.reasoning_content || '');
            if (piece) {
              if (p.ttftMs === null) {
                p.ttftMs = now - p.startMs;
                p.firstMs = now;
              }
              p.tokens++;
              content += delta.content || '';
              reply.append(document.createTextNode(piece));
              scroll();
            }
            if (chunk.usage) {
              p.usage = chunk.usage.completion_tokens;
              p.prompt = chunk.usage.prompt_tokens ?? null;
            }
            p.lastMs = now;
            perf.textContent = perfText(p);
          },
        });
        if (p.usage !== null && p.usage !== undefined) p.tokens = p.usage;
        p.lastMs = Math.max(p.lastMs, p.firstMs);
        perf.textContent = perfText(p);
        history.push({ role: 'assistant', content });
      } catch (e) {
        if (isAbort(e)) {
          perf.textContent = `stopped · ${perfText(p)}`;
          history.push({ role: 'assistant', content });
        } else {
          history.pop(); // the turn failed: it is not part of the conversation
          messages.append(h('div', { class: 'msg error' }, e.message));
          perf.textContent = '';
        }
      } finally {
        reply.dataset.streaming = 'false';
        ctrl = null;
        send.disabled = false;
        stop.disabled = true;
        scroll();
      }
    };

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      run();
    });
    prompt.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey) {
        event.preventDefault();
        run();
      }
    });
    stop.addEventListener('click', () => ctrl?.abort());
    clear.addEventListener('click', () => {
      ctrl?.abort();
      history.length = 0;
      fill(messages);
      perf.textContent = '';
    });

    fill(root, h('div', { class: 'chat' },
      h('section', { class: 'card settings' },
        h('h2', {}, 'Settings'),
        h('label', {}, 'model', model),
        h('label', {}, 'system prompt', system),
        h('label', {}, 'max tokens', maxTokens),
        h('label', {}, 'temperature', temperature)),
      h('section', { class: 'card' }, h('h2', {}, 'Chat'), messages, form, perf)));

    get('/v1/models').then((list) => {
      const ids = (list.data || []).map((m) => m.id);
      fill(model, ids.map((id) => h('option', { value: id }, id)));
      if (!ids.length) perf.textContent = 'No models to chat with.';
    }).catch((e) => {
      if (!isAbort(e)) perf.textContent = `GET /v1/models: ${e.message}`;
    });
    return () => ctrl?.abort();
  },
};
