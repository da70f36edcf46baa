// Live updates shared by every page. GET /events (server-sent events: `status` about every
// second, `model` on each lifecycle event, `request` for each finished request) when the
// server has it; otherwise /status is polled every second, model events are derived from
// the state changes between two polls, and throughput from /v1/usage's completion tokens.

import { get, isAbort, readEvents } from './api.js';
import { sleep } from './dom.js';

const HISTORY = 120; // samples kept for the sparklines (one per status, about a second)
const RATE_WINDOW_MS = 10000;
const USAGE_POLL_MS = 2000;
const MAX_EVENTS = 50;

export class Live {
  constructor() {
    this.handlers = { status: new Set(), model: new Set(), request: new Set(), mode: new Set() };
    this.status = null; // the latest /status object
    this.mode = 'off'; // off | connecting | events | polling | offline
    this.queue = []; // requests waiting, one sample per status
    this.rates = []; // generated tok/s, one sample per status
    this.finished = []; // [ms, model, completion tokens] of recently finished requests
    this.modelEvents = []; // latest first: {ts, model, event, state}
    this.ctrl = null;
  }

  /** Calls FN(value) on each TYPE update (status, model, request, mode); returns an unsubscriber. */
  on(type, fn) {
    this.handlers[type].add(fn);
    return () => this.handlers[type].delete(fn);
  }

  emit(type, value) {
    for (const fn of [...this.handlers[type]]) fn(value);
  }

  /** Starts (or restarts) the updates. */
  start() {
    this.stop();
    this.ctrl = new AbortController();
    this.run(this.ctrl.signal);
  }

  /** Stops the updates. */
  stop() {
    if (this.ctrl) this.ctrl.abort();
    this.ctrl = null;
    this.setMode('off');
  }

  setMode(mode) {
    if (mode === this.mode) return;
    this.mode = mode;
    this.emit('mode', mode);
  }

  /** Generated tokens per second over the last RATE_WINDOW_MS, overall or for MODEL. */
  rate(model) {
    const since = Date.now() - RATE_WINDOW_MS;
    let sum = 0;
    for (const [ms, m, n] of this.finished) if (ms >= since && (!model || m === model)) sum += n;
    return sum / (RATE_WINDOW_MS / 1000);
  }

  async run(signal) {
    while (!signal.aborted) {
      try {
        this.setMode('connecting');
        await readEvents('/events', {
          signal,
          onOpen: () => this.setMode('events'),
          onEvent: (e) => this.onServerEvent(e),
        });
      } catch (e) {
        if (signal.aborted || isAbort(e)) return;
        if (e.status === 404) return this.poll(signal); // a server without /events
        if (e.status === 401) return this.setMode('offline');
      }
      this.setMode('offline');
      await sleep(2000, signal);
    }
  }

  onServerEvent({ event, data }) {
    let value;
    try {
      value = JSON.parse(data);
    } catch {
      return;
    }
    if (event === 'status') {
      this.setStatus(value);
    } else if (event === 'model') {
      const m = this.status?.models?.find((x) => x.id === value.model);
      if (m && value.state) m.state = value.state;
      this.addModelEvent(value);
      if (this.status) this.emit('status', this.status);
    } else if (event === 'request') {
      this.finished.push([Date.now(), value.model, Number(value.completion_tokens) || 0]);
      this.emit('request', value);
    }
  }

  addModelEvent(ev) {
    this.modelEvents.unshift({ ts: ev.ts || Date.now(), model: ev.model, event: ev.event, state: ev.state });
    this.modelEvents.length = Math.min(this.modelEvents.length, MAX_EVENTS);
    this.emit('model', ev);
  }

  setStatus(status) {
    const before = new Map((this.status?.models || []).map((m) => [m.id, m.state]));
    if (this.mode === 'polling') {
      for (const m of status.models || []) {
        const was = before.get(m.id);
        if (was !== undefined && was !== m.state) {
          this.addModelEvent({ ts: Date.now(), model: m.id, event: `${was} → ${m.state}`, state: m.state });
        }
      }
    }
    this.status = status;
    const cutoff = Date.now() - RATE_WINDOW_MS;
    while (this.finished.length && this.finished[0][0] < cutoff) this.finished.shift();
    this.queue.push(Number(status.waiting) || 0);
    this.rates.push(this.rate());
    if (this.queue.length > HISTORY) this.queue.shift();
    if (this.rates.length > HISTORY) this.rates.shift();
    this.emit('status', status);
  }

  async poll(signal) {
    this.setMode('polling');
    this.pollUsage(signal);
    while (!signal.aborted) {
      try {
        this.setStatus(await get('/status', { signal }));
        this.setMode('polling');
      } catch (e) {
        if (signal.aborted || isAbort(e)) return;
        this.setMode('offline');
      }
      await sleep(1000, signal);
    }
  }

  /** Without /events: completion tokens counted by /v1/usage since this hour began, per
   * model; what grew between two polls counts as generated then. */
  async pollUsage(signal) {
    const from = Math.floor(Date.now() / 3600000) * 3600;
    let last = null;
    while (!signal.aborted) {
      try {
        const usage = await get(`/v1/usage?group_by=model&from=${from}`, { signal });
        const now = new Map((usage.data || []).map((r) => [r.model, r.completion_tokens || 0]));
        if (last) {
          for (const [model, n] of now) {
            const grown = n - (last.get(model) || 0);
            if (grown > 0) this.finished.push([Date.now(), model, grown]);
          }
        }
        last = now;
      } catch (e) {
        if (signal.aborted || isAbort(e)) return;
      }
      await sleep(USAGE_POLL_MS, signal);
    }
  }
}
