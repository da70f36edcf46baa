// Ollama's API in front: the official `ollama` npm client against the gateway and
// fake-llama-server: version, list, ps, show, chat and generate (streamed by default and
// not), embed, Ollama-shaped errors, and auth with a key.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { makeTinyModel } from './lib/engine.mjs';
import { deadline, fakeCmd, guardWith, startGateway, suiteScope, tempDir } from './lib/harness.mjs';

const KEY = 'sk-ollama-0123456789abcdef';
const ALPHA_ONLY = 'sk-alphaonly-0123456789abcdef';
const MESSAGES = [{ role: 'user', content: 'tell me a story' }];

describe('Ollama API', () => {
  const scope = suiteScope();
  let gw;
  const guarded = guardWith(() => gw);
  /** An Ollama client of the gateway with KEY (none: no Authorization header). */
  const ollama = (key = KEY) =>
    new Ollama({ host: gw.url, headers: key ? { Authorization: `Bearer ${key}` } : {} });
  const openai = () => new OpenAI({ apiKey: KEY, baseURL: gw.baseURL, maxRetries: 0, timeout: deadline(30000) });
  /** POST PATH with the key and JSON BODY. */
  const post = (path, body, key = KEY) =>
    gw.request(path, { method: 'POST', headers: key ? { authorization: `Bearer ${key}` } : {}, body });

  before(async () => {
    const dir = await tempDir(scope.t);
    await makeTinyModel(path.join(dir, 'tiny.gguf')); // discovered: listed with its GGUF details
    gw = await startGateway(scope.t, {
      models: {
        alpha: { cmd: fakeCmd('alpha'), ttl: 300 },
        emb: { cmd: fakeCmd('emb', ['--embedding-dim', 8]) },
        crashy: { cmd: fakeCmd('crashy', ['--crash-after-tokens', 3]) },
      },
      extra: {
        models_dir: dir,
        auth: {
          admin_token: 'admin-token-0123456789abcdef',
          keys: [
            { name: 'ollama', key: KEY },
            { name: 'alphaonly', key: ALPHA_ONLY, models: ['alpha'] },
          ],
        },
      },
    });
  });
  after(scope.cleanup);

  test('version and list: every model with Ollama\'s fields', guarded(async () => {
    const { version } = await ollama().version();
    assert.match(version, /^\d+\.\d+/);
    const { models } = await ollama().list();
    assert.deepEqual(models.map((m) => m.name).sort(), ['alpha', 'crashy', 'emb', 'tiny']);
    for (const m of models) {
      assert.equal(m.model, m.name);
      assert.equal(typeof m.size, 'number');
      assert.match(m.digest, /^[0-9a-f]{64}$/);
      assert.ok(!Number.isNaN(Date.parse(m.modified_at)), `modified_at ${m.modified_at}`);
      for (const k of ['format', 'family', 'parameter_size', 'quantization_level'])
        assert.equal(typeof m.details[k], 'string', `details.${k}`);
    }
    // From the GGUF file's metadata, as infergate's own /models shows it.
    const tiny = models.find((m) => m.name === 'tiny');
    const own = (await gw.json('/models', { headers: { authorization: `Bearer ${KEY}` } })).data.find((m) => m.id === 'tiny');
    assert.equal(tiny.details.format, 'gguf');
    assert.equal(tiny.details.family, own.details.architecture);
    assert.deepEqual(tiny.details.families, [own.details.architecture]);
    assert.equal(tiny.details.quantization_level, own.details.quantization);
    assert.match(tiny.details.parameter_size, /^\d+(\.\d)?[KMB]$/);
    assert.equal(tiny.size, own.details.size_bytes);
  }));

  test('chat without streaming answers what the OpenAI route answers, with Ollama\'s counts', guarded(async () => {
    const res = await ollama().chat({ model: 'alpha', messages: MESSAGES, stream: false, options: { seed: 7, num_predict: 6 } });
    const ref = await openai().chat.completions.create({ model: 'alpha', messages: MESSAGES, seed: 7, max_tokens: 6 });
    assert.equal(res.model, 'alpha');
    assert.equal(res.message.role, 'assistant');
    assert.equal(res.message.content, ref.choices[0].message.content);
    assert.ok(res.message.content.length > 0);
    assert.equal(res.done, true);
    assert.equal(res.done_reason, 'length');
    assert.equal(res.eval_count, 6);
    assert.equal(res.prompt_eval_count, ref.usage.prompt_tokens);
    assert.ok(res.total_duration > 0);
    assert.ok(!Number.isNaN(Date.parse(res.created_at)));
  }));

  test('chat streams NDJSON by default: chunks, then a final done object with counts', guarded(async () => {
    const whole = await ollama().chat({ model: 'alpha', messages: MESSAGES, stream: false, options: { seed: 3, num_predict: 5 } });
    const parts = [];
    for await (const part of await ollama().chat({ model: 'alpha', messages: MESSAGES, stream: true, options: { seed: 3, num_predict: 5 } }))
      parts.push(part);
    const last = parts.at(-1);
    assert.ok(parts.length >= 2, `${parts.length} parts`);
    assert.ok(parts.slice(0, -1).every((p) => p.done === false && p.message.role === 'assistant'));
    assert.equal(parts.map((p) => p.message.content).join(''), whole.message.content);
    assert.equal(last.done, true);
    assert.equal(last.done_reason, 'length');
    assert.equal(last.eval_count, 5);
    assert.ok(last.prompt_eval_count > 0);

    // No "stream" at all streams too (Ollama's default), as application/x-ndjson.
    const raw = await post('/api/chat', { model: 'alpha', messages: MESSAGES, options: { num_predict: 3 } });
    assert.equal(raw.status, 200);
    assert.match(String(raw.headers['content-type']), /application\/x-ndjson/);
    const lines = raw.text.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.at(-1).done, true);
    assert.equal(lines.at(-1).eval_count, 3);
  }));

  test('options map to the OpenAI request: stop ends the answer', guarded(async () => {
    const full = await ollama().chat({ model: 'alpha', messages: MESSAGES, stream: false, options: { seed: 5, num_predict: 12 } });
    const words = full.message.content.trim().split(/\s+/);
    assert.ok(words.length >= 3, full.message.content);
    const stopped = await ollama().chat({ model: 'alpha', messages: MESSAGES, stream: false, options: { seed: 5, num_predict: 12, stop: [words[2]] } });
    assert.ok(stopped.message.content.length < full.message.content.length, `${stopped.message.content} vs ${full.message.content}`);
    assert.equal(stopped.done_reason, 'stop');
  }));

  test('generate: a prompt answered as "response", streamed or not; raw goes to completions', guarded(async () => {
    const res = await ollama().generate({ model: 'alpha', prompt: 'once upon a time', stream: false, options: { seed: 1, num_predict: 4 } });
    assert.ok(res.response.length > 0);
    assert.equal(res.done, true);
    assert.equal(res.eval_count, 4);
    let text = '';
    let last;
    for await (const part of await ollama().generate({ model: 'alpha', prompt: 'once upon a time', stream: true, options: { seed: 1, num_predict: 4 } })) {
      text += part.response;
      last = part;
    }
    assert.equal(text, res.response);
    assert.equal(last.done, true);
    const raw = await ollama().generate({ model: 'alpha', prompt: 'once upon a time', raw: true, stream: false, options: { seed: 1, num_predict: 4 } });
    const ref = await openai().completions.create({ model: 'alpha', prompt: 'once upon a time', seed: 1, max_tokens: 4 });
    assert.equal(raw.response, ref.choices[0].text);
  }));

  test('ps lists the running models with size, VRAM and expiry', guarded(async () => {
    await ollama().chat({ model: 'alpha', messages: MESSAGES, stream: false, options: { num_predict: 1 } });
    const { models } = await ollama().ps();
    const alpha = models.find((m) => m.name === 'alpha');
    assert.ok(alpha, JSON.stringify(models));
    assert.equal(typeof alpha.size, 'number');
    assert.equal(typeof alpha.size_vram, 'number');
    const expires = Date.parse(alpha.expires_at);
    assert.ok(expires > Date.now() && expires <= Date.now() + 301000, `expires_at ${alpha.expires_at}`);
    assert.equal(typeof alpha.details.format, 'string');
  }));

  test('embed: one or many inputs give embeddings equal to /v1/embeddings', guarded(async () => {
    const res = await ollama().embed({ model: 'emb', input: ['first text', 'second text'] });
    assert.equal(res.model, 'emb');
    assert.equal(res.embeddings.length, 2);
    assert.ok(res.embeddings.every((e) => e.length === 8));
    const ref = await openai().embeddings.create({ model: 'emb', input: ['first text', 'second text'], encoding_format: 'float' });
    assert.deepEqual(res.embeddings, ref.data.map((d) => d.embedding));
    const one = await ollama().embed({ model: 'emb', input: 'first text' });
    assert.deepEqual(one.embeddings, [res.embeddings[0]]);
  }));

  test('show: a model\'s details and capabilities', guarded(async () => {
    const res = await ollama().show({ model: 'alpha' });
    assert.equal(typeof res.details.format, 'string');
    assert.ok(Array.isArray(res.capabilities));
    const tiny = await ollama().show({ model: 'tiny' });
    assert.equal(tiny.details.format, 'gguf');
    assert.ok(tiny.capabilities.includes('completion'), JSON.stringify(tiny.capabilities));
    assert.equal(tiny.model_info['general.architecture'], tiny.details.family);
    await assert.rejects(ollama().show({ model: 'nope' }), (e) => e.status_code === 404 && /nope/.test(e.message));
  }));

  test('errors are {"error": message} with the right status', guarded(async () => {
    await assert.rejects(
      ollama().chat({ model: 'nope', messages: MESSAGES, stream: false }),
      (e) => e.name === 'ResponseError' && e.status_code === 404 && /nope/.test(e.message),
    );
    const missing = await post('/api/generate', { model: 'nope', prompt: 'x' });
    assert.equal(missing.status, 404);
    assert.equal(typeof missing.json.error, 'string');
    const bad = await post('/api/chat', { model: 'alpha', messages: 'hello' });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /messages/);
    // Tool calls are not translated yet: refused rather than silently dropped.
    const tools = await post('/api/chat', {
      model: 'alpha', messages: MESSAGES, tools: [{ type: 'function', function: { name: 'f', parameters: {} } }],
    });
    assert.equal(tools.status, 400);
    assert.match(tools.json.error, /tools/);
    const notJson = await post('/api/embed', '{"model":');
    assert.equal(notJson.status, 400);
    assert.equal(typeof notJson.json.error, 'string');
  }));

  test('a model dying mid-stream ends the stream with an error the client raises', guarded(async () => {
    const parts = [];
    await assert.rejects(async () => {
      for await (const part of await ollama().chat({ model: 'crashy', messages: MESSAGES, stream: true, options: { num_predict: 10 } }))
        parts.push(part);
    }, (e) => /crashy/.test(e.message));
    assert.ok(parts.length >= 1 && parts.every((p) => p.done === false), JSON.stringify(parts));
  }));

  test('auth: the same keys as the OpenAI routes, and a key sees only its models', guarded(async () => {
    await assert.rejects(ollama(null).list(), (e) => e.status_code === 401 && e.message.length > 0);
    const noKey = await post('/api/chat', { model: 'alpha', messages: MESSAGES }, null);
    assert.equal(noKey.status, 401);
    assert.equal(typeof noKey.json.error, 'string');
    await assert.rejects(ollama('sk-wrong-0123456789abcdef').chat({ model: 'alpha', messages: MESSAGES, stream: false }), (e) => e.status_code === 401);
    const { models } = await ollama(ALPHA_ONLY).list();
    assert.deepEqual(models.map((m) => m.name), ['alpha']);
    await assert.rejects(ollama(ALPHA_ONLY).embed({ model: 'emb', input: 'x' }), (e) => e.status_code === 403 && typeof e.message === 'string');
    const ok = await ollama(ALPHA_ONLY).chat({ model: 'alpha', messages: MESSAGES, stream: false, options: { num_predict: 2 } });
    assert.equal(ok.eval_count, 2);
  }));
});
