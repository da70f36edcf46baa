// Ollama hosts as upstreams: a model with `api: ollama` and `proxy:` pointing at an Ollama
// host is served to OpenAI clients. The Ollama host is a fake written here (node http) that
// speaks Ollama's /api/chat, /api/generate and /api/embed, NDJSON streams included, and
// records what it gets; the client is the official openai SDK. Chat (streamed and whole),
// completions, embeddings (float and the SDK's default base64), usage in the answers and the
// request log, Ollama errors passed on as OpenAI errors with their status, the Ollama front
// chained onto an Ollama upstream, and `api:` validated by `infergate check`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  INFERGATE,
  assertErrorShape,
  deadline,
  guardWith,
  startGateway,
  suiteScope,
  tempDir,
  waitFor,
  withTimeout,
} from './lib/harness.mjs';

const WORDS = ['Ollama', ' hosts', ' are', ' backends', ' too.'];
const OLLAMA_MODEL = 'llama3.2:1b';
const PROMPT_COUNT = 11;
const EMBED_COUNT = 7;
const VECTOR = [0.5, -0.25, 0.125]; // exact in float32, so base64 round-trips exactly

/** The durations and counts Ollama ends an answer with. */
function doneFields(reason = 'stop') {
  return {
    done: true,
    done_reason: reason,
    total_duration: 90_000_000,
    load_duration: 1_000_000,
    prompt_eval_count: PROMPT_COUNT,
    prompt_eval_duration: 20_000_000,
    eval_count: WORDS.length,
    eval_duration: 60_000_000,
  };
}

/**
 * The fake Ollama host. Prompts (the last message, or the prompt) steer it: "missing" gets
 * Ollama's 404 for a model it lacks, "midway" a stream that fails after two words, "cut" a
 * stream that ends without its done line.
 */
function ollamaHandler(state) {
  return (req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      let body = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {}
      state.requests.push({ url: req.url, body });
      const json = (status, obj) => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(obj));
      };
      const head = () => ({ model: body.model, created_at: new Date().toISOString() });
      const isChat = req.url === '/api/chat';
      if (req.method === 'GET' && req.url === '/api/tags') {
        json(200, { models: [{ name: OLLAMA_MODEL, model: OLLAMA_MODEL }] });
        return;
      }
      if (req.method !== 'POST' || !['/api/chat', '/api/generate', '/api/embed'].includes(req.url)) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('404 page not found');
        return;
      }
      if (req.url === '/api/embed') {
        const inputs = Array.isArray(body.input) ? body.input : [body.input];
        json(200, { model: body.model, embeddings: inputs.map(() => VECTOR), total_duration: 5_000_000, load_duration: 1_000, prompt_eval_count: EMBED_COUNT });
        return;
      }
      const prompt = isChat ? body.messages?.at(-1)?.content ?? '' : body.prompt ?? '';
      if (prompt.includes('missing')) {
        json(404, { error: `model "${body.model}" not found, try pulling it first` });
        return;
      }
      const text = (word) => (isChat ? { message: { role: 'assistant', content: word } } : { response: word });
      if (body.stream === false) {
        json(200, { ...head(), ...text(WORDS.join('')), ...doneFields() });
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      const words = prompt.includes('midway') || prompt.includes('cut') ? WORDS.slice(0, 2) : WORDS;
      for (const w of words) res.write(JSON.stringify({ ...head(), ...text(w), done: false }) + '\n');
      if (prompt.includes('midway')) res.write(JSON.stringify({ error: 'an error was encountered while running the model: out of memory' }) + '\n');
      else if (!prompt.includes('cut')) res.write(JSON.stringify({ ...head(), ...text(''), ...doneFields() }) + '\n');
      res.end();
    });
  };
}

/** Runs `infergate ARGS`; resolves {code, stderr}. */
function runGateway(args) {
  const child = spawn(INFERGATE, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const err = [];
  child.stderr.on('data', (d) => err.push(d));
  const done = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stderr: Buffer.concat(err).toString() }));
  });
  return withTimeout(done, deadline(10000), 'infergate check').finally(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
}

describe('Ollama upstreams (api: ollama)', () => {
  const scope = suiteScope();
  const state = { requests: [] };
  let server;
  let gw;
  let client;
  const guarded = guardWith(() => gw);
  /** The requests the fake Ollama host got for URL since index FROM. */
  const got = (url, from = 0) => state.requests.slice(from).filter((r) => r.url === url);

  before(async () => {
    server = http.createServer(ollamaHandler(state));
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    gw = await startGateway(scope.t, {
      models: {
        ol: { proxy: `http://127.0.0.1:${server.address().port}`, api: 'ollama', useModelName: OLLAMA_MODEL },
      },
    });
    client = gw.client();
  });
  after(async () => {
    await scope.cleanup();
    server?.closeAllConnections();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
  });

  test('a whole chat answer comes back in OpenAI shape, with usage from Ollama\'s counts', guarded(async () => {
    const from = state.requests.length;
    const r = await client.chat.completions.create({
      model: 'ol',
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'text', text: 'hello' }] }],
      temperature: 0.2,
      max_tokens: 20,
      stop: '\n\n',
      seed: 7,
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, WORDS.join(''));
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.deepEqual(r.usage, { prompt_tokens: PROMPT_COUNT, completion_tokens: WORDS.length, total_tokens: PROMPT_COUNT + WORDS.length });
    const [sent] = got('/api/chat', from);
    assert.deepEqual(sent.body, {
      model: OLLAMA_MODEL,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello' }],
      options: { temperature: 0.2, num_predict: 20, stop: ['\n\n'], seed: 7 },
      stream: false,
    });
  }));

  test('a streamed chat arrives chunk by chunk, ends with finish_reason and the usage chunk', guarded(async () => {
    const from = state.requests.length;
    const stream = await client.chat.completions.create({
      model: 'ol',
      messages: [{ role: 'user', content: 'hello' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(got('/api/chat', from)[0].body.stream, true, 'stream is always sent explicitly');
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, WORDS.join(''));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const last = chunks.filter((c) => c.choices.length > 0).at(-1);
    assert.equal(last.choices[0].finish_reason, 'stop');
    const usage = chunks.at(-1);
    assert.deepEqual(usage.choices, []);
    assert.deepEqual(usage.usage, { prompt_tokens: PROMPT_COUNT, completion_tokens: WORDS.length, total_tokens: PROMPT_COUNT + WORDS.length });
  }));

  test('a stream without the usage chunk is still metered from Ollama\'s counts', guarded(async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'ollama-up-meter-1' },
      body: JSON.stringify({ model: 'ol', messages: [{ role: 'user', content: 'hello' }], stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const body = await res.text();
    assert.ok(body.trimEnd().endsWith('data: [DONE]'), body);
    assert.ok(!body.includes('"usage"'), 'no usage chunk when none was asked for');
    const row = await waitFor(async () => {
      const rows = (await gw.json('/admin/requests?model=ol&limit=50')).data;
      return rows.find((r) => r.request_id === 'ollama-up-meter-1');
    }, { timeoutMs: deadline(5000), message: 'the request log row' });
    assert.equal(row.status, 200);
    assert.equal(row.stream, true);
    assert.equal(row.prompt_tokens, PROMPT_COUNT);
    assert.equal(row.completion_tokens, WORDS.length);
  }));

  test('completions go to /api/generate as raw prompts, whole and streamed', guarded(async () => {
    const from = state.requests.length;
    const whole = await client.completions.create({ model: 'ol', prompt: 'Once upon', max_tokens: 9 });
    assert.equal(whole.object, 'text_completion');
    assert.equal(whole.choices[0].text, WORDS.join(''));
    assert.equal(whole.choices[0].finish_reason, 'stop');
    assert.equal(whole.usage.completion_tokens, WORDS.length);
    const stream = await client.completions.create({ model: 'ol', prompt: 'Once upon', stream: true });
    const parts = [];
    let reason = null;
    for await (const c of stream) {
      parts.push(c.choices[0]?.text ?? '');
      reason = c.choices[0]?.finish_reason ?? reason;
    }
    assert.equal(parts.join(''), WORDS.join(''));
    assert.equal(reason, 'stop');
    const sent = got('/api/generate', from);
    assert.deepEqual(sent[0].body, { model: OLLAMA_MODEL, prompt: 'Once upon', raw: true, options: { num_predict: 9 }, stream: false });
    assert.equal(sent[1].body.stream, true);
  }));

  test('embeddings come back as floats, or as base64 (the SDK\'s default)', guarded(async () => {
    const from = state.requests.length;
    const floats = await client.embeddings.create({ model: 'ol', input: ['a', 'b'], encoding_format: 'float' });
    assert.equal(floats.object, 'list');
    assert.deepEqual(floats.data.map((d) => [d.index, d.embedding]), [[0, VECTOR], [1, VECTOR]]);
    assert.equal(floats.usage.prompt_tokens, EMBED_COUNT);
    const decoded = await client.embeddings.create({ model: 'ol', input: 'c' });
    assert.deepEqual(Array.from(decoded.data[0].embedding), VECTOR);
    const sent = got('/api/embed', from);
    assert.deepEqual(sent.map((r) => r.body), [
      { model: OLLAMA_MODEL, input: ['a', 'b'], stream: false },
      { model: OLLAMA_MODEL, input: 'c', stream: false },
    ]);
  }));

  test('an Ollama error becomes an OpenAI error with the upstream status', guarded(async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'ol', messages: [{ role: 'user', content: 'missing' }] }),
      (e) => e.status === 404 && /not found, try pulling it first/.test(e.message),
    );
    const raw = await gw.request('/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'ol', messages: [{ role: 'user', content: 'missing' }], stream: true }),
    });
    assertErrorShape(assert, raw, 404);
  }));

  test('a stream that fails or is cut midway ends with an error the SDK raises', guarded(async () => {
    for (const [prompt, pattern] of [['midway', /out of memory/], ['cut', /ended the stream before it was done/]]) {
      const stream = await client.chat.completions.create({ model: 'ol', messages: [{ role: 'user', content: prompt }], stream: true });
      const seen = [];
      await assert.rejects(
        (async () => {
          for await (const c of stream) seen.push(c.choices[0]?.delta?.content ?? '');
        })(),
        (e) => pattern.test(e.message),
      );
      assert.equal(seen.join(''), WORDS.slice(0, 2).join(''), 'the words before the failure arrived');
    }
  }));

  test('what has no Ollama equivalent is refused with a 400; /upstream/ passes through', guarded(async () => {
    const from = state.requests.length;
    const rerank = await gw.request('/v1/rerank', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'ol', query: 'q', documents: ['a'] }),
    });
    assertErrorShape(assert, rerank, 400);
    await assert.rejects(
      client.chat.completions.create({
        model: 'ol',
        messages: [{ role: 'user', content: 'hi' }],
        tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      }),
      (e) => e.status === 400 && /tools/.test(e.message),
    );
    assert.equal(state.requests.length, from, 'nothing reached the Ollama host');
    const tags = await gw.request('/upstream/ol/api/tags');
    assert.equal(tags.status, 200, '/upstream/<model>/... still reaches the host untranslated');
    assert.equal(tags.json.models[0].name, OLLAMA_MODEL);
  }));

  test('Ollama clients reach an Ollama upstream through the gateway\'s Ollama front', guarded(async () => {
    const res = await fetch(`${gw.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'ol', messages: [{ role: 'user', content: 'hello' }], stream: false }),
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.message.content, WORDS.join(''));
    assert.equal(body.done, true);
    assert.equal(body.eval_count, WORDS.length);
    assert.equal(body.prompt_eval_count, PROMPT_COUNT);
  }));
});

test('infergate check rejects an unknown api with its file:line:col', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'bad.yaml');
  await writeFile(file, 'models:\n  ol:\n    proxy: http://127.0.0.1:11434\n    api: olama\n');
  const r = await runGateway(['check', '-c', file]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:10: .*api: must be "openai" or "ollama", got 'olama'`));
  const good = path.join(dir, 'good.yaml');
  await writeFile(good, 'models:\n  ol:\n    proxy: http://127.0.0.1:11434\n    api: ollama\n');
  const ok = await runGateway(['check', '-c', good]);
  assert.equal(ok.code, 0, ok.stderr);
});
