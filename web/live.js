// Live updates shared by every page. GET /events (server-sent events: `status` every
// second, `model` on each lifecycle event, `request` for each finished request) when the
// server has it; otherwise (a 404) /status is polled every second and model events are
// derived from the state changes between two polls. The latest model events are first
// read from GET /admin/events.

import { get, isAbort, readEvents } from './api.js';
import { sleep } from './dom.js';

const HISTORY = 120; // samples kept for the sparklines (one per status, about a second)
const MAX_EVENTS = 50;

export class Live {
  constructor() {
    this.handlers = { status: new Set(), model: new Set(), request: new Set(), mode: new Set() };
    this.status = null; // the latest /status object
    this.mode = 'off'; // off | connecting | events | polling | offline
    this.queue = []; // requests waiting, one sample per status
    this.rates = []; // generated tok/s, one sample per status
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

  async run(signal) {
    this.loadModelEvents(signal);
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
      this.emit('request', value);
    }
  }

  async loadModelEvents(signal) {
    try {
      const rows = (await get('/admin/events?limit=20', { signal })).data || [];
      const seen = new Set(this.modelEvents.map((e) => `${e.ts}/${e.model}/${e.event}`));
      const older = rows.map((r) => ({ ts: r.ts_ms || r.ts, model: r.model, event: r.event, detail: r.detail }))
        .filter((e) => !seen.has(`${e.ts}/${e.model}/${e.event}`));
      this.modelEvents.push(...older);
      this.modelEvents.length = Math.min(this.modelEvents.length, MAX_EVENTS);
      this.emit('model', null);
    } catch {
      // a server without the event log: only live events are shown
    }
  }

  addModelEvent(ev) {
    this.modelEvents.unshift({ ts: ev.ts || Date.now(), model: ev.model, event: ev.event, state: ev.state, detail: ev.detail });
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
    this.queue.push(Number(status.waiting) || 0);
    this.rates.push(Number(status.tok_per_s) || 0);
    if (this.queue.length > HISTORY) this.queue.shift();
    if (this.rates.length > HISTORY) this.rates.shift();
    this.emit('status', status);
  }

  async poll(signal) {
    this.setMode('polling');
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
}
