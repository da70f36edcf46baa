// OpenAI-compatible API through the gateway in front of fake-llama-server, driven by the
// official `openai` SDK: the shared suite (lib/openai_suite.mjs) plus what only the fake's
// knobs can show.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { FAKE, deadline, fakeCmd, freePort, rawRequest, readEvents, waitFor, withGateway } from './lib/harness.mjs';
import { MESSAGES, registerOpenAISuite } from './lib/openai_suite.mjs';

registerOpenAISuite({
  name: 'fake',
  chatArgv: (dir, id) => [FAKE, '--port', '${PORT}', '--model', id, '--events-file', path.join(dir, `${id}.events`)],
  embedArgv: (dir, id) => [FAKE, '--port', '${PORT}', '--model', id, '--embedding-dim', '8', '--events-file', path.join(dir, `${id}.events`)],
  comm: 'fake-llama-serv',
  embedDim: 8,
  sampling: (seed) => ({ seed }),
  countTokens: 'chunks',
  events: (dir, id) => readEvents(path.join(dir, `${id}.events`)),
  async startDirect(t) {
    const port = await freePort();
    const direct = spawn(FAKE, ['--port', String(port), '--model', 'alpha'], { stdio: 'ignore' });
    t.after(() => direct.kill('SIGKILL'));
    await waitFor(async () => (await rawRequest({ port, path: '/health', timeoutMs: 500 })).status === 200, {
      timeoutMs: deadline(5000),
      message: 'direct fake /health',
    });
    return port;
  },
});

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

test('a model still answering 503 "Loading model" shows state "starting"', (t) =>
  withGateway(t, { models: { lazy: { cmd: fakeCmd('lazy', ['--startup-ms', 1500]) } } }, async (gw) => {
    const client = gw.client();
    const pending = client.chat.completions.create({ model: 'lazy', messages: MESSAGES, max_tokens: 2 });
    pending.catch(() => {});
    const state = async () => (await client.models.list()).data.find((m) => m.id === 'lazy').state;
    await waitFor(async () => (await state()) === 'starting', { timeoutMs: deadline(1400), message: 'state "starting"' });
    const res = await pending;
    assert.ok(res.choices[0].message.content.length > 0);
    assert.equal(await state(), 'ready');
  }));
