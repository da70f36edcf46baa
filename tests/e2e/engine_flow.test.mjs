// infergate-engine flow control and bookkeeping on a tiny random-weight GGUF: a slow streaming
// client pauses its slot, /metrics (with --metrics) in llama-server's Prometheus text, and
// per-slot KV-cache prefix reuse.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { deadline, waitFor } from './lib/harness.mjs';
import { makeTinyModel, startEngine, stopAllEngines, stopEngine } from './lib/engine.mjs';

const MESSAGES = [{ role: 'user', content: 'hello world' }];

let dir;
let model;

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ig-engine-flow-'));
  model = path.join(dir, 'tiny.gguf');
  await makeTinyModel(model);
});

after(async () => {
  try {
    await stopAllEngines();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

/** Returns slot 0's n_decoded from /slots. */
async function decoded(eng) {
  return (await eng.request('/slots')).json[0].next_token[0].n_decoded;
}

test('a client that stops reading pauses its slot until it reads again', async () => {
  const eng = await startEngine(model, ['-t', '1', '-c', '8192', '-np', '1']);
  try {
    const n = 4000;
    // 20 probabilities per token make each event ~1.5 KB: several MB in all, far over the buffers.
    const body = JSON.stringify({ prompt: 'hello', n_predict: n, temperature: 0, ignore_eos: true, n_probs: 20, stream: true });
    let res;
    const req = http.request({ host: '127.0.0.1', port: eng.port, method: 'POST', path: '/completion', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
    const gotRes = new Promise((resolve, reject) => {
      req.once('response', (r) => {
        res = r;
        r.pause();
        resolve();
      });
      req.once('error', reject);
    });
    req.end(body);
    await gotRes;
    let last = -1;
    await waitFor(
      async () => {
        const now = await decoded(eng);
        const isStable = now === last && now > 0;
        last = now;
        return isStable;
      },
      { timeoutMs: deadline(30000), intervalMs: 500, message: 'decoding paused behind the slow client' },
    );
    assert.ok(last < n, `decoded ${last} of ${n} while nobody read`);
    const text = await new Promise((resolve, reject) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.once('error', reject);
      res.resume();
    });
    const events = text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice(6)));
    assert.equal(events.at(-1).stop, true);
    assert.equal(events.at(-1).tokens_predicted, n);
    assert.equal(events.flatMap((e) => e.completion_probabilities ?? []).length, n);
  } finally {
    await stopEngine(eng);
  }
});

test('a paused stream whose client goes away frees its slot', async () => {
  const eng = await startEngine(model, ['-t', '1', '-c', '8192', '-np', '1']);
  try {
    const body = JSON.stringify({ prompt: 'hello', n_predict: 4000, temperature: 0, ignore_eos: true, n_probs: 20, stream: true });
    const req = http.request({ host: '127.0.0.1', port: eng.port, method: 'POST', path: '/completion', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
    req.on('error', () => {});
    const res = await new Promise((resolve) => {
      req.once('response', (r) => {
        r.pause();
        resolve(r);
      });
      req.end(body);
    });
    let last = -1;
    await waitFor(
      async () => {
        const now = await decoded(eng);
        const isStable = now === last && now > 0;
        last = now;
        return isStable;
      },
      { timeoutMs: deadline(30000), intervalMs: 500, message: 'decoding paused behind the slow client' },
    );
    res.destroy();
    req.destroy();
    await waitFor(async () => (await eng.request('/slots')).json[0].is_processing === false, {
      timeoutMs: deadline(5000),
      message: 'slot idle after the paused client left',
    });
    assert.ok((await decoded(eng)) < 4000);
    const r = await eng.post('/completion', { prompt: 'hello', n_predict: 3, temperature: 0, ignore_eos: true });
    assert.equal(r.json.tokens_predicted, 3);
  } finally {
    await stopEngine(eng);
  }
});

/** Parses Prometheus text into {name: value}. */
function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const [name, value] = line.split(' ');
    out[name] = Number(value);
  }
  return out;
}

test('/metrics serves llama-server counters only with --metrics', async () => {
  const eng = await startEngine(model, ['-t', '1', '-c', '4096', '-np', '2', '--metrics']);
  try {
    const before = await eng.request('/metrics');
    assert.equal(before.status, 200);
    assert.match(before.headers['content-type'], /^text\/plain/);
    assert.match(before.text, /# TYPE llamacpp:prompt_tokens_total counter\n/);
    const m0 = parseMetrics(before.text);
    for (const name of ['prompt_tokens_total', 'tokens_predicted_total', 'prompt_tokens_seconds', 'predicted_tokens_seconds', 'requests_processing', 'requests_deferred', 'kv_cache_usage_ratio', 'n_decode_total']) {
      assert.equal(typeof m0[`llamacpp:${name}`], 'number', name);
    }
    assert.equal(m0['llamacpp:tokens_predicted_total'], 0);
    const r = await eng.post('/completion', { prompt: 'hello world', n_predict: 10, temperature: 0, ignore_eos: true });
    assert.equal(r.status, 200);
    const m1 = parseMetrics((await eng.request('/metrics')).text);
    assert.equal(m1['llamacpp:tokens_predicted_total'], 10);
    assert.equal(m1['llamacpp:prompt_tokens_total'], r.json.timings.prompt_n);
    assert.ok(m1['llamacpp:predicted_tokens_seconds'] > 0);
    assert.ok(m1['llamacpp:n_decode_total'] >= 10);
    assert.equal(m1['llamacpp:requests_processing'], 0);
    assert.ok(m1['llamacpp:kv_cache_usage_ratio'] > 0 && m1['llamacpp:kv_cache_usage_ratio'] <= 1);
    assert.equal((await eng.request('/props')).json.endpoint_metrics, true);
  } finally {
    await stopEngine(eng);
  }
  const plain = await startEngine(model, ['-t', '1', '-c', '1024', '-np', '1']);
  try {
    const r = await plain.request('/metrics');
    assert.equal(r.status, 501);
    assert.match(r.json.error.message, /--metrics/);
  } finally {
    await stopEngine(plain);
  }
});

test('a repeated chat request reuses the slot KV cache and gives the same greedy text', async () => {
  const eng = await startEngine(model, ['-t', '1', '-c', '8192', '-np', '4']);
  try {
    const messages = [{ role: 'user', content: 'tell me a long story about the sea and the stars. '.repeat(8) }];
    const req = { messages, temperature: 0, max_tokens: 8, ignore_eos: true };
    const a = (await eng.post('/v1/chat/completions', req)).json;
    assert.equal(a.timings.cache_n, 0);
    // A dissimilar prompt goes to the least recently used slot, keeping the first slot's cache.
    const other = (await eng.post('/v1/chat/completions', { ...req, messages: [{ role: 'user', content: 'zzz' }] })).json;
    assert.equal(other.timings.cache_n, 0);
    const b = (await eng.post('/v1/chat/completions', req)).json;
    assert.equal(b.timings.cache_n, a.usage.prompt_tokens - 1);
    assert.equal(b.timings.prompt_n, 1);
    assert.equal(b.usage.prompt_tokens, a.usage.prompt_tokens);
    assert.equal(b.choices[0].message.content, a.choices[0].message.content);
    // A continuation of the conversation reuses the prompt and the generated answer.
    const next = { ...req, messages: [...messages, { role: 'assistant', content: a.choices[0].message.content }, { role: 'user', content: 'more' }] };
    const c = (await eng.post('/v1/chat/completions', next)).json;
    assert.ok(c.timings.cache_n >= a.usage.prompt_tokens - 4, `cache_n ${c.timings.cache_n}`);
    const fresh = await startEngine(model, ['-t', '1', '-c', '8192', '-np', '4']);
    try {
      const d = (await fresh.post('/v1/chat/completions', next)).json;
      assert.equal(d.timings.cache_n, 0);
      assert.equal(c.choices[0].message.content, d.choices[0].message.content);
    } finally {
      await stopEngine(fresh);
    }
  } finally {
    await stopEngine(eng);
  }
});
