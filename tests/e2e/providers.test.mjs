// Hosted OpenAI-compatible providers: a model with `proxy: https://…` and `apiKey`, served
// through infergate to the official SDK. The provider is a local TLS fake (self-signed
// certificate made with the openssl CLI, trusted through the model's caFile) that checks
// and records every header it gets. The provider key must reach the provider exactly as
// `Authorization: Bearer KEY`, the client's own key never, and the provider key must show
// up nowhere else: responses, /logs, /running, /models, /status, stderr, files on disk.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import {
  INFERGATE,
  deadline,
  guardWith,
  startGateway,
  suiteScope,
  tempDir,
  toYaml,
  withGateway,
  withTimeout,
} from './lib/harness.mjs';

const run = promisify(execFile);
const PROVIDER_KEY = `sk-prov-${crypto.randomBytes(16).toString('hex')}`;
const CLIENT_KEY = `sk-client-${crypto.randomBytes(16).toString('hex')}`;
const MESSAGES = [{ role: 'user', content: 'hello' }];
const WORDS = ['Hosted', ' providers', ' answer', ' through', ' infergate.'];

/** Writes a self-signed certificate for localhost into DIR; returns {key, cert} paths. */
async function makeCert(dir) {
  const key = path.join(dir, 'provider-key.pem');
  const cert = path.join(dir, 'provider-cert.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,DNS:provider.localhost,IP:127.0.0.1',
  ]);
  return { key, cert };
}

/**
 * The fake provider's request handler. Routes under /api (as OpenRouter's base URL):
 * /api/v1/chat/completions and /api/v1/models. A request whose bearer token is not the
 * provider key gets OpenAI's 401, echoing the token it got. Models named "error/echo-key"
 * get that 401 even with the right key (so the echoed key is the provider key), and
 * "error/stream-echo" gets a stream whose event carries the key split over two writes.
 */
function providerHandler(state) {
  return (req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', async () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body = {};
      try {
        body = text ? JSON.parse(text) : {};
      } catch {}
      state.requests.push({ method: req.method, url: req.url, headers: { ...req.headers }, body });
      const auth = req.headers.authorization ?? '';
      const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
      const json = (status, obj) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      const unauthorized = (got) =>
        json(401, {
          error: {
            message: got ? `Incorrect API key provided: ${got}. You can find your API key at https://example.invalid.` : "You didn't provide an API key.",
            type: 'invalid_request_error',
            param: null,
            code: 'invalid_api_key',
          },
        });
      if (token !== PROVIDER_KEY) return unauthorized(token);
      const route = req.url.split('?')[0];
      if (req.method === 'GET' && route === '/api/v1/models') {
        return json(200, { object: 'list', data: [{ id: 'vendor/real-model', object: 'model', created: 1, owned_by: 'vendor' }] });
      }
      if (req.method !== 'POST' || route !== '/api/v1/chat/completions') return json(404, { error: { message: `no route ${req.url}`, type: 'not_found' } });
      if (body.model === 'error/echo-key') return unauthorized(token);
      const id = `chatcmpl-${crypto.randomBytes(4).toString('hex')}`;
      const usage = { prompt_tokens: 3, completion_tokens: WORDS.length, total_tokens: 3 + WORDS.length };
      if (!body.stream) {
        return json(200, {
          id, object: 'chat.completion', created: 1, model: body.model,
          choices: [{ index: 0, message: { role: 'assistant', content: WORDS.join('') }, finish_reason: 'stop' }],
          usage,
        });
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
      const chunk = (delta, finish = null) => ({ id, object: 'chat.completion.chunk', created: 1, model: body.model, choices: [{ index: 0, delta, finish_reason: finish }] });
      if (body.model === 'error/stream-echo') {
        const event = `data: ${JSON.stringify({ error: { message: `Incorrect API key provided: ${token}`, type: 'invalid_request_error' } })}\n\n`;
        const cut = event.indexOf(token) + 7; // split inside the key
        res.write(event.slice(0, cut));
        await new Promise((r) => setTimeout(r, 20)); // two TCP writes; not a synchronisation
        res.write(event.slice(cut));
        res.end('data: [DONE]\n\n');
        return;
      }
      send(chunk({ role: 'assistant', content: '' }));
      send(chunk({ content: WORDS[0] }));
      // Hold the rest until the client has seen the first word: a gateway that buffered
      // the stream would never let it through, and the test would time out.
      if (state.gate) {
        await withTimeout(state.gate, deadline(5000), 'client seeing the first word').catch(() => {
          state.gateTimedOut = true;
        });
      }
      for (const w of WORDS.slice(1)) send(chunk({ content: w }));
      send(chunk({}, 'stop'));
      if (body.stream_options?.include_usage) send({ id, object: 'chat.completion.chunk', created: 1, model: body.model, choices: [], usage });
      res.end('data: [DONE]\n\n');
    });
  };
}

/** Starts the TLS fake provider (and a plain-http twin) on loopback; returns their state. */
async function startProviders(t, dir) {
  const { key, cert } = await makeCert(dir);
  const state = { requests: [], gate: null, cert };
  const tlsServer = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, providerHandler(state));
  const plainServer = http.createServer(providerHandler(state));
  for (const s of [tlsServer, plainServer]) {
    await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => {
      s.closeAllConnections?.();
      s.close(() => resolve());
    }));
  }
  state.tlsPort = tlsServer.address().port;
  state.httpPort = plainServer.address().port;
  return state;
}

/** The models of a gateway in front of the providers. */
function providerModels(p) {
  const base = `https://localhost:${p.tlsPort}/api`;
  const keyed = { apiKey: '${env.IG_TEST_PROVIDER_KEY}', caFile: p.cert };
  return {
    hosted: { proxy: base, ...keyed, useModelName: 'vendor/real-model', aliases: ['gpt-hosted'] },
    'hosted-badkey': { proxy: base, ...keyed, useModelName: 'error/echo-key' },
    'hosted-streamecho': { proxy: base, ...keyed, useModelName: 'error/stream-echo' },
    'hosted-query': { proxy: `${base}?tenant=a`, ...keyed, useModelName: 'vendor/real-model' },
    'hosted-nokey': { proxy: base, caFile: p.cert, useModelName: 'vendor/real-model' },
    'hosted-untrusted': { proxy: base, apiKey: '${env.IG_TEST_PROVIDER_KEY}', useModelName: 'vendor/real-model' },
    // A host name the native client does not serve: plain http through libcurl.
    'hosted-http': { proxy: `http://provider.localhost:${p.httpPort}/api/`, apiKey: '${env.IG_TEST_PROVIDER_KEY}', useModelName: 'vendor/real-model' },
  };
}

/** An SDK client whose every response (status, headers, body) is recorded in SEEN. */
function recordingClient(gw, seen, apiKey = CLIENT_KEY) {
  return new OpenAI({
    apiKey,
    baseURL: gw.baseURL,
    maxRetries: 0,
    timeout: deadline(30000),
    fetch: async (url, init) => {
      const res = await fetch(url, init);
      const copy = res.clone();
      seen.push(copy.text().then((body) => ({ url: String(url), status: res.status, headers: JSON.stringify([...res.headers]), body })));
      return res;
    },
  });
}

/** Collects the SDK stream's text and usage; calls onFirst at the first content delta. */
async function readStream(stream, onFirst) {
  let text = '';
  let usage = null;
  for await (const c of stream) {
    const d = c.choices[0]?.delta?.content;
    if (d) {
      if (!text) onFirst?.();
      text += d;
    }
    if (c.usage) usage = c.usage;
  }
  return { text, usage };
}

/** Every regular file under DIR (recursively). */
async function filesUnder(dir) {
  const out = [];
  for (const ent of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...(await filesUnder(p)));
    else if (ent.isFile()) out.push(p);
  }
  return out;
}

function assertNoKey(text, where) {
  assert.ok(!String(text).includes(PROVIDER_KEY), `the provider key appears in ${where}:\n${String(text).slice(0, 2000)}`);
}

/** Asserts the provider got every request with exactly the provider key, never the client's. */
function assertProviderHeaders(requests, { keyed = true } = {}) {
  assert.ok(requests.length > 0, 'the provider got requests');
  for (const r of requests) {
    const all = JSON.stringify(r.headers);
    assert.ok(!all.includes(CLIENT_KEY), `the client's key reached the provider: ${all}`);
    assert.equal(r.headers['api-key'], undefined, 'no api-key header');
    if (keyed) {
      assert.equal(r.headers.authorization, `Bearer ${PROVIDER_KEY}`, `Authorization of ${r.url}`);
      assert.equal(r.headers['x-api-key'], PROVIDER_KEY, `x-api-key of ${r.url}`);
    } else {
      assert.equal(r.headers.authorization, undefined, `no Authorization on ${r.url}: ${all}`);
      assert.equal(r.headers['x-api-key'], undefined);
    }
  }
}

describe('hosted providers', () => {
  const scope = suiteScope();
  let gw;
  let provider;
  let client;
  let stateDir;
  const seen = []; // every response the SDK got, as promises of {url, status, headers, body}
  const guarded = guardWith(() => gw);

  before(async () => {
    const dir = await tempDir(scope.t, 'ig-providers-');
    stateDir = path.join(dir, 'state');
    await fsp.mkdir(stateDir);
    provider = await startProviders(scope.t, dir);
    gw = await startGateway(scope.t, {
      models: providerModels(provider),
      extra: { logLevel: 'debug' },
      env: { IG_TEST_PROVIDER_KEY: PROVIDER_KEY, XDG_STATE_HOME: stateDir },
    });
    client = recordingClient(gw, seen);
  });
  after(scope.cleanup);

  test('chat completion through an https provider, with useModelName and the provider key', guarded(async () => {
    provider.requests.length = 0;
    const r = await client.chat.completions.create({ model: 'hosted', messages: MESSAGES });
    assert.equal(r.choices[0].message.content, WORDS.join(''));
    assert.equal(r.model, 'vendor/real-model');
    assert.deepEqual(r.usage, { prompt_tokens: 3, completion_tokens: WORDS.length, total_tokens: 3 + WORDS.length });
    assert.equal(provider.requests.length, 1);
    const [req] = provider.requests;
    assert.equal(req.url, '/api/v1/chat/completions', 'proxy base path + request path, as llama-swap joins them');
    assert.equal(req.body.model, 'vendor/real-model', 'useModelName rewrote the model');
    assert.deepEqual(req.body.messages, MESSAGES);
    assertProviderHeaders(provider.requests);
  }));

  test('an alias works the same way', guarded(async () => {
    provider.requests.length = 0;
    const r = await client.chat.completions.create({ model: 'gpt-hosted', messages: MESSAGES });
    assert.equal(r.choices[0].message.content, WORDS.join(''));
    assert.equal(provider.requests[0].body.model, 'vendor/real-model');
    assertProviderHeaders(provider.requests);
  }));

  test('streaming passes each event through as it arrives, usage included', guarded(async () => {
    provider.requests.length = 0;
    let open;
    provider.gate = new Promise((r) => (open = r));
    try {
      const stream = await client.chat.completions.create({
        model: 'hosted', messages: MESSAGES, stream: true, stream_options: { include_usage: true },
      });
      const { text, usage } = await withTimeout(readStream(stream, open), deadline(20000), 'the stream');
      assert.equal(text, WORDS.join(''));
      assert.ok(!provider.gateTimedOut, 'the first word reached the client while the provider held the rest');
      assert.deepEqual(usage, { prompt_tokens: 3, completion_tokens: WORDS.length, total_tokens: 3 + WORDS.length });
    } finally {
      provider.gate = null;
    }
    assert.equal(provider.requests[0].body.model, 'vendor/real-model');
    assert.equal(provider.requests[0].body.stream, true);
    assertProviderHeaders(provider.requests);
  }));

  test('plain http to a host by name works (libcurl path), base with a trailing slash', guarded(async () => {
    provider.requests.length = 0;
    const r = await client.chat.completions.create({ model: 'hosted-http', messages: MESSAGES });
    assert.equal(r.choices[0].message.content, WORDS.join(''));
    let open;
    provider.gate = new Promise((res) => (open = res));
    try {
      const stream = await client.chat.completions.create({ model: 'hosted-http', messages: MESSAGES, stream: true });
      const { text } = await withTimeout(readStream(stream, open), deadline(20000), 'the stream');
      assert.equal(text, WORDS.join(''));
      assert.ok(!provider.gateTimedOut, 'the first word reached the client while the provider held the rest');
    } finally {
      provider.gate = null;
    }
    assert.deepEqual(provider.requests.map((q) => q.url), ['/api/v1/chat/completions', '/api/v1/chat/completions']);
    assertProviderHeaders(provider.requests);
  }));

  test('a 401 that echoes the provider key reaches the client with the key redacted', guarded(async () => {
    provider.requests.length = 0;
    let err;
    try {
      await client.chat.completions.create({ model: 'hosted-badkey', messages: MESSAGES });
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof OpenAI.AuthenticationError, `expected AuthenticationError, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.status, 401);
    assert.match(err.error.message, /^Incorrect API key provided: \[redacted\]\. /);
    assertNoKey(err.message, 'the SDK error');
    assertNoKey(JSON.stringify(err.error), 'the SDK error body');
    // The same over raw HTTP, and through /upstream/MODEL/...
    const raw = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'hosted-badkey', messages: MESSAGES } });
    assert.equal(raw.status, 401);
    assert.match(raw.text, /\[redacted\]/);
    assertNoKey(raw.text + JSON.stringify(raw.headers), 'a raw 401');
    assertProviderHeaders(provider.requests);
  }));

  test('a key echoed inside a stream, split over two writes, is redacted', guarded(async () => {
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'hosted-streamecho', messages: MESSAGES, stream: true } });
    assert.equal(r.status, 200);
    assert.match(r.text, /Incorrect API key provided: \[redacted\]"/);
    assert.match(r.text, /data: \[DONE\]\n\n$/);
    assertNoKey(r.text, 'the streamed error');
  }));

  test('/upstream/MODEL/... goes to the provider base with the key', guarded(async () => {
    provider.requests.length = 0;
    const r = await gw.request('/upstream/hosted/v1/models', { headers: { authorization: `Bearer ${CLIENT_KEY}`, 'x-api-key': CLIENT_KEY, 'api-key': CLIENT_KEY } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.data[0].id, 'vendor/real-model');
    assert.equal(provider.requests[0].url, '/api/v1/models');
    assertProviderHeaders(provider.requests);
    assertNoKey(r.text + JSON.stringify(r.headers), '/upstream');
  }));

  test('a query in the proxy URL is kept, before the request\'s own', guarded(async () => {
    provider.requests.length = 0;
    const r = await client.chat.completions.create({ model: 'hosted-query', messages: MESSAGES });
    assert.equal(r.choices[0].message.content, WORDS.join(''));
    const up = await gw.request('/upstream/hosted-query/v1/models?limit=2');
    assert.equal(up.status, 200, up.text);
    assert.deepEqual(provider.requests.map((q) => q.url), ['/api/v1/chat/completions?tenant=a', '/api/v1/models?tenant=a&limit=2']);
    assertProviderHeaders(provider.requests);
  }));

  test('a model without apiKey forwards no credentials (the client key is never forwarded)', guarded(async () => {
    provider.requests.length = 0;
    let err;
    try {
      await client.chat.completions.create({ model: 'hosted-nokey', messages: MESSAGES });
    } catch (e) {
      err = e;
    }
    assert.equal(err?.status, 401, `the provider refused: ${err?.message}`);
    assert.match(err.error.message, /didn't provide an API key/);
    assertProviderHeaders(provider.requests, { keyed: false });
  }));

  test('certificates are verified: without caFile the self-signed provider is refused', guarded(async () => {
    provider.requests.length = 0;
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'hosted-untrusted', messages: MESSAGES } });
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json.error.code, 'upstream_error');
    assert.match(r.json.error.message, /certificate|SSL/i);
    assertNoKey(r.text, 'the 502');
    assert.equal(provider.requests.length, 0, 'nothing reached the provider');
  }));

  test('the provider key appears nowhere: responses, APIs, logs, stderr, files, CLI', guarded(async () => {
    // Everything the SDK saw.
    for (const r of await Promise.all(seen)) assertNoKey(`${r.headers}\n${r.body}`, `the response to ${r.url}`);
    assert.ok(seen.length >= 6, `recorded ${seen.length} responses`);
    // Every read-only API, while the models are running.
    const running = await gw.json('/running');
    assert.ok(running.running.some((m) => m.model === 'hosted'), JSON.stringify(running));
    for (const p of ['/running', '/models', '/v1/models', '/status', '/logs', '/api/profiles', '/health', '/healthz', '/logs/stream']) {
      const r = p === '/logs/stream' ? await streamBriefly(gw, p) : await gw.request(p);
      assertNoKey(`${JSON.stringify(r.headers)}\n${r.text}`, p);
    }
    const logs = await gw.request('/logs');
    assert.match(logs.text, /hosted/, '/logs has lines about the models');
    // Stop the gateway, so everything it had to write (logs, database) is written.
    const st = await gw.stop();
    assert.deepEqual([st.code, st.signal], [0, null], 'the gateway exits cleanly on SIGTERM');
    // The gateway's stdout/stderr (logLevel: debug).
    assertNoKey(gw.output(), "the gateway's output");
    // Every file the gateway or the test wrote: config dir (the gateway's state dir too) and
    // the XDG state dir.
    const files = [...(await filesUnder(gw.dir)), ...(await filesUnder(stateDir))];
    assert.ok(files.length > 0);
    for (const f of files) assertNoKey(await fsp.readFile(f, 'latin1'), f);
    // The CLI: check, models (table and JSON).
    const env = { ...process.env, IG_TEST_PROVIDER_KEY: PROVIDER_KEY, INFERGATE_STATE_DIR: gw.dir };
    for (const args of [['check', '-c', gw.configPath], ['models', '-c', gw.configPath], ['models', '-c', gw.configPath, '--json']]) {
      const r = await run(INFERGATE, args, { env }).catch((e) => e);
      assert.equal(r.code ?? 0, 0, `infergate ${args.join(' ')}: ${r.stderr}`);
      assertNoKey(`${r.stdout}\n${r.stderr}`, `infergate ${args[0]}`);
    }
  }));
});

/** Reads a chunked log stream until its history has come, then closes it. */
function streamBriefly(gw, p) {
  return withTimeout(new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: gw.port, path: p, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('error', () => {});
      res.on('data', (d) => {
        text += d;
        if (/hosted/.test(text)) {
          req.destroy();
          resolve({ headers: res.headers, text });
        }
      });
    });
    req.on('error', (e) => reject(e));
  }), deadline(10000), `reading ${p}`);
}

test('with auth on, the client key is checked by infergate and never forwarded', async (t) => {
  const dir = await tempDir(t, 'ig-providers-auth-');
  const provider = await startProviders(t, dir);
  await withGateway(t, {
    models: { hosted: providerModels(provider).hosted },
    extra: { apiKeys: [CLIENT_KEY] },
    env: { IG_TEST_PROVIDER_KEY: PROVIDER_KEY },
  }, async (gw) => {
    const seen = [];
    const client = recordingClient(gw, seen);
    const r = await client.chat.completions.create({ model: 'hosted', messages: MESSAGES });
    assert.equal(r.choices[0].message.content, WORDS.join(''));
    const stream = await client.chat.completions.create({ model: 'hosted', messages: MESSAGES, stream: true });
    assert.equal((await readStream(stream)).text, WORDS.join(''));
    const bad = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'hosted', messages: MESSAGES } });
    assert.equal(bad.status, 401, 'no client key: refused by infergate itself');
    assert.equal(provider.requests.length, 2, 'the refused request never reached the provider');
    assertProviderHeaders(provider.requests);
    for (const s of await Promise.all(seen)) assertNoKey(`${s.headers}\n${s.body}`, s.url);
    const st = await gw.stop();
    assert.deepEqual([st.code, st.signal], [0, null], 'the gateway exits cleanly on SIGTERM');
    assertNoKey(gw.output(), "the gateway's output");
    for (const f of await filesUnder(gw.dir)) assertNoKey(await fsp.readFile(f, 'latin1'), f);
  });
});

test('infergate check reports a bad apiKey without printing it', async (t) => {
  const dir = await tempDir(t, 'ig-providers-check-');
  const config = path.join(dir, 'config.yaml');
  await fsp.writeFile(config, toYaml({ models: { hosted: { proxy: 'https://api.example.invalid/v1', apiKey: '${env.IG_TEST_PROVIDER_KEY}' } } }));
  const badKey = `${PROVIDER_KEY} trailing`;
  const r = await run(INFERGATE, ['check', '-c', config], { env: { ...process.env, IG_TEST_PROVIDER_KEY: badKey } }).catch((e) => e);
  assert.equal(r.code, 1, `check fails: ${r.stdout}${r.stderr}`);
  assert.match(`${r.stdout}${r.stderr}`, /config\.yaml:\d+:\d+: apiKey: character \d+ is a space/);
  assertNoKey(`${r.stdout}${r.stderr}`, 'infergate check');
  const ok = await run(INFERGATE, ['check', '-c', config], { env: { ...process.env, IG_TEST_PROVIDER_KEY: PROVIDER_KEY } }).catch((e) => e);
  assert.equal(ok.code ?? 0, 0, `${ok.stdout}${ok.stderr}`);
  assertNoKey(`${ok.stdout}${ok.stderr}`, 'infergate check');
});
