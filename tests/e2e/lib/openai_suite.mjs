// The gateway's OpenAI API suite, independent of what runs behind it. A test file describes
// its backend (how to write a chat model's and an embedding model's command, what is
// comparable) and calls registerOpenAISuite(backend); openai_api.test.mjs runs it in front of
// fake-llama-server, openai_api_engine.test.mjs in front of infergate-engine.
//
// A backend is:
//   name             'fake' | 'engine' (test names get it as a suffix)
//   chatArgv(dir, id)  argv of a chat model server, with '${PORT}' for the port
//   embedArgv(dir, id) argv of an embedding model server
//   comm             /proc/PID/comm of the started server (15 characters at most)
//   embedDim         the embedding model's dimension
//   sampling(seed)   request fields that make a completion deterministic
//   countTokens      'chunks': every streamed content chunk is one token;
//                    'logprobs': chunks may carry several tokens, count logprobs.content entries
//   startDirect(t)   starts a server like chatArgv(…, 'alpha') outside the gateway; resolves its port
//   events(dir, id)  optional: what the upstream logged (fake's --events-file), or null
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { deadline, procStat, rawRequest, rawStream, tempDir, waitFor, withGateway } from './harness.mjs';

export const STATES = ['unloaded', 'starting', 'ready', 'stopping', 'failed'];
export const MESSAGES = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Name three colours of the rainbow.' },
];

/** ARGV as one `cmd` line: words quoted for the gateway's shell-like splitter where needed. */
export function cmdLine(argv) {
  return argv.map((p) => (/^[\w@%+=:,./${}-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** ARGV as a multi-line `cmd` with a comment line in the middle (llama-swap style). */
function multiLineCmd(argv) {
  const words = argv.map((p) => cmdLine([p]));
  return [words.slice(0, 3).join(' '), '# comment lines are ignored', words.slice(3).join(' ')].join('\n');
}

/**
 * ARGV run only once GATE exists (polled by a shell; gives up after 60 s): the gateway sees
 * the model "starting" for as long as the test wants, with no timing involved.
 */
export function gatedArgv(gate, argv) {
  const script = `i=0; while [ ! -e '${gate}' ]; do i=$((i+1)); [ $i -gt 3000 ] && exit 1; sleep 0.02; done; exec "$0" "$@"`;
  return ['/bin/sh', '-c', script, ...argv];
}

/** Reads an SDK stream: content, chunks, and the number of tokens streamed (see countTokens). */
async function collect(stream, field) {
  let content = '';
  let contentChunks = 0;
  let logprobTokens = 0;
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    const choice = chunk.choices?.[0];
    const piece = field === 'text' ? choice?.text : choice?.delta?.content;
    if (piece) {
      content += piece;
      contentChunks++;
    }
    logprobTokens += choice?.logprobs?.content?.length ?? 0;
  }
  return { content, chunks, contentChunks, logprobTokens };
}

/** Usage is self-consistent, and completion_tokens is MAX exactly when finish_reason is "length". */
function assertUsage(usage, finish, max) {
  assert.ok(usage, 'usage is present');
  assert.ok(Number.isInteger(usage.prompt_tokens) && usage.prompt_tokens > 0, `prompt_tokens ${usage.prompt_tokens}`);
  assert.ok(Number.isInteger(usage.completion_tokens), `completion_tokens ${usage.completion_tokens}`);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens, 'total = prompt + completion');
  if (finish === 'length') assert.equal(usage.completion_tokens, max, 'finish "length" means max_tokens were generated');
  else {
    assert.equal(finish, 'stop', `finish_reason ${finish}`);
    assert.ok(usage.completion_tokens < max, `finish "stop" before max_tokens: ${usage.completion_tokens} < ${max}`);
  }
}

function l2(v) {
  return Math.sqrt(v.reduce((s, x) => s + x * x, 0));
}

/** Drops the fields that differ between two otherwise identical replies. */
function normalize(obj) {
  return JSON.parse(JSON.stringify(obj), (k, v) => (['id', 'created', 'timings'].includes(k) ? undefined : v));
}

/** Blanks the same fields in raw JSON text, keeping everything else byte for byte. */
function blank(s) {
  return s.replace(/"(id|created)":("[^"]*"|\d+)/g, '"$1":0').replace(/"timings":\{[^}]*\}/g, '"timings":{}');
}

export function registerOpenAISuite(B) {
  const name = (s) => `${s} [${B.name}]`;
  const chat = (id, seed, max, extra = {}) => ({ model: id, messages: MESSAGES, max_tokens: max, ...B.sampling(seed), ...extra });

  /** Config: alpha (multi-line cmd, aliases), emb, and an unlisted one. */
  function apiModels(dir) {
    return {
      alpha: { cmd: multiLineCmd(B.chatArgv(dir, 'alpha')), aliases: ['a1', 'gpt-alpha'] },
      emb: { cmd: cmdLine(B.embedArgv(dir, 'emb')) },
      hidden: { cmd: cmdLine(B.chatArgv(dir, 'hidden')), unlisted: true },
    };
  }

  /** Starts a gateway with apiModels in a fresh temp dir (the fake's events files live in it). */
  async function api(t, body) {
    const dir = await tempDir(t, 'ig-e2e-oai-');
    return withGateway(t, { models: apiModels(dir) }, (gw) => body(gw, gw.client(), dir));
  }

  test(name('chat completion (non-stream) returns an assistant message'), (t) =>
    api(t, async (gw, client) => {
      const res = await client.chat.completions.create(chat('alpha', 7, 8));
      assert.equal(res.object, 'chat.completion');
      assert.equal(typeof res.id, 'string');
      assert.equal(res.choices.length, 1);
      assert.equal(res.choices[0].index, 0);
      assert.equal(res.choices[0].message.role, 'assistant');
      assert.equal(typeof res.choices[0].message.content, 'string');
      assert.ok(res.choices[0].message.content.length > 0, 'content is not empty');
      assertUsage(res.usage, res.choices[0].finish_reason, 8);

      // Deterministic: the same request gives the same text and usage.
      const again = await client.chat.completions.create(chat('alpha', 7, 8));
      assert.equal(again.choices[0].message.content, res.choices[0].message.content);
      assert.deepEqual(again.usage, res.usage);
    }));

  test(name('chat completion stream reassembles to the non-stream content, usage counts the streamed tokens'), (t) =>
    api(t, async (gw, client) => {
      const extra = B.countTokens === 'logprobs' ? { logprobs: true } : {};
      const req = chat('alpha', 42, 12, extra);
      const plain = await client.chat.completions.create(req);
      const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
      const { content, chunks, contentChunks, logprobTokens } = await collect(stream, 'content');
      assert.ok(chunks.length >= 2, `several chunks, got ${chunks.length}`);
      for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(content, plain.choices[0].message.content);
      const finish = chunks.map((c) => c.choices?.[0]?.finish_reason).filter(Boolean);
      assert.equal(finish.length, 1, 'exactly one chunk carries finish_reason');
      assert.equal(finish[0], plain.choices[0].finish_reason);

      const usage = chunks.at(-1).usage;
      assertUsage(usage, finish[0], 12);
      assert.deepEqual(usage, plain.usage, 'streamed usage equals non-streamed usage');
      const streamed = B.countTokens === 'logprobs' ? logprobTokens : contentChunks;
      assert.equal(usage.completion_tokens, streamed, `completion_tokens = tokens streamed (${B.countTokens})`);
      if (B.countTokens === 'logprobs') {
        assert.equal(plain.choices[0].logprobs.content.length, plain.usage.completion_tokens, 'one logprob per token');
      }
    }));

  test(name('stream_options.include_usage adds a usage chunk'), (t) =>
    api(t, async (gw, client) => {
      const stream = await client.chat.completions.create({ ...chat('alpha', 1, 6), stream: true, stream_options: { include_usage: true } });
      const { chunks } = await collect(stream, 'content');
      const withUsage = chunks.filter((c) => c.usage);
      assert.equal(withUsage.length, 1, 'exactly one chunk has usage');
      const finish = chunks.map((c) => c.choices?.[0]?.finish_reason).filter(Boolean)[0];
      assertUsage(withUsage[0].usage, finish, 6);
      assert.equal(chunks.at(-1), withUsage[0], 'the usage chunk is the last one');
      assert.deepEqual(withUsage[0].choices, [], 'the usage chunk has no choices');

      // Without stream_options no chunk carries usage.
      const plain = await collect(await client.chat.completions.create({ ...chat('alpha', 1, 6), stream: true }), 'content');
      assert.equal(plain.chunks.filter((c) => c.usage).length, 0, 'no usage chunk unless asked for');
    }));

  test(name('chat stream is passed through as SSE ending with [DONE]'), (t) =>
    api(t, async (gw) => {
      const r = await rawStream({ port: gw.port, path: '/v1/chat/completions', body: { ...chat('alpha', 3, 5), stream: true } });
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^text\/event-stream/);
      assert.equal(r.events.at(-1), '[DONE]');
      assert.equal(r.events.filter((e) => e === '[DONE]').length, 1, 'one [DONE]');
      for (const e of r.events.slice(0, -1)) JSON.parse(e); // every other event is JSON
      assert.equal(r.rest.trim(), '', 'nothing after the last event');
    }));

  test(name('text completions, non-stream and stream, agree'), (t) =>
    api(t, async (gw, client) => {
      const req = { model: 'alpha', prompt: 'Once upon a time', max_tokens: 10, ...B.sampling(5) };
      const plain = await client.completions.create(req);
      assert.equal(plain.object, 'text_completion');
      assert.equal(plain.choices.length, 1);
      assert.equal(typeof plain.choices[0].text, 'string');
      assert.ok(plain.choices[0].text.length > 0);
      assertUsage(plain.usage, plain.choices[0].finish_reason, 10);

      const stream = await client.completions.create({ ...req, stream: true });
      const { content, chunks } = await collect(stream, 'text');
      assert.ok(chunks.length >= 2, `several chunks, got ${chunks.length}`);
      for (const c of chunks) assert.equal(c.object, 'text_completion');
      assert.equal(content, plain.choices[0].text);
      const finish = chunks.map((c) => c.choices?.[0]?.finish_reason).filter(Boolean);
      assert.deepEqual(finish, [plain.choices[0].finish_reason]);
    }));

  test(name('embeddings: dimensions, L2-normalised, one vector per input'), (t) =>
    api(t, async (gw, client) => {
      const one = await client.embeddings.create({ model: 'emb', input: 'hello world', encoding_format: 'float' });
      assert.equal(one.object, 'list');
      assert.equal(one.data.length, 1);
      assert.equal(one.data[0].object, 'embedding');
      assert.equal(one.data[0].index, 0);
      assert.equal(one.data[0].embedding.length, B.embedDim);
      assert.ok(one.data[0].embedding.every((x) => typeof x === 'number' && Number.isFinite(x)));
      assert.ok(Math.abs(l2(one.data[0].embedding) - 1) < 1e-3, `norm ${l2(one.data[0].embedding)}`);
      assert.ok(one.usage.prompt_tokens > 0, 'usage.prompt_tokens');

      const many = await client.embeddings.create({ model: 'emb', input: ['a', 'bb', 'ccc'], encoding_format: 'float' });
      assert.equal(many.data.length, 3);
      assert.deepEqual(many.data.map((d) => d.index).sort(), [0, 1, 2]);
      for (const d of many.data) {
        assert.equal(d.embedding.length, B.embedDim);
        assert.ok(Math.abs(l2(d.embedding) - 1) < 1e-3, `norm ${l2(d.embedding)}`);
      }
      assert.notDeepEqual(many.data[0].embedding, many.data[2].embedding, 'different inputs, different vectors');

      // Deterministic for the same input.
      const again = await client.embeddings.create({ model: 'emb', input: 'hello world', encoding_format: 'float' });
      assert.deepEqual(again.data[0].embedding, one.data[0].embedding);
    }));

  test(name('SDK with a default (base64) encoding_format gets float vectors back'), (t) =>
    api(t, async (gw, client) => {
      // The openai SDK asks for base64 when no encoding_format is given and decodes it.
      const r = await client.embeddings.create({ model: 'emb', input: 'hello world' });
      assert.equal(r.data[0].embedding.length, B.embedDim);
      const f = await client.embeddings.create({ model: 'emb', input: 'hello world', encoding_format: 'float' });
      for (let i = 0; i < B.embedDim; i++) assert.ok(Math.abs(r.data[0].embedding[i] - f.data[0].embedding[i]) < 1e-6);
      const raw = await gw.request('/v1/embeddings', { method: 'POST', body: { model: 'emb', input: 'hello world', encoding_format: 'base64' } });
      assert.equal(raw.status, 200);
      const b64 = raw.json.data[0].embedding;
      assert.equal(typeof b64, 'string', 'base64 on the wire');
      const bytes = Buffer.from(b64, 'base64');
      assert.equal(bytes.length, 4 * B.embedDim);
      for (let i = 0; i < B.embedDim; i++) assert.ok(Math.abs(bytes.readFloatLE(4 * i) - f.data[0].embedding[i]) < 1e-6, 'little-endian float32');
    }));

  test(name('models.list: shape, aliases, state, unlisted hidden'), (t) =>
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

  test(name('unlisted model is still routable by id'), (t) =>
    api(t, async (gw, client) => {
      const res = await client.chat.completions.create(chat('hidden', 2, 3));
      assert.equal(res.choices[0].message.role, 'assistant');
      assertUsage(res.usage, res.choices[0].finish_reason, 3);
      const ids = (await client.models.list()).data.map((m) => m.id);
      assert.ok(!ids.includes('hidden'), 'still not listed after it ran');
    }));

  test(name('a request by alias starts the model on demand'), (t) =>
    api(t, async (gw, client, dir) => {
      assert.deepEqual((await gw.json('/running')).running, [], 'nothing running at start');
      assert.deepEqual(gw.children(), [], 'no child process before the first request');
      if (B.events) assert.deepEqual(B.events(dir, 'alpha'), [], 'alpha never started');

      const res = await client.chat.completions.create(chat('gpt-alpha', 9, 4));
      assert.ok(res.choices[0].message.content.length > 0);
      const byId = await client.chat.completions.create(chat('alpha', 9, 4));
      assert.equal(byId.choices[0].message.content, res.choices[0].message.content, 'alias and id reach the same model');
      const byA1 = await client.chat.completions.create(chat('a1', 9, 4));
      assert.equal(byA1.choices[0].message.content, res.choices[0].message.content);

      const alpha = (await client.models.list()).data.find((m) => m.id === 'alpha');
      assert.equal(alpha.state, 'ready');
      const running = (await gw.json('/running')).running;
      assert.equal(running.length, 1, JSON.stringify(running));
      assert.equal(running[0].model, 'alpha');
      assert.equal(running[0].state, 'ready');

      // Exactly one process was started for the three requests, and it is the backend's.
      const kids = gw.children();
      assert.equal(kids.length, 1, `one child, got ${kids}`);
      assert.equal(procStat(kids[0])?.comm, B.comm); // comm is truncated to 15 chars
      if (B.events) assert.ok(B.events(dir, 'alpha').length > 0, 'alpha received the requests');
    }));

  test(name('a loading model shows state "starting" and does not block the gateway'), async (t) => {
    const dir = await tempDir(t, 'ig-e2e-oai-');
    const gate = path.join(dir, 'gate');
    const models = { lazy: { cmd: cmdLine(gatedArgv(gate, B.chatArgv(dir, 'lazy'))) } };
    await withGateway(t, { models }, async (gw) => {
      const client = gw.client();
      const pending = client.chat.completions.create(chat('lazy', 4, 2));
      pending.catch(() => {});
      const state = async () => (await client.models.list()).data.find((m) => m.id === 'lazy').state;
      await waitFor(async () => (await state()) === 'starting', { timeoutMs: deadline(5000), message: 'state "starting"' });
      // While it loads, other endpoints answer at once.
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const r = await gw.request('/healthz');
        assert.equal(r.status, 200);
        assert.ok(Date.now() - t0 < deadline(300), `/healthz took ${Date.now() - t0} ms while a model loads`);
      }
      const nf = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'nope', messages: MESSAGES } });
      assert.equal(nf.status, 404);
      assert.equal(await state(), 'starting', 'still starting while the gate is closed');
      await fsp.writeFile(gate, '');
      const res = await pending;
      assert.ok(res.choices[0].message.content.length > 0);
      assert.equal(await state(), 'ready');
    });
  });

  test(name("responses are the upstream's, unchanged (compared with the upstream called directly)"), async (t) => {
    const dir = await tempDir(t, 'ig-e2e-oai-');
    const port = await B.startDirect(t, dir);
    await withGateway(t, { models: { alpha: { cmd: cmdLine(B.chatArgv(dir, 'alpha')) } } }, async (gw) => {
      const body = chat('alpha', 11, 7);
      const a = await gw.request('/v1/chat/completions', { method: 'POST', body });
      const b = await rawRequest({ port, method: 'POST', path: '/v1/chat/completions', body });
      assert.equal(a.status, 200, a.text);
      assert.equal(a.status, b.status);
      assert.equal(a.headers['content-type'], b.headers['content-type']);
      assert.deepEqual(normalize(a.json), normalize(b.json));
      // Same key order and formatting: the bytes match once the varying fields are blanked.
      assert.equal(blank(a.text), blank(b.text));

      const sbody = { ...body, stream: true, stream_options: { include_usage: true } };
      const sa = await rawStream({ port: gw.port, path: '/v1/chat/completions', body: sbody });
      const sb = await rawStream({ port, path: '/v1/chat/completions', body: sbody });
      assert.equal(sa.status, 200);
      assert.equal(sa.headers['content-type'], sb.headers['content-type']);
      if (B.countTokens === 'chunks') {
        assert.equal(sa.events.length, sb.events.length, 'same number of SSE events');
        assert.equal(blank(sa.raw), blank(sb.raw), 'same SSE bytes');
      } else {
        // How many tokens share an SSE event depends on timing; the rest must match.
        const parts = (s) => {
          const ev = s.events.slice(0, -1).map((e) => normalize(JSON.parse(e)));
          const text = ev.map((e) => e.choices?.[0]?.delta?.content ?? '').join('');
          return { text, first: ev[0], last2: ev.slice(-2), done: s.events.at(-1) };
        };
        assert.deepEqual(parts(sa), parts(sb));
        assert.equal(parts(sa).text, a.json.choices[0].message.content, 'streamed text = non-streamed text');
      }
    });
  });
}
