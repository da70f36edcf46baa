// A model's plain URL backends (`backends:`): several OpenAI-compatible servers behind one
// model id, routed with the gateway's strategy, each with a circuit breaker; a request that
// fails on one before any byte reached the client is retried on another. Three
// fake-llama-server processes started by this file are the backends; the openai SDK is the
// client.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import OpenAI from 'openai';
import { FAKE, deadline, freePort, rawRequest, readEvents, tempDir, waitFor, withGateway } from './lib/harness.mjs';

const MESSAGES = [{ role: 'user', content: 'hi' }];

/** Starts a fake-llama-server on a free port with FLAGS; killed by PID after the test. */
async function startBackend(t, dir, name, flags = []) {
  const port = await freePort();
  const events = path.join(dir, `${name}.events`);
  const child = spawn(FAKE, ['--port', String(port), '--model', 'fake', '--events-file', events, ...flags], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  const kill = async () => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {}
    await exited;
  };
  t.after(kill);
  await waitFor(async () => (await rawRequest({ port, path: '/health', timeoutMs: 500 })).status === 200, {
    timeoutMs: deadline(5000),
    message: `backend ${name} /health`,
  });
  return { url: `http://127.0.0.1:${port}`, events, kill };
}

/** Chat requests backend B received. */
const served = (b) => readEvents(b.events).filter((e) => e.event === 'request' && e.path === '/v1/chat/completions').length;

test('backends: requests spread over the servers, a dead one is skipped (retried, then tripped), the request log names each', async (t) => {
  const dir = await tempDir(t);
  const b = [await startBackend(t, dir, 'b1'), await startBackend(t, dir, 'b2'), await startBackend(t, dir, 'b3')];
  const models = { pool: { backends: b.map((x) => x.url), strategy: 'round-robin', checkEndpoint: 'none' } };
  await withGateway(t, { models }, async (gw) => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'none', maxRetries: 0 });
    const ask = () => client.chat.completions.create({ model: 'pool', messages: MESSAGES, max_tokens: 3 });

    // Round-robin over three equal servers: 30 requests, 10 each.
    for (let i = 0; i < 30; i++) assert.equal((await ask()).choices.length, 1);
    assert.deepEqual(b.map(served), [10, 10, 10]);

    // One server dies: every request still succeeds (retried on another before any byte),
    // and after three failures in a row it is out of routing (it gets no more attempts).
    await b[1].kill();
    for (let i = 0; i < 30; i++) assert.equal((await ask()).choices.length, 1, `request ${i}`);
    const after = b.map(served);
    assert.equal(after[0] + after[2], 20 + 30);
    // /workers shows each URL backend as routed: the dead one tripped after 3 failures.
    const { backends } = await gw.json('/workers');
    const dead = backends.find((x) => x.url === b[1].url);
    assert.deepEqual([dead.model, dead.tripped, dead.failures >= 3], ['pool', true, true], JSON.stringify(backends));
    assert.ok(backends.filter((x) => x.url !== b[1].url).every((x) => !x.tripped && x.in_flight === 0));

    // Streaming goes through the same routing.
    const stream = await client.chat.completions.create({ model: 'pool', messages: MESSAGES, max_tokens: 3, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text.trim().split(/\s+/).length, 3);

    // The request log names the backend of each request and why it was chosen.
    let list = [];
    await waitFor(async () => {
      list = (await gw.json('/admin/requests?model=pool&limit=100')).data;
      return list.length >= 61;
    }, { timeoutMs: deadline(10000), message: 'the 61 requests in the request log' });
    const logged = new Set(list.filter((r) => r.model === 'pool').map((r) => r.backend));
    assert.ok(logged.has(b[0].url) && logged.has(b[2].url), JSON.stringify([...logged]));
    assert.ok(list.some((r) => r.model === 'pool' && typeof r.route === 'string' && r.route.length > 0));
  });
});

test('backends: a config with cmd and backends, or a non-http backend, is refused', async (t) => {
  const dir = await tempDir(t);
  const { spawnSync } = await import('node:child_process');
  const fsp = await import('node:fs/promises');
  const bad = [
    ['both', 'models:\n  m:\n    cmd: sleep 10 ${PORT}\n    backends: [http://127.0.0.1:1]\n', /no cmd with them/],
    ['scheme', 'models:\n  m:\n    backends: [ftp://127.0.0.1:1]\n', /http:\/\/ or https:\/\//],
    ['strategy', 'models:\n  m:\n    backends: [http://127.0.0.1:1]\n    strategy: fastest\n', /strategy: least-loaded/],
  ];
  for (const [name, yaml, re] of bad) {
    const file = path.join(dir, `${name}.yaml`);
    await fsp.writeFile(file, yaml);
    const r = spawnSync(path.join(path.dirname(FAKE), 'infergate'), ['check', '-c', file], { encoding: 'utf8', timeout: deadline(10000) });
    assert.notEqual(r.status, 0, `${name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, re);
  }
});

test('backends: a backend answering 429 is left for another; with none other the client gets its 429 after 3 retries', async (t) => {
  const http = await import('node:http');
  let hits = 0;
  const limited = http.createServer((req, res) => {
    hits++;
    req.resume();
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' });
    res.end(JSON.stringify({ error: { message: 'rate limited', type: 'rate_limit_error', code: 'rate_limited' } }));
  });
  await new Promise((r) => limited.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => limited.close(r)));
  const limitedUrl = `http://127.0.0.1:${limited.address().port}`;
  const dir = await tempDir(t);
  const good = await startBackend(t, dir, 'good');
  const models = {
    solo: { backends: [limitedUrl], checkEndpoint: 'none' },
    pair: { backends: [limitedUrl, good.url], strategy: 'priority', checkEndpoint: 'none' },
  };
  await withGateway(t, { models }, async (gw) => {
    const r = await rawRequest({ port: gw.port, method: 'POST', path: '/v1/chat/completions', body: { model: 'solo', messages: MESSAGES, max_tokens: 3 } });
    assert.equal(r.status, 429, r.text);
    assert.ok(hits >= 1 && hits <= 4, `the limited backend got ${hits} attempts for one request`);
    hits = 0;
    // priority puts the limited one first: each request tries it once, then the good one.
    for (let i = 0; i < 5; i++) {
      const ok = await rawRequest({ port: gw.port, method: 'POST', path: '/v1/chat/completions', body: { model: 'pair', messages: MESSAGES, max_tokens: 3 } });
      assert.equal(ok.status, 200, ok.text);
    }
    assert.ok(hits <= 5, `the limited backend got ${hits} attempts for 5 requests`);
    assert.equal(served(good), 5);
  });
});
