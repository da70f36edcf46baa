// infergate-engine on a tiny random-weight GGUF (mkgguf): llama-server shapes, determinism,
// streaming, stop strings, concurrency, cancellation, embeddings, load failures, and one chat
// completion through the gateway.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { deadline, freePort, rawStream, waitFor, withGateway } from './lib/harness.mjs';
import {
  ENGINE, MKGGUF, SANITIZER, makeTinyModel, runToExit, spawnEngine, startEngine, stopAllEngines, stopEngine,
} from './lib/engine.mjs';

const MESSAGES = [{ role: 'user', content: 'hello world' }];

let dir;
let tinyPath;
let embedPath;
let main; // shared engine: tiny model, 4 slots, 8192 tokens per slot

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ig-engine-'));
  tinyPath = path.join(dir, 'tiny.gguf');
  embedPath = path.join(dir, 'embed.gguf');
  await makeTinyModel(tinyPath);
  await makeTinyModel(embedPath, ['--embedding']);
  main = await startEngine(tinyPath, ['-c', '32768', '-np', '4', '-t', '1']);
});

after(async () => {
  try {
    await stopAllEngines();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

/** A greedy chat request of N tokens that ignores EOS. */
function greedy(n, extra = {}) {
  return { model: 'tiny', messages: MESSAGES, temperature: 0, max_tokens: n, ignore_eos: true, ...extra };
}

test('/health, /props, /v1/models, /slots answer in llama-server shapes', async () => {
  const health = await main.request('/health');
  assert.equal(health.status, 200);
  assert.deepEqual(health.json, { status: 'ok' });
  const props = (await main.request('/props')).json;
  assert.equal(props.total_slots, 4);
  assert.equal(props.default_generation_settings.n_ctx, 8192);
  assert.match(props.chat_template, /start_header_id/);
  const models = (await main.request('/v1/models')).json;
  assert.equal(models.object, 'list');
  assert.equal(models.data[0].id, 'tiny.gguf');
  assert.equal(models.data[0].owned_by, 'llamacpp');
  const slots = (await main.request('/slots')).json;
  assert.equal(slots.length, 4);
  assert.ok(slots.every((s) => s.is_processing === false));
});

test('/tokenize and /detokenize round-trip', async () => {
  const tok = await main.request('/tokenize', { method: 'POST', body: { content: 'hello world' } });
  assert.equal(tok.status, 200);
  assert.equal(tok.json.tokens.length, 2);
  const detok = await main.request('/detokenize', { method: 'POST', body: { tokens: tok.json.tokens } });
  assert.equal(detok.json.content, 'hello world');
});

test('greedy decoding is deterministic', async () => {
  const client = main.client();
  const a = await client.chat.completions.create(greedy(24));
  const b = await client.chat.completions.create(greedy(24));
  assert.equal(a.object, 'chat.completion');
  assert.ok(a.choices[0].message.content.length > 0);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.equal(a.usage.completion_tokens, 24);
  assert.ok(a.usage.prompt_tokens > 0);
  assert.equal(typeof a.timings.predicted_ms, 'number');
});

test('the same seed gives the same sampled text', async () => {
  const client = main.client();
  const req = { ...greedy(24), temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0, seed: 1234 };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
});

test('streamed content equals the non-streamed content, with usage', async () => {
  const client = main.client();
  const whole = await client.chat.completions.create(greedy(32));
  const stream = await client.chat.completions.create({ ...greedy(32), stream: true, stream_options: { include_usage: true } });
  let content = '';
  let usage;
  let finish;
  for await (const chunk of stream) {
    content += chunk.choices?.[0]?.delta?.content ?? '';
    finish = chunk.choices?.[0]?.finish_reason ?? finish;
    usage = chunk.usage ?? usage;
  }
  assert.equal(content, whole.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 32);
});

test('max_tokens is exact on every completion route', async () => {
  const client = main.client();
  for (const n of [1, 7, 40]) {
    const chat = await client.chat.completions.create(greedy(n));
    assert.equal(chat.usage.completion_tokens, n);
    assert.equal(chat.choices[0].finish_reason, 'length');
  }
  const cmpl = await client.completions.create({ model: 'tiny', prompt: 'hello', max_tokens: 9, temperature: 0, ignore_eos: true });
  assert.equal(cmpl.object, 'text_completion');
  assert.equal(cmpl.usage.completion_tokens, 9);
  const native = await main.request('/completion', { method: 'POST', body: { prompt: 'hello', n_predict: 5, temperature: 0, ignore_eos: true } });
  assert.equal(native.status, 200);
  assert.equal(native.json.tokens_predicted, 5);
  assert.equal(native.json.stop, true);
  assert.equal(native.json.stop_type, 'limit');
});

test('a stop string ends the text and is never emitted, streamed or not', async () => {
  const client = main.client();
  const full = (await client.chat.completions.create(greedy(48))).choices[0].message.content;
  // An ASCII window of 3 characters from the middle, likely spanning a token boundary.
  let stop;
  for (let i = 4; i + 3 <= full.length && !stop; i++) {
    const w = full.slice(i, i + 3);
    if (/^[\x21-\x7e ]{3}$/.test(w) && /\S/.test(w)) stop = w;
  }
  assert.ok(stop, `no ASCII window in ${JSON.stringify(full)}`);
  const expected = full.slice(0, full.indexOf(stop));
  const cut = await client.chat.completions.create(greedy(48, { stop: [stop] }));
  assert.equal(cut.choices[0].message.content, expected);
  assert.equal(cut.choices[0].finish_reason, 'stop');
  const stream = await client.chat.completions.create(greedy(48, { stop: stop, stream: true }));
  let content = '';
  for await (const chunk of stream) content += chunk.choices?.[0]?.delta?.content ?? '';
  assert.equal(content, expected);
  assert.ok(!content.includes(stop));
});

test('8 concurrent streams all complete', async () => {
  const client = main.client();
  const runs = Array.from({ length: 8 }, async (_, i) => {
    const stream = await client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: `hello world ${i}` }],
      temperature: 0.7,
      seed: i,
      max_tokens: 24,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage;
    let finish;
    for await (const chunk of stream) {
      finish = chunk.choices?.[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    return { usage, finish };
  });
  const results = await Promise.all(runs);
  for (const r of results) {
    assert.equal(r.finish, 'length');
    assert.equal(r.usage.completion_tokens, 24);
  }
});

test('a client abort frees its slot', async () => {
  const body = JSON.stringify({ prompt: 'hello', n_predict: -1, ignore_eos: true, temperature: 0, stream: true });
  await new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: main.port, method: 'POST', path: '/completion', agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      },
    );
    req.on('error', (e) => (e.code === 'ECONNRESET' ? resolve() : reject(e)));
    req.end(body);
  });
  // The request could only end by filling 8192 tokens of context: idle slots mean it was cancelled.
  await waitFor(
    async () => {
      const slots = (await main.request('/slots')).json;
      return slots.every((s) => s.is_processing === false);
    },
    { timeoutMs: deadline(5000), message: 'every slot idle after the abort' },
  );
  const after = await main.client().chat.completions.create(greedy(4));
  assert.equal(after.usage.completion_tokens, 4);
});

test('a long prompt is read in chunks while another stream decodes', async () => {
  const client = main.client();
  const streaming = (async () => {
    const stream = await client.chat.completions.create({ ...greedy(64), stream: true });
    let n = 0;
    for await (const chunk of stream) if (chunk.choices?.[0]?.delta?.content) n++;
    return n;
  })();
  const prompt = Array.from({ length: 6000 }, (_, i) => 100 + (i % 700));
  const long = await client.completions.create({ model: 'tiny', prompt, max_tokens: 3, temperature: 0, ignore_eos: true });
  assert.equal(long.usage.prompt_tokens, 6000);
  assert.equal(long.usage.completion_tokens, 3);
  assert.ok((await streaming) > 0);
});

test('a chat template the library cannot apply is a 400', async () => {
  const eng = await startEngine(tinyPath, ['--chat-template', 'no-such-template', '-c', '1024', '-np', '1', '-t', '1']);
  try {
    const r = await eng.request('/v1/chat/completions', { method: 'POST', body: { messages: MESSAGES } });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /chat template/);
  } finally {
    await stopEngine(eng);
  }
});

test('a prompt over the slot context is a 400 naming the limit', async () => {
  const prompt = Array.from({ length: 9000 }, () => 840);
  const r = await main.request('/v1/completions', { method: 'POST', body: { prompt, max_tokens: 1 } });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.type, 'exceed_context_size_error');
  assert.match(r.json.error.message, /8192/);
});

test('invalid JSON and unknown paths get llama-server errors', async () => {
  const bad = await main.request('/v1/chat/completions', { method: 'POST', body: '{"messages": [' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 400);
  const missing = await main.request('/nope');
  assert.equal(missing.status, 404);
  const embd = await main.request('/v1/embeddings', { method: 'POST', body: { input: 'hi' } });
  assert.equal(embd.status, 501);
});

test('native /completion streams without [DONE]', async () => {
  const r = await rawStream({ port: main.port, path: '/completion', body: { prompt: 'hello', n_predict: 6, temperature: 0, ignore_eos: true, stream: true } });
  assert.equal(r.status, 200);
  assert.ok(!r.events.includes('[DONE]'));
  const last = JSON.parse(r.events.at(-1));
  assert.equal(last.stop, true);
  assert.equal(last.tokens_predicted, 6);
});

test('--embeddings serves pooled, L2-normalised vectors', async () => {
  const eng = await startEngine(embedPath, ['--embeddings', '-t', '1']);
  try {
    const res = await eng.client().embeddings.create({ model: 'embed', input: ['hello world', 'hello'], encoding_format: 'float' });
    assert.equal(res.data.length, 2);
    for (const d of res.data) {
      assert.equal(d.embedding.length, 128);
      const norm = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(norm - 1) < 1e-3, `norm ${norm}`);
    }
    assert.notDeepEqual(res.data[0].embedding, res.data[1].embedding);
    const chat = await eng.request('/v1/chat/completions', { method: 'POST', body: { messages: MESSAGES } });
    assert.equal(chat.status, 501);
  } finally {
    await stopEngine(eng);
  }
});

test('/health answers 503 with the load progress while the model loads, then 200', async () => {
  // `small` is 109 MB; --no-mmap makes libllama read it tensor by tensor, reporting progress,
  // which takes long enough here (about a second on 2 cores) to be seen by a tight poll.
  const small = path.join(dir, 'small.gguf');
  const mk = await runToExit(MKGGUF, [small, '--preset', 'small']);
  assert.equal(mk.code, 0, mk.output);
  const eng = await spawnEngine(small, ['--no-mmap', '-c', '512', '-np', '1', '-t', '1']);
  try {
    const loading = [];
    await waitFor(
      async () => {
        if (eng.exited) throw new Error(`engine exited early: ${eng.output()}`);
        const r = await eng.request('/health', { timeoutMs: 1000 }).catch(() => null);
        if (r === null) return false; // not listening yet
        if (r.status === 503) loading.push(r);
        return r.status === 200 ? r : false;
      },
      { timeoutMs: deadline(60000), intervalMs: 2, message: '/health 200 after loading' },
    ).then((r) => assert.deepEqual(r.json, { status: 'ok' }));
    assert.ok(loading.length > 0, 'no 503 was seen while the model loaded');
    let last = 0;
    for (const r of loading) {
      assert.equal(r.json.error.code, 503);
      assert.equal(r.json.error.message, 'Loading model');
      assert.equal(r.json.error.type, 'unavailable_error');
      assert.equal(r.headers['retry-after'], '1');
      const p = r.json.error.progress;
      assert.equal(typeof p, 'number');
      assert.ok(p >= last && p <= 1, `progress ${p} after ${last}`);
      last = p;
    }
    assert.equal((await eng.request('/health')).status, 200);
  } finally {
    await stopEngine(eng);
    await fsp.rm(small, { force: true });
  }
});

test('missing, non-GGUF, truncated and wrong-architecture models exit non-zero with one clear line', async () => {
  const text = path.join(dir, 'text.gguf');
  const truncated = path.join(dir, 'truncated.gguf');
  await fsp.writeFile(text, 'this is not a model\n');
  await fsp.writeFile(truncated, (await fsp.readFile(tinyPath)).subarray(0, 1000));
  // A valid GGUF whose general.architecture names no architecture libllama knows.
  const wrongArch = path.join(dir, 'wrongarch.gguf');
  const bytes = Buffer.from(await fsp.readFile(tinyPath));
  const key = bytes.indexOf('general.architecture');
  const value = key + 'general.architecture'.length + 4 /* type */ + 8 /* length */;
  assert.equal(bytes.subarray(value, value + 5).toString(), 'llama');
  bytes.write('bogus', value);
  await fsp.writeFile(wrongArch, bytes);
  const cases = [
    [path.join(dir, 'absent.gguf'), /cannot open model .*absent\.gguf/],
    [text, /cannot load model .*text\.gguf: not a GGUF file/],
    [truncated, /cannot load model .*truncated\.gguf/],
    [wrongArch, /cannot load model .*wrongarch\.gguf: libllama refused it \(architecture 'bogus'/],
  ];
  for (const [file, pattern] of cases) {
    const port = await freePort();
    const r = await runToExit(ENGINE, ['-m', file, '--port', String(port)]);
    assert.notEqual(r.code, 0, `exit status for ${file}`);
    const errorLines = r.output.split('\n').filter((l) => /cannot/.test(l));
    assert.equal(errorLines.length, 1, r.output);
    assert.match(errorLines[0], pattern);
    assert.doesNotMatch(r.output, SANITIZER, r.output);
  }
});

test('the gateway serves a chat completion from the engine', (t) =>
  withGateway(t, { models: { tiny: { cmd: `${ENGINE} -m ${tinyPath} --port \${PORT} -c 2048 -np 2 -t 1 --jinja -ub 512` } } }, async (gw) => {
    const res = await gw.client().chat.completions.create({ model: 'tiny', messages: MESSAGES, max_tokens: 8, temperature: 0, ignore_eos: true });
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.usage.completion_tokens, 8);
    assert.ok(res.choices[0].message.content.length > 0);
  }));
