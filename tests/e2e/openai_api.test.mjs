// OpenAI-compatible API through the gateway, driven by the official `openai` SDK.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  FAKE,
  deadline,
  fakeCmd,
  freePort,
  procStat,
  rawRequest,
  rawStream,
  readEvents,
  waitFor,
  withGateway,
} from './lib/harness.mjs';

const STATES = ['unloaded', 'starting', 'ready', 'stopping', 'failed'];
const MESSAGES = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Name three colours of the rainbow.' },
];

/** Config used by every test here: alpha (multi-line cmd, aliases), emb, and an unlisted one. */
function apiModels(dir) {
  return {
    alpha: {
      cmd: [
        `${FAKE} --port \${PORT}`,
        '# comment lines are ignored',
        `--model alpha --events-file ${path.join(dir, 'alpha.events')}`,
      ].join('\n'),
      aliases: ['a1', 'gpt-alpha'],
    },
    emb: { cmd: fakeCmd('emb', ['--embedding-dim', 8, '--events-file', path.join(dir, 'emb.events')]) },
    hidden: { cmd: fakeCmd('hidden'), unlisted: true },
  };
}

/** Starts a gateway with apiModels in a fresh temp dir (the events files live in it). */
async function api(t, body) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ig-e2e-ev-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return withGateway(t, { models: apiModels(dir) }, (gw) => body(gw, gw.client(), dir));
}

async function collectChat(stream) {
  let content = '';
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    content += chunk.choices?.[0]?.delta?.content ?? '';
  }
  return { content, chunks };
}

test('chat completion (non-stream) returns an assistant message', (t) =>
  api(t, async (gw, client) => {
    const res = await client.chat.completions.create({ model: 'alpha', messages: MESSAGES, max_tokens: 8, seed: 7 });
    assert.equal(res.object, 'chat.completion');
    assert.equal(typeof res.id, 'string');
    assert.equal(res.choices.length, 1);
    assert.equal(res.choices[0].index, 0);
    assert.equal(res.choices[0].message.role, 'assistant');
    assert.equal(typeof res.choices[0].message.content, 'string');
    assert.ok(res.choices[0].message.content.length > 0, 'content is not empty');
    assert.equal(typeof res.choices[0].finish_reason, 'string');
    assert.equal(res.usage.completion_tokens, 8, 'max_tokens tokens generated');
    assert.equal(typeof res.usage.prompt_tokens, 'number');

    // Deterministic: the same request + seed gives the same text.
    const again = await client.chat.completions.create({ model: 'alpha', messages: MESSAGES, max_tokens: 8, seed: 7 });
    assert.equal(again.choices[0].message.content, res.choices[0].message.content);
  }));

test('chat completion stream reassembles to the non-stream content', (t) =>
  api(t, async (gw, client) => {
    const req = { model: 'alpha', messages: MESSAGES, max_tokens: 12, seed: 42 };
    const plain = await client.chat.completions.create(req);
    const stream = await client.chat.completions.create({ ...req, stream: true });
    const { content, chunks } = await collectChat(stream);
    assert.ok(chunks.length >= 2, `several chunks, got ${chunks.length}`);
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(content, plain.choices[0].message.content);
    const finish = chunks.map((c) => c.choices?.[0]?.finish_reason).filter(Boolean);
    assert.equal(finish.length, 1, 'exactly one chunk carries finish_reason');
    assert.equal(finish[0], plain.choices[0].finish_reason);
  }));

test('stream_options.include_usage adds a usage chunk', (t) =>
  api(t, async (gw, client) => {
    const stream = await client.chat.completions.create({
      model: 'alpha',
      messages: MESSAGES,
      max_tokens: 6,
      seed: 1,
      stream: true,
      stream_options: { include_usage: true },
    });
    const { chunks } = await collectChat(stream);
    const withUsage = chunks.filter((c) => c.usage);
    assert.equal(withUsage.length, 1, 'exactly one chunk has usage');
    const u = withUsage[0].usage;
    assert.equal(u.completion_tokens, 6);
    assert.equal(typeof u.prompt_tokens, 'number');
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    assert.equal(chunks.at(-1), withUsage[0], 'the usage chunk is the last one');
    assert.deepEqual(withUsage[0].choices, [], 'the usage chunk has no choices');
  }));

test('chat stream is passed through as SSE ending with [DONE]', (t) =>
  api(t, async (gw) => {
    const r = await rawStream({
      port: gw.port,
      path: '/v1/chat/completions',
      body: { model: 'alpha', messages: MESSAGES, max_tokens: 5, seed: 3, stream: true },
    });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/event-stream/);
    assert.equal(r.events.at(-1), '[DONE]');
    for (const e of r.events.slice(0, -1)) JSON.parse(e); // every other event is JSON
  }));

test('text completions, non-stream and stream, agree', (t) =>
  api(t, async (gw, client) => {
    const req = { model: 'alpha', prompt: 'Once upon a time', max_tokens: 10, seed: 5 };
    const plain = await client.completions.create(req);
    assert.equal(plain.object, 'text_completion');
    assert.equal(plain.choices.length, 1);
    assert.equal(typeof plain.choices[0].text, 'string');
    assert.ok(plain.choices[0].text.length > 0);
    assert.equal(plain.usage.completion_tokens, 10);

    const stream = await client.completions.create({ ...req, stream: true });
    let text = '';
    let n = 0;
    for await (const chunk of stream) {
      n++;
      text += chunk.choices?.[0]?.text ?? '';
    }
    assert.ok(n >= 2, `several chunks, got ${n}`);
    assert.equal(text, plain.choices[0].text);
  }));

test('embeddings: dimensions and one vector per input', (t) =>
  api(t, async (gw, client) => {
    const one = await client.embeddings.create({ model: 'emb', input: 'hello world', encoding_format: 'float' });
    assert.equal(one.object, 'list');
    assert.equal(one.data.length, 1);
    assert.equal(one.data[0].object, 'embedding');
    assert.equal(one.data[0].embedding.length, 8);
    assert.ok(one.data[0].embedding.every((x) => typeof x === 'number' && Number.isFinite(x)));

    const many = await client.embeddings.create({ model: 'emb', input: ['a', 'bb', 'ccc'], encoding_format: 'float' });
    assert.equal(many.data.length, 3);
    assert.deepEqual(many.data.map((d) => d.index).sort(), [0, 1, 2]);
    for (const d of many.data) assert.equal(d.embedding.length, 8);
    assert.notDeepEqual(many.data[0].embedding, many.data[2].embedding, 'different inputs, different vectors');

    // Deterministic for the same input.
    const again = await client.embeddings.create({ model: 'emb', input: 'hello world', encoding_format: 'float' });
    assert.deepEqual(again.data[0].embedding, one.data[0].embedding);
  }));

test('models.list: shape, aliases, state, unlisted hidden', (t) =>
  api(t, async (gw, client) => {
    const page = await client.models.list();
    const models = page.data;
    const ids = models.map((m) => m.id).sort();
    assert.deepEqual(ids, ['alpha', 'emb'], 'unlisted "hidden" is absent, aliases are not separate entries');
    for (const m of models) {
      assert.equal(m.object, 'model');
      assert.equal(m.owned_by, 'infergate');
      assert.equal(typeof m.created, 'number');
      assert.ok(Array.isArray(m.aliases), `${m.id}.aliases is an array`);
      assert.ok(STATES.includes(m.state), `${m.id}.state ${m.state} is one of ${STATES}`);
      assert.equal(m.state, 'unloaded', 'nothing runs before the first request');
    }
    const alpha = models.find((m) => m.id === 'alpha');
    assert.deepEqual([...alpha.aliases].sort(), ['a1', 'gpt-alpha']);
    assert.deepEqual(models.find((m) => m.id === 'emb').aliases, []);

    // Raw shape too.
    const raw = await gw.json('/v1/models');
    assert.equal(raw.object, 'list');
    assert.ok(Array.isArray(raw.data));
  }));

test('unlisted model is still routable by id', (t) =>
  api(t, async (gw, client) => {
    const res = await client.chat.completions.create({ model: 'hidden', messages: MESSAGES, max_tokens: 3 });
    assert.equal(res.choices[0].message.role, 'assistant');
    const ids = (await client.models.list()).data.map((m) => m.id);
    assert.ok(!ids.includes('hidden'), 'still not listed after it ran');
  }));

test('a request by alias starts the model on demand', (t) =>
  api(t, async (gw, client, dir) => {
    assert.deepEqual((await gw.json('/running')).running, [], 'nothing running at start');
    assert.deepEqual(gw.children(), [], 'no child process before the first request');
    assert.deepEqual(readEvents(path.join(dir, 'alpha.events')), [], 'alpha never started');

    const res = await client.chat.completions.create({ model: 'gpt-alpha', messages: MESSAGES, max_tokens: 4, seed: 9 });
    assert.ok(res.choices[0].message.content.length > 0);
    const byId = await client.chat.completions.create({ model: 'alpha', messages: MESSAGES, max_tokens: 4, seed: 9 });
    assert.equal(byId.choices[0].message.content, res.choices[0].message.content, 'alias and id reach the same model');
    const byA1 = await client.chat.completions.create({ model: 'a1', messages: MESSAGES, max_tokens: 4, seed: 9 });
    assert.equal(byA1.choices[0].message.content, res.choices[0].message.content);

    const alpha = (await client.models.list()).data.find((m) => m.id === 'alpha');
    assert.equal(alpha.state, 'ready');
    const running = (await gw.json('/running')).running;
    assert.equal(running.length, 1, JSON.stringify(running));
    assert.equal(running[0].model, 'alpha');
    assert.equal(running[0].state, 'ready');

    // Exactly one process was started for the three requests, and it is the fake.
    const kids = gw.children();
    assert.equal(kids.length, 1, `one child, got ${kids}`);
    assert.equal(procStat(kids[0])?.comm, 'fake-llama-serv'); // comm is truncated to 15 chars
    assert.ok(readEvents(path.join(dir, 'alpha.events')).length > 0, 'alpha received the requests');
  }));

test('SDK with a default (base64) encoding_format gets float vectors back', (t) =>
  api(t, async (gw, client) => {
    // The openai SDK asks for base64 when no encoding_format is given and decodes it.
    const r = await client.embeddings.create({ model: 'emb', input: 'hello world' });
    assert.equal(r.data[0].embedding.length, 8);
    const f = await client.embeddings.create({ model: 'emb', input: 'hello world', encoding_format: 'float' });
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(r.data[0].embedding[i] - f.data[0].embedding[i]) < 1e-6);
  }));

test('streams are forwarded token by token, not buffered', (t) =>
  withGateway(t, { models: { slow: { cmd: fakeCmd('slow', ['--token-us', 30000]) } } }, async (gw) => {
    const client = gw.client();
    // Start the model first so the timing below is about streaming only.
    await client.chat.completions.create({ model: 'slow', messages: MESSAGES, max_tokens: 1 });
    const stream = await client.chat.completions.create({ model: 'slow', messages: MESSAGES, max_tokens: 20, stream: true });
    const arrivals = [];
    for await (const chunk of stream) if (chunk.choices?.[0]?.delta?.content) arrivals.push(Date.now());
    assert.equal(arrivals.length, 20);
    // 20 tokens 30 ms apart: ~570 ms between the first and the last if passed through as
    // they come; a buffering proxy delivers them all at once.
    const spread = arrivals.at(-1) - arrivals[0];
    assert.ok(spread >= 300, `content chunks spread over ${spread} ms, expected >= 300`);
    const distinct = new Set(arrivals.map((a) => Math.floor(a / 15))).size;
    assert.ok(distinct >= 8, `chunks arrived at ${distinct} distinct moments`);
  }));

test('a loading model shows state "starting" and does not block the gateway', (t) =>
  withGateway(t, { models: { lazy: { cmd: fakeCmd('lazy', ['--startup-ms', 1500]) } } }, async (gw) => {
    const client = gw.client();
    const pending = client.chat.completions.create({ model: 'lazy', messages: MESSAGES, max_tokens: 2 });
    pending.catch(() => {});
    const state = async () => (await client.models.list()).data.find((m) => m.id === 'lazy').state;
    await waitFor(async () => (await state()) === 'starting', { timeoutMs: deadline(1400), message: 'state "starting"' });
    // While it loads, other endpoints answer at once.
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const r = await gw.request('/healthz');
      assert.equal(r.status, 200);
      assert.ok(Date.now() - t0 < deadline(300), `/healthz took ${Date.now() - t0} ms while a model loads`);
    }
    const nf = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'nope', messages: MESSAGES } });
    assert.equal(nf.status, 404);
    const res = await pending;
    assert.ok(res.choices[0].message.content.length > 0);
    assert.equal(await state(), 'ready');
  }));

/** Drops the fields that differ between two otherwise identical replies. */
function normalize(obj) {
  return JSON.parse(JSON.stringify(obj), (k, v) => (['id', 'created', 'timings'].includes(k) ? undefined : v));
}

test('responses are the upstream\'s, unchanged (compared with the fake called directly)', async (t) => {
  const port = await freePort();
  const direct = spawn(FAKE, ['--port', String(port), '--model', 'alpha'], { stdio: 'ignore' });
  t.after(() => direct.kill('SIGKILL'));
  await waitFor(async () => (await rawRequest({ port, path: '/health', timeoutMs: 500 })).status === 200, {
    timeoutMs: deadline(5000),
    message: 'direct fake /health',
  });
  await withGateway(t, { models: { alpha: { cmd: fakeCmd('alpha') } } }, async (gw) => {
    const body = { model: 'alpha', messages: MESSAGES, max_tokens: 7, seed: 11 };
    const a = await gw.request('/v1/chat/completions', { method: 'POST', body });
    const b = await rawRequest({ port, method: 'POST', path: '/v1/chat/completions', body });
    assert.equal(a.status, b.status);
    assert.equal(a.headers['content-type'], b.headers['content-type']);
    assert.deepEqual(normalize(a.json), normalize(b.json));
    // Same key order and formatting: the bytes match once the varying fields are blanked.
    const blank = (s) => s.replace(/"(id|created)":("[^"]*"|\d+)/g, '"$1":0').replace(/"timings":\{[^}]*\}/g, '"timings":{}');
    assert.equal(blank(a.text), blank(b.text));

    const sbody = { ...body, stream: true, stream_options: { include_usage: true } };
    const sa = await rawStream({ port: gw.port, path: '/v1/chat/completions', body: sbody });
    const sb = await rawStream({ port, path: '/v1/chat/completions', body: sbody });
    assert.equal(sa.status, 200);
    assert.equal(sa.events.length, sb.events.length, 'same number of SSE events');
    assert.equal(blank(sa.raw), blank(sb.raw), 'same SSE bytes');
  });
});
