// The dashboard's access to infergate's API. Every call carries the admin token from this
// tab's sessionStorage as "Authorization: Bearer"; errors come back as ApiError with the
// server's OpenAI-shaped message and code. Server-sent events are read with fetch() and a
// stream reader, because EventSource cannot send an Authorization header.

const TOKEN_KEY = 'infergate.token';
let unauthorizedHandler = null;

/** The stored admin token ('' when none). */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

/** Stores the admin token for this tab ('' forgets it). */
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Calls FN(error) whenever the server answers 401 (token missing, wrong or revoked). */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

/** An HTTP error: status, the server's error.message and error.code. */
export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code || '';
  }
}

/** Whether E is the rejection of an aborted fetch or read. */
export function isAbort(e) {
  return e && (e.name === 'AbortError' || e.code === 20);
}

function headers(extra = {}) {
  const h = { ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function errorOf(res) {
  const text = await res.text().catch(() => '');
  let message = text || res.statusText;
  let code = '';
  try {
    const body = JSON.parse(text);
    if (body && body.error) {
      message = body.error.message || message;
      code = body.error.code || '';
    }
  } catch {
    // not JSON: the text is the message
  }
  const err = new ApiError(res.status, `${res.status}: ${message}`, code);
  if (res.status === 401 && unauthorizedHandler) unauthorizedHandler(err);
  return err;
}

/** METHOD PATH with an optional JSON BODY; resolves the parsed JSON (or text) answer. */
export async function call(method, path, body, { signal } = {}) {
  const init = { method, signal, cache: 'no-store', headers: headers() };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await errorOf(res);
  const text = await res.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const post = (path, body, opts) => call('POST', path, body ?? {}, opts);
export const del = (path, opts) => call('DELETE', path, undefined, opts);

/**
 * Reads server-sent events from PATH (GET, or POST with BODY), calling
 * onEvent({event, data}) for each one as it arrives and onOpen(response) once the headers
 * are in. Resolves when the stream ends; rejects with ApiError on an HTTP error, or with
 * the AbortError when SIGNAL aborts.
 */
export async function readEvents(path, { body, signal, onEvent, onOpen } = {}) {
  const init = { method: body === undefined ? 'GET' : 'POST', signal, cache: 'no-store',
    headers: headers({ Accept: 'text/event-stream' }) };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await errorOf(res);
  if (onOpen) onOpen(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  let event = '';
  let data = [];
  const dispatch = () => {
    if (data.length) onEvent({ event: event || 'message', data: data.join('\n') });
    event = '';
    data = [];
  };
  let isDone = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += value;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        let line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          dispatch();
          continue;
        }
        if (line.startsWith(':')) continue; // a comment (keep-alive)
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let fieldValue = colon < 0 ? '' : line.slice(colon + 1);
        if (fieldValue.startsWith(' ')) fieldValue = fieldValue.slice(1);
        if (field === 'data') data.push(fieldValue);
        else if (field === 'event') event = fieldValue;
      }
    }
    dispatch();
    isDone = true;
  } finally {
    if (!isDone) reader.cancel().catch(() => {}); // onEvent threw: close the connection
  }
}
