// Error responses: OpenAI's JSON shape, the right status, and the SDK's matching error class.
// One gateway serves the whole file, so the last test also proves no error left it stuck.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { ENGINE } from './lib/engine.mjs';
import {
  assertErrorShape,
  attachOutput,
  guardWith,
  deadline,
  fakeCmd,
  procStat,
  startGateway,
  suiteScope,
  tempDir,
  waitFor,
  withGateway,
} from './lib/harness.mjs';

const MESSAGES = [{ role: 'user', content: 'hi' }];

describe('errors', () => {
  const scope = suiteScope();
  let gw;
  let client;

  before(async () => {
    const dir = await tempDir(scope.t);
    const notModel = path.join(dir, 'notes.gguf');
    await fsp.writeFile(notModel, 'this is not a model\n');
    gw = await startGateway(scope.t, {
      models: {
        alpha: { cmd: fakeCmd('alpha'), aliases: ['a1'] },
        // Exits at once: an unknown flag makes fake-llama-server print usage and exit 2.
        broken: { cmd: fakeCmd('broken', ['--no-such-flag']) },
        // The real engine on a file that is not GGUF: it exits with one clear line.
        'bad-file': { cmd: `${ENGINE} -m ${notModel} --port \${PORT}` },
      },
    });
    client = gw.client();
  });
  after(scope.cleanup);

  const guarded = guardWith(() => gw); // failures carry the gateway's output

  /** Asserts PROMISE rejects with an SDK APIError of class CLS and STATUS; returns it. */
  async function sdkRejects(promise, cls, status) {
    let err;
    try {
      await promise;
    } catch (e) {
      err = e;
    }
    assert.ok(err, `expected the SDK to throw ${cls.name}`);
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, status);
    assert.equal(typeof err.error?.message, 'string', `SDK parsed the error body: ${JSON.stringify(err.error)}`);
    return err;
  }

  test('unknown model -> 404 model_not_found', guarded(async () => {
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'no-such-model', messages: MESSAGES } });
    const e = assertErrorShape(assert, r, 404);
    assert.equal(e.code, 'model_not_found');
    const se = await sdkRejects(client.chat.completions.create({ model: 'no-such-model', messages: MESSAGES }), OpenAI.NotFoundError, 404);
    assert.equal(se.code, 'model_not_found');
    // Also for the other inference endpoints.
    const c = await gw.request('/v1/completions', { method: 'POST', body: { model: 'nope', prompt: 'x' } });
    assert.equal(assertErrorShape(assert, c, 404).code, 'model_not_found');
    const em = await gw.request('/v1/embeddings', { method: 'POST', body: { model: 'nope', input: 'x' } });
    assert.equal(assertErrorShape(assert, em, 404).code, 'model_not_found');
    assert.deepEqual(gw.children(), [], 'an unknown model starts nothing');
  }));

  test('missing model field -> 400', guarded(async () => {
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { messages: MESSAGES } });
    assertErrorShape(assert, r, 400);
    await sdkRejects(client.chat.completions.create({ messages: MESSAGES }), OpenAI.BadRequestError, 400);
  }));

  test('body that is not JSON -> 400', guarded(async () => {
    const bad = '{"model": "alpha", "messages": [';
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: bad });
    assertErrorShape(assert, r, 400);
    await sdkRejects(
      client.post('/chat/completions', { body: bad, headers: { 'content-type': 'application/json' } }),
      OpenAI.BadRequestError,
      400,
    );
    // JSON but not an object.
    const arr = await gw.request('/v1/chat/completions', { method: 'POST', body: '[1,2,3]' });
    assertErrorShape(assert, arr, 400);
  }));

  test('body of 17 MiB -> 413', guarded(async () => {
    const big = JSON.stringify({ model: 'alpha', messages: [{ role: 'user', content: 'x'.repeat(17 * 1024 * 1024) }] });
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: big });
    assertErrorShape(assert, r, 413);
    const se = await sdkRejects(
      client.post('/chat/completions', { body: big, headers: { 'content-type': 'application/json' } }),
      OpenAI.APIError,
      413,
    );
    assert.ok(!(se instanceof OpenAI.APIConnectionError), 'the SDK got the 413 answer, not a reset connection');
    assert.deepEqual(gw.children(), [], 'a rejected body starts no model');
  }));

  test('wrong method -> 405', guarded(async () => {
    const r = await gw.request('/v1/chat/completions', { method: 'GET' });
    assertErrorShape(assert, r, 405);
    assert.match(String(r.headers.allow ?? ''), /POST/, 'Allow header names POST');
    await sdkRejects(client.get('/chat/completions'), OpenAI.APIError, 405);
  }));

  test('unknown path -> 404', guarded(async () => {
    const r = await gw.request('/v1/no/such/path', { method: 'GET' });
    assertErrorShape(assert, r, 404);
    const p = await gw.request('/definitely-not-here', { method: 'POST', body: { model: 'alpha' } });
    assertErrorShape(assert, p, 404);
    await sdkRejects(client.get('/no/such/path'), OpenAI.NotFoundError, 404);
  }));

  test('a model that fails to start -> 502 with the reason, then retried on the next request', guarded(async () => {
    const t0 = Date.now();
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'broken', messages: MESSAGES } });
    const e = assertErrorShape(assert, r, 502);
    assert.ok(Date.now() - t0 < deadline(5000), 'the failure is reported as soon as the process exits');
    assert.match(e.message, /no-such-flag|exit/i, `the message says why: ${e.message}`);
    await sdkRejects(client.chat.completions.create({ model: 'broken', messages: MESSAGES }), OpenAI.InternalServerError, 502);
    const starts = gw.output().match(/model broken: started pid/g) ?? [];
    assert.equal(starts.length, 2, 'each request tried to start it again (a failure is not cached)');
    const m = (await client.models.list()).data.find((x) => x.id === 'broken');
    assert.equal(m.state, 'failed');
    await waitFor(() => gw.children().every((p) => procStat(p)?.state !== 'Z'), { timeoutMs: deadline(3000), message: 'no zombie' });
  }));

  test('an engine that cannot load its model: the client that triggered the load gets the engine\'s reason', guarded(async () => {
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'bad-file', messages: MESSAGES } });
    const e = assertErrorShape(assert, r, 502);
    assert.match(e.message, /cannot load model .*notes\.gguf: not a GGUF file/, e.message);
    const m = (await client.models.list()).data.find((x) => x.id === 'bad-file');
    assert.equal(m.state, 'failed');
  }));

  test('after all the errors the gateway still serves a normal request', guarded(async () => {
    const res = await client.chat.completions.create({ model: 'a1', messages: MESSAGES, max_tokens: 4 });
    assert.equal(res.choices[0].message.role, 'assistant');
    assert.ok(res.choices[0].message.content.length > 0);
    const h = await gw.request('/healthz');
    assert.equal(h.status, 200);
  }));
});

test('a full wait queue -> 503 with Retry-After', async (t) => {
  const models = { lazy: { cmd: fakeCmd('lazy', ['--startup-ms', 1500]) } };
  await withGateway(t, { models, extra: { limits: { queue_length: 1 } } }, async (gw) => {
    const body = { model: 'lazy', messages: MESSAGES, max_tokens: 2 };
    const first = gw.request('/v1/chat/completions', { method: 'POST', body });
    await waitFor(async () => (await gw.json('/running')).running.some((m) => m.model === 'lazy'), {
      timeoutMs: deadline(1000),
      message: 'lazy to be starting',
    });
    const second = await gw.request('/v1/chat/completions', { method: 'POST', body });
    const e = assertErrorShape(assert, second, 503);
    assert.match(String(second.headers['retry-after'] ?? ''), /^\d+$/, 'Retry-After in seconds');
    assert.equal(typeof e.code, 'string');
    const sdkErr = await gw.client().chat.completions.create(body).catch((x) => x);
    assert.ok(sdkErr instanceof OpenAI.InternalServerError, `SDK raises InternalServerError, got ${sdkErr?.constructor?.name}`);
    assert.equal(sdkErr.status, 503);
    assert.equal((await first).status, 200, 'the queued request is served');
  });
});
