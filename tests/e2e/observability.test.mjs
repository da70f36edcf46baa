// Observability: /metrics (checked by promtool, values moving with known requests), the
// request log (/admin/requests rows equal to the requests sent), model events, /events
// live over SSE, /readyz, X-Request-Id and X-Log-Level: debug.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { after, before, describe, test } from 'node:test';
import { makeTinyModel } from './lib/engine.mjs';
import { assertErrorShape, deadline, fakeCmd, guardWith, startGateway, suiteScope, tempDir, waitFor } from './lib/harness.mjs';

const ADMIN = 'admin-token-observability-0123456789';
const ALICE = 'sk-alice-observability-0123456789';
const MESSAGES = [{ role: 'user', content: 'hello there' }];

/** A fetch Response as assertErrorShape() reads it. */
async function shapeOf(res) {
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: { 'content-type': res.headers.get('content-type') }, text, json };
}

/** Every "METHOD /path" the tables of docs/API.md name ("ANY /path" for "any"), with
 * upper-case segments (NAME) as OpenAPI parameters ({name}) and queries dropped. */
function documentedRoutes() {
  const out = new Set();
  const text = fs.readFileSync(new URL('../../docs/API.md', import.meta.url), 'utf8');
  for (const line of text.split('\n')) {
    const m = /^\| ([A-Za-z, ]+) \| ([^|]+) \|/.exec(line);
    if (!m || m[1].trim() === 'method') continue;
    const methods = m[1].split(',').map((x) => x.trim().toUpperCase());
    for (const [, p] of m[2].matchAll(/`([^`]+)`/g)) {
      const route = p.split('?')[0].replace(/\/([A-Z]+)(?=\/|$)/g, (_, n) => `/{${n.toLowerCase()}}`);
      for (const method of methods) out.add(`${method} ${route}`);
    }
  }
  return out;
}

/** Parses Prometheus text into {'name{labels}': value}. */
function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return out;
}

describe('observability', () => {
  const scope = suiteScope();
  let gw;
  const guarded = guardWith(() => gw);
  const call = (path, { token = ADMIN, method = 'GET', body, headers = {} } = {}) =>
    fetch(gw.url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(deadline(30000)),
    });
  const chat = (body, opts = {}) => call('/v1/chat/completions', { token: ALICE, method: 'POST', body, ...opts });

  before(async () => {
    gw = await startGateway(scope.t, {
      models: { a: { cmd: fakeCmd('a') }, b: { cmd: fakeCmd('b') } },
      extra: {
        groups: { all: { swap: false, exclusive: false, members: ['a', 'b'] } },
        auth: { admin_token: ADMIN, keys: [{ name: 'alice', key: ALICE }] },
      },
    });
  });
  after(() => scope.cleanup());

  test('metrics pass promtool and count the requests, tokens and model events', guarded(async () => {
    const sent = [];
    for (let i = 0; i < 3; i++) {
      const r = await chat({ model: 'a', messages: MESSAGES, max_tokens: 5 });
      assert.equal(r.status, 200);
      sent.push((await r.json()).usage.completion_tokens);
    }
    const streamed = await chat({ model: 'a', messages: MESSAGES, max_tokens: 7, stream: true });
    assert.equal(streamed.status, 200);
    await streamed.text();
    assert.equal((await chat({ model: 'nope', messages: MESSAGES })).status, 404);

    const denied = await call('/metrics', { token: ALICE });
    assertErrorShape(assert, await shapeOf(denied), 403);
    const res = await call('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: deadline(20000) });
    assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);

    const m = parseMetrics(text);
    assert.equal(m['infergate_requests_total{model="a",status="200",key="alice"}'], 4);
    assert.equal(m['infergate_requests_total{model="other",status="404",key="alice"}'], 1, 'unknown models collapse to "other"');
    assert.equal(m['infergate_completion_tokens_total{model="a",key="alice"}'], sent.reduce((x, y) => x + y, 0) + 7);
    assert.equal(m['infergate_request_duration_seconds_count{model="a"}'], 4);
    assert.equal(m['infergate_time_to_first_token_seconds_count{model="a"}'], 4);
    assert.equal(m['infergate_model_state{model="a",state="ready"}'], 1);
    assert.equal(m['infergate_model_state{model="b",state="unloaded"}'], 1);
    assert.equal(m['infergate_model_events_total{model="a",event="load"}'], 1);
    assert.equal(m['infergate_model_load_duration_seconds_count{model="a"}'], 1);
    assert.equal(m['infergate_requests_in_flight{model="a"}'], 0);
    assert.ok(!text.includes(ALICE) && !text.includes(ADMIN), 'no key in the metrics');
    assert.ok(!text.includes('nope'), 'unknown model names never become labels');
  }));

  test('the request log has one row per request, with the same ids, tokens and statuses', guarded(async () => {
    const ids = [];
    const plain = await chat({ model: 'b', messages: MESSAGES, max_tokens: 6 });
    const usage = (await plain.json()).usage;
    ids.push(plain.headers.get('x-request-id'));
    const withUsage = await chat({ model: 'b', messages: MESSAGES, max_tokens: 6, stream: true, stream_options: { include_usage: true } }, { headers: { 'x-request-id': 'client-id-1' } });
    await withUsage.text();
    assert.equal(withUsage.headers.get('x-request-id'), 'client-id-1', 'a valid client id is kept');
    ids.push('client-id-1');
    const noUsage = await chat({ model: 'b', messages: MESSAGES, max_tokens: 6, stream: true }, { headers: { 'x-request-id': 'bad id\u00e9' } });
    await noUsage.text();
    assert.match(noUsage.headers.get('x-request-id'), /^req-[0-9a-f]{16}$/, 'an invalid client id is replaced');
    ids.push(noUsage.headers.get('x-request-id'));
    const bad = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ALICE}`, 'x-request-id': 'bad-json-1' },
      body: '{"model": "b", ',
    });
    assert.equal(bad.status, 400);
    await bad.text();

    const res = await call('/admin/requests?model=b&limit=10');
    assert.equal(res.status, 200);
    const rows = (await res.json()).data;
    assert.deepEqual(rows.map((r) => r.request_id).reverse(), ids);
    for (const r of rows) {
      assert.equal(r.key, 'alice');
      assert.equal(r.endpoint, '/v1/chat/completions');
      assert.ok(r.duration_ms >= 0 && r.bytes_in > 0 && r.bytes_out > 0 && /^127\.0\.0\.1:/.test(r.client), JSON.stringify(r));
    }
    const [streamRow, usageRow, plainRow] = rows;
    assert.equal(plainRow.status, 200);
    assert.equal(plainRow.stream, false);
    assert.equal(plainRow.completion_tokens, usage.completion_tokens);
    assert.equal(plainRow.prompt_tokens, usage.prompt_tokens);
    // Streams count exactly like whole responses, with or without the usage chunk.
    for (const row of [usageRow, streamRow]) {
      assert.equal(row.stream, true);
      assert.equal(row.completion_tokens, usage.completion_tokens);
      assert.ok(row.ttft_ms !== null && row.ttft_ms <= row.duration_ms);
    }
    const refused = (await (await call('/admin/requests?status=400')).json()).data;
    const badRow = refused.find((r) => r.request_id === 'bad-json-1');
    assert.ok(badRow, 'the refused request is logged too');
    assert.equal(badRow.key, 'alice');
    assert.equal(badRow.model, '');
    assert.match(badRow.error, /JSON|json/);

    // Paging, filters, bad parameters.
    const page1 = await (await call('/admin/requests?model=b&limit=2')).json();
    assert.equal(page1.data.length, 2);
    assert.equal(page1.has_more, true);
    const page2 = await (await call(`/admin/requests?model=b&limit=2&before=${page1.data[1].id}`)).json();
    assert.deepEqual(page2.data.map((r) => r.request_id), [ids[0]]);
    assert.equal(page2.has_more, false);
    const only404 = await (await call('/admin/requests?status=404')).json();
    assert.ok(only404.data.length >= 1 && only404.data.every((r) => r.status === 404));
    const badLimit = await call('/admin/requests?limit=0');
    assertErrorShape(assert, await shapeOf(badLimit), 400);
    const forbidden = await call('/admin/requests', { token: ALICE });
    assert.equal(forbidden.status, 403);
  }));

  test('/events streams model changes and finished requests live', guarded(async () => {
    const ctl = new AbortController();
    const res = await fetch(`${gw.url}/events?types=model,request`, {
      headers: { authorization: `Bearer ${ADMIN}` },
      signal: ctl.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const events = [];
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buf = '';
      try {
        for await (const chunk of res.body) {
          buf += decoder.decode(chunk, { stream: true });
          let at;
          while ((at = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, at);
            buf = buf.slice(at + 2);
            const type = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (type && data) events.push({ type, data: JSON.parse(data) });
          }
        }
      } catch {
        // aborted at the end of the test
      }
    })();
    try {
      const unload = await call('/models/unload', { method: 'POST', body: { model: 'b' } });
      assert.equal(unload.status, 200);
      const load = await call('/models/load', { method: 'POST', body: { model: 'b' } });
      assert.equal(load.status, 200);
      await waitFor(() => events.some((e) => e.type === 'model' && e.data.model === 'b' && e.data.event === 'ready'), {
        timeoutMs: deadline(10000), message: 'a ready event for b',
      });
      const kinds = events.filter((e) => e.type === 'model' && e.data.model === 'b').map((e) => e.data.event);
      assert.deepEqual(kinds.slice(-2), ['load', 'ready']);
      assert.ok(kinds.includes('unload'), kinds.join());
      const r = await chat({ model: 'b', messages: MESSAGES, max_tokens: 3 }, { headers: { 'x-request-id': 'live-1' } });
      await r.text();
      await waitFor(() => events.some((e) => e.type === 'request' && e.data.request_id === 'live-1'), {
        timeoutMs: deadline(10000), message: 'the request event',
      });
      const ev = events.find((e) => e.type === 'request' && e.data.request_id === 'live-1').data;
      assert.equal(ev.status, 200);
      assert.equal(ev.model, 'b');
      assert.equal(ev.key, 'alice');
    } finally {
      ctl.abort();
      await reading;
    }
    const stored = await (await call('/admin/events?model=b')).json();
    assert.deepEqual(stored.data.slice(0, 2).map((e) => e.event), ['ready', 'load']);
    const badTypes = await call('/events?types=bogus');
    assert.equal(badTypes.status, 400);
  }));

  test('X-Log-Level: debug logs the request steps with its id', guarded(async () => {
    const r = await chat({ model: 'a', messages: MESSAGES, max_tokens: 2 }, { headers: { 'x-log-level': 'debug', 'x-request-id': 'debug-me-1' } });
    assert.equal(r.status, 200);
    await r.text();
    // The last line is written once the response is out: wait for it, then check the others.
    await waitFor(() => /\[debug-me-1\] a \/v1\/chat\/completions: 200 in \d+ ms/.test(gw.output()), {
      timeoutMs: deadline(10000), message: 'the debug lines',
    });
    assert.match(gw.output(), /\[debug-me-1\] sending to http:\/\/[^/]+:\d+\/v1\/chat\/completions/);
    assert.doesNotMatch(gw.output(), /\[req-[0-9a-f]{16}\] sending to/, 'other requests stay at the configured level');
    // A stranger cannot raise the level: no key, no debug lines.
    const stranger = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-log-level': 'debug', 'x-request-id': 'stranger-1' },
      body: JSON.stringify({ model: 'a', messages: MESSAGES }),
    });
    assert.equal(stranger.status, 401);
    assert.equal(stranger.headers.get('x-request-id'), 'stranger-1');
    assert.doesNotMatch(gw.output(), /\[stranger-1\]/);
  }));

  test('logFormat: json writes one JSON object per line with the request id as a field', guarded(async () => {
    const jgw = await startGateway(scope.t, { models: { a: { cmd: fakeCmd('a') } }, extra: { logFormat: 'json' } });
    const r = await fetch(`${jgw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-log-level': 'debug', 'x-request-id': 'json-1' },
      body: JSON.stringify({ model: 'a', messages: MESSAGES, max_tokens: 2 }),
    });
    assert.equal(r.status, 200);
    await r.text();
    await waitFor(() => /"request_id":"json-1","msg":"a \/v1\/chat\/completions: 200/.test(jgw.output()), {
      timeoutMs: deadline(10000), message: 'the last debug line of json-1',
    });
    const lines = jgw.output().split('\n').filter((l) => l !== '');
    for (const line of lines) {
      const o = JSON.parse(line);
      assert.equal(typeof o.ts, 'string');
      assert.ok(['debug', 'info', 'warn', 'error'].includes(o.level), line);
      assert.equal(typeof o.msg, 'string');
    }
    assert.ok(lines.some((l) => JSON.parse(l).request_id === 'json-1' && JSON.parse(l).msg.startsWith('sending to ')));
  }));

  test('/openapi.json is a valid OpenAPI document of every route, and docs/API.md lists the same', guarded(async () => {
    const res = await fetch(`${gw.url}/openapi.json`);
    assert.equal(res.status, 200, 'public');
    const doc = await res.json();
    await SwaggerParser.validate(structuredClone(doc));
    const served = new Set();
    const anyMethod = new Set();
    for (const [route, item] of Object.entries(doc.paths)) {
      const ops = Object.keys(item).filter((k) => k !== 'parameters');
      for (const method of ops) {
        assert.notEqual(item[method].summary, 'undocumented', `${method} ${route} has no description in gw_openapi.c`);
        served.add(`${method.toUpperCase()} ${route}`);
      }
      if (ops.length >= 5) anyMethod.add(`ANY ${route}`);
    }
    const documented = documentedRoutes();
    for (const r of served) {
      const route = r.slice(r.indexOf(' ') + 1);
      assert.ok(documented.has(r) || documented.has(`ANY ${route}`), `${r} is served but not in docs/API.md`);
    }
    for (const r of documented) {
      assert.ok(served.has(r) || anyMethod.has(r), `${r} is in docs/API.md but not served`);
    }
    assert.equal(doc.paths['/metrics'].get['x-infergate-access'], 'admin');
    assert.equal(doc.paths['/healthz'].get.security, undefined);
  }));

  test('/status shows the load progress an engine reports while a model starts', guarded(async () => {
    const sgw = await startGateway(scope.t, { models: { slow: { cmd: fakeCmd('slow', ['--startup-ms', 3000]) } } });
    const load = fetch(`${sgw.url}/models/load`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow' }),
    });
    const seen = [];
    await waitFor(async () => {
      const m = (await (await fetch(`${sgw.url}/status`)).json()).models[0];
      if (m.state === 'starting' && typeof m.load_progress === 'number') seen.push(m.load_progress);
      return seen.length >= 2 && seen[seen.length - 1] > seen[0];
    }, { timeoutMs: deadline(10000), intervalMs: 100, message: 'a rising load_progress' });
    assert.ok(seen.every((p) => p >= 0 && p <= 1), seen.join());
    assert.equal((await load).status, 200);
    const ready = (await (await fetch(`${sgw.url}/status`)).json()).models[0];
    assert.equal(ready.state, 'ready');
    assert.equal(ready.load_progress, null);
  }));

  test('engine metrics (slots, KV cache) are re-exported per model', guarded(async () => {
    const dir = await tempDir(scope.t);
    await makeTinyModel(path.join(dir, 'tiny.gguf'));
    const egw = await startGateway(scope.t, { models: {}, extra: { models_dir: dir, engine: { ctx_size: 256, parallel: 1, threads: 1 } } });
    const r = await fetch(`${egw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: MESSAGES, max_tokens: 3 }),
      signal: AbortSignal.timeout(deadline(60000)),
    });
    assert.equal(r.status, 200);
    await r.text();
    // The first read starts the scraper; the engine's figures follow within a scrape.
    let text = '';
    await waitFor(async () => {
      text = await (await fetch(`${egw.url}/metrics`)).text();
      return /^infergate_engine_requests_processing\{model="tiny"\} \d/m.test(text);
    }, { timeoutMs: deadline(15000), intervalMs: 200, message: 'the engine metrics' });
    assert.match(text, /^infergate_engine_kv_cache_usage_ratio\{model="tiny"\} [\d.e-]+$/m);
    assert.match(text, /^infergate_engine_tokens_predicted_total\{model="tiny"\} [1-9]/m);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: deadline(20000) });
    assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
  }));

  test('the request log survives a restart and keeps at most storage.max_log_rows rows', guarded(async () => {
    const opts = { models: { a: { cmd: fakeCmd('a') } }, extra: { storage: { max_log_rows: 1000 } } };
    const first = await startGateway(scope.t, opts);
    for (let i = 0; i < 1010; i++) {
      const r = await fetch(`${first.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': `cap-${i}` },
        body: JSON.stringify({ model: 'a', messages: MESSAGES, max_tokens: 1 }),
      });
      assert.equal(r.status, 200);
      await r.text();
    }
    const before = await (await fetch(`${first.url}/admin/requests?limit=1000`)).json();
    assert.equal(before.has_more, true, 'all 1010 rows are there until the next prune');
    const st = await first.stop();
    assert.equal(st.code, 0);
    // The same database: pruning runs with the first write after start-up.
    const second = await startGateway(scope.t, { ...opts, env: { INFERGATE_STATE_DIR: first.dir } });
    const after = await (await fetch(`${second.url}/admin/requests?limit=1000`)).json();
    assert.equal(after.data.length, 1000);
    assert.equal(after.has_more, false);
    assert.equal(after.data[0].request_id, 'cap-1009');
    assert.equal(after.data[999].request_id, 'cap-10', 'the oldest rows went first');
  }));

  test('/readyz is public and says why it is not ready', guarded(async () => {
    const ready = await fetch(`${gw.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal((await ready.json()).status, 'ready');
    const empty = await startGateway(scope.t, { models: {} });
    const res = await fetch(`${empty.url}/readyz`);
    assert.equal(res.status, 503);
    const body = await res.json();
    assert.equal(body.status, 'not_ready');
    assert.deepEqual(body.reasons, ['no models are configured']);
  }));
});
