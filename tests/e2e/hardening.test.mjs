// Hardening of the front server: the exposure rule (no listening beyond loopback without auth),
// HTTPS with the openai SDK (keep-alive, streaming, back-pressure), certificate reload on
// SIGHUP and /admin/reload (a bad one refused with a 422), llama-swap's TLS flags, CORS,
// slow clients (slowloris) closed by the deadlines, connection caps, URL cap.
// Every connection goes to 127.0.0.1, also when the gateway binds 0.0.0.0.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import {
  INFERGATE,
  assertErrorShape,
  attachOutput,
  deadline,
  fakeCmd,
  freePort,
  guardWith,
  randomStartPort,
  startGateway,
  suiteScope,
  tempDir,
  toYaml,
  waitFor,
  withGateway,
  withTimeout,
} from './lib/harness.mjs';

const MESSAGES = [{ role: 'user', content: 'Tell me about lighthouses.' }];
const ORIGIN = 'https://app.example';

// ------------------------------------------------------------------ helpers --

/** A self-signed certificate for 127.0.0.1/localhost made with the openssl CLI. */
function makeCert(dir, name) {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=localhost-${name}`,
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'pipe' });
  fs.chmodSync(key, 0o600);
  const pem = fs.readFileSync(cert, 'utf8');
  return { cert, key, pem, fingerprint: new crypto.X509Certificate(pem).fingerprint256 };
}

const running = new Set(); // gateways spawned here, killed on exit no matter what
process.on('exit', () => {
  for (const c of running) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
});

/** A request over HTTPS on a fresh connection (or AGENT's); resolves {status, reason, headers, text, fingerprint, reused}. */
function httpsGet(port, pathname, { ca, agent, headers = {}, method = 'GET' } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: pathname, method, servername: 'localhost', ca, agent: agent ?? false, headers, timeout: deadline(10000) }, (res) => {
      const parts = [];
      const fingerprint = res.socket.getPeerCertificate?.()?.fingerprint256;
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, reason: res.statusMessage, headers: res.headers, text: Buffer.concat(parts).toString(), fingerprint, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${pathname} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** SHA-256 fingerprint of the certificate a new TLS connection to PORT is served. */
function servedFingerprint(port, ca) {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
      const fp = sock.getPeerCertificate().fingerprint256;
      sock.end();
      resolve(fp);
    });
    sock.setTimeout(deadline(5000), () => sock.destroy(new Error('TLS handshake timed out')));
    sock.on('error', reject);
  });
}

/** A fetch() over node:https with AGENT (its CA), for the openai SDK. */
function httpsFetch(agent) {
  return (url, init = {}) =>
    new Promise((resolve, reject) => {
      const headers = {};
      new Headers(init.headers).forEach((v, k) => {
        headers[k] = v;
      });
      const req = https.request(String(url), { method: init.method ?? 'GET', headers, agent, servername: 'localhost' }, (res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          for (const one of Array.isArray(v) ? v : [v]) if (one !== undefined) h.append(k, one);
        }
        const body = res.statusCode === 204 || res.statusCode === 304 ? null : Readable.toWeb(res);
        resolve(new Response(body, { status: res.statusCode, statusText: res.statusMessage, headers: h }));
      });
      req.on('error', reject);
      const signal = init.signal;
      if (signal) {
        if (signal.aborted) req.destroy(new Error('aborted'));
        signal.addEventListener('abort', () => req.destroy(new Error('aborted')), { once: true });
      }
      if (init.body === undefined || init.body === null) req.end();
      else if (typeof init.body === 'string' || init.body instanceof Uint8Array) req.end(init.body);
      else if (init.body instanceof ArrayBuffer) req.end(Buffer.from(init.body));
      else reject(new Error(`httpsFetch: unsupported body ${Object.prototype.toString.call(init.body)}`));
    });
}

/**
 * Starts `infergate serve -c CONFIG` with LISTEN(port) as --listen plus ARGS. Unless
 * EXPECT_EXIT, waits for /healthz (over HTTPS when CA is given) and registers a cleanup that
 * sends SIGTERM and requires a clean exit 0 without sanitizer reports.
 */
async function spawnGateway(t, { config, listen = (p) => `127.0.0.1:${p}`, args = [], ca, authKey, expectExit = false }) {
  const dir = await tempDir(t, 'ig-e2e-hard-');
  const port = await freePort();
  const startPort = await randomStartPort(4);
  const configPath = path.join(dir, 'config.yaml');
  const full = { healthCheckTimeout: 30, startPort, models: {}, ...config };
  await fsp.writeFile(configPath, toYaml(full));
  const child = spawn(INFERGATE, ['serve', '-c', configPath, '--listen', listen(port), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=0',
      INFERGATE_STATE_DIR: dir, // the database of this gateway only
    },
  });
  running.add(child);
  const chunks = [];
  child.stdout.on('data', (d) => chunks.push(d));
  child.stderr.on('data', (d) => chunks.push(d));
  const exit = new Promise((resolve) => child.once('exit', (code, signal) => {
    running.delete(child);
    resolve({ code, signal });
  }));
  const gw = { dir, port, configPath, config: full, child, pid: child.pid, exit, output: () => Buffer.concat(chunks).toString('utf8') };
  gw.rewrite = (next) => fsp.writeFile(configPath, toYaml({ ...full, ...next }));
  if (expectExit) {
    gw.result = await withTimeout(exit, deadline(10000), 'infergate exit');
    return gw;
  }
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const st = await withTimeout(exit, deadline(15000), 'infergate exit after SIGTERM').catch((e) => {
      child.kill('SIGKILL');
      throw attachOutput(e, gw);
    });
    if (st.code !== 0 || /ERROR: (Address|Leak)Sanitizer|runtime error:/.test(gw.output()))
      throw attachOutput(new Error(`infergate cleanup: exit ${st.code}/${st.signal} or a sanitizer report`), gw, 20000);
  });
  const headers = authKey ? { authorization: `Bearer ${authKey}` } : {};
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`infergate exited early: ${JSON.stringify(await exit)}`);
      const r = ca ? await httpsGet(port, '/healthz', { ca, headers }) : await rawGet(port, '/healthz', headers);
      return r.status === 200;
    }, { timeoutMs: deadline(15000), message: 'GET /healthz == 200' });
  } catch (e) {
    throw attachOutput(e, gw);
  }
  return gw;
}

/** Plain GET on a fresh connection to 127.0.0.1:PORT. */
function rawGet(port, pathname, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathname, headers, agent: false, timeout: deadline(5000) }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A raw keep-alive connection: get(path) sends one request and resolves the response
 * {status, head, body} (Content-Length framed), or {status: 0} when the server closed instead.
 */
async function keepAliveConn(port) {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  let buf = Buffer.alloc(0);
  let closed = false;
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
  });
  sock.on('close', () => {
    closed = true;
  });
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const take = () => {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = buf.subarray(0, end).toString();
    const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (buf.length < end + 4 + length) return undefined;
    const body = buf.subarray(end + 4, end + 4 + length).toString();
    buf = buf.subarray(end + 4 + length);
    return { status: Number(head.split(' ')[1]), head, body };
  };
  return {
    sock,
    isClosed: () => closed,
    async get(pathname) {
      sock.write(`GET ${pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      return waitFor(() => take() ?? (closed ? { status: 0 } : undefined),
        { timeoutMs: deadline(5000), intervalMs: 5, message: `response to GET ${pathname}` });
    },
  };
}

/**
 * Connects, writes PREFIX at once, then trickles TRICKLE one byte every INTERVALMS until the
 * server answers or closes. Resolves {ms: connect-to-close time, response}.
 */
async function trickle(port, { prefix = '', bytes, intervalMs = 50, timeoutMs }) {
  const sock = net.connect(port, '127.0.0.1');
  let response = '';
  let timer;
  sock.on('error', () => {}); // a write racing the server's close
  const closed = new Promise((resolve) => sock.once('close', resolve));
  await new Promise((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const started = Date.now();
  sock.on('data', (d) => {
    response += d;
    clearInterval(timer); // the server answered: stop feeding it
  });
  if (prefix) sock.write(prefix);
  let i = 0;
  timer = setInterval(() => {
    if (i < bytes.length && !sock.destroyed) sock.write(bytes[i++]);
  }, intervalMs);
  try {
    await withTimeout(closed, timeoutMs, 'the server closing a slow client');
  } finally {
    clearInterval(timer);
    sock.destroy();
  }
  return { ms: Date.now() - started, response };
}

// ------------------------------------------------------------- exposure --

describe('exposure', () => {
  test('listening on 0.0.0.0 without auth is refused: exit 1, naming the address and the two ways out', async (t) => {
    const gw = await spawnGateway(t, { listen: (p) => `0.0.0.0:${p}`, expectExit: true });
    assert.equal(gw.result.code, 1, gw.output());
    const out = gw.output();
    assert.match(out, new RegExp(`refusing to listen on 0\\.0\\.0\\.0:${gw.port}`));
    assert.match(out, /--insecure-no-auth/);
    assert.match(out, /auth\.keys or apiKeys/);
    assert.doesNotMatch(out, /listening on/);
  });

  test('[::] is refused too; loopback needs no flag', async (t) => {
    const gw = await spawnGateway(t, { listen: (p) => `[::]:${p}`, expectExit: true });
    assert.equal(gw.result.code, 1, gw.output());
    assert.match(gw.output(), new RegExp(`refusing to listen on \\[::\\]:${gw.port}`));
    const local = await spawnGateway(t, { listen: (p) => `localhost:${p}` });
    assert.doesNotMatch(local.output(), /insecure|refusing/);
  });

  test('--insecure-no-auth binds 0.0.0.0 with a warning (reached here through 127.0.0.1)', async (t) => {
    const gw = await spawnGateway(t, { listen: (p) => `0.0.0.0:${p}`, args: ['--insecure-no-auth'] });
    assert.match(gw.output(), new RegExp(`listening on 0\\.0\\.0\\.0:${gw.port}, which is not a loopback address, with authentication off \\(--insecure-no-auth\\)`));
    assert.equal((await rawGet(gw.port, '/v1/models')).status, 200);
  });

  test('with auth on, 0.0.0.0 is allowed; a reload that turns auth off is refused', async (t) => {
    const key = 'sk-hardening-0123456789';
    const gw = await spawnGateway(t, { listen: (p) => `0.0.0.0:${p}`, config: { apiKeys: [key] }, authKey: key });
    assert.doesNotMatch(gw.output(), /refusing|insecure/);
    await gw.rewrite({ apiKeys: undefined, logLevel: 'debug' });
    process.kill(gw.pid, 'SIGHUP');
    await waitFor(() => /authentication would be off while infergate listens on 0\.0\.0\.0/.test(gw.output()),
      { timeoutMs: deadline(10000), message: 'the reload refused' });
    assert.match(gw.output(), /keeping the running configuration/);
  });
});

// ------------------------------------------------------------------ TLS --

describe('tls', () => {
  test('HTTPS end to end with the openai SDK: keep-alive, streaming flushed per chunk, back-pressure', async (t) => {
    const dir = await tempDir(t);
    const c = makeCert(dir, 'a');
    const gw = await spawnGateway(t, {
      config: { tls: { cert: c.cert, key: c.key }, models: { m1: { cmd: fakeCmd('m1') }, slow: { cmd: fakeCmd('slow', ['--token-us', 60000]) } },
        groups: { all: { swap: false, exclusive: false, members: ['m1', 'slow'] } } },
      ca: c.pem,
    });
    assert.match(gw.output(), new RegExp(`listening on https://127\\.0\\.0\\.1:${gw.port}`));
    assert.match(gw.output(), /TLS certificate: .*CN=localhost-a/);
    const agent = new https.Agent({ ca: c.pem, keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    let connections = 0;
    const create = agent.createConnection.bind(agent);
    agent.createConnection = (...a) => {
      connections++;
      return create(...a);
    };
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: `https://127.0.0.1:${gw.port}/v1`, maxRetries: 0, timeout: deadline(60000), fetch: httpsFetch(agent) });

    const models = await client.models.list();
    assert.ok(models.data.some((m) => m.id === 'm1'));
    const done = await client.chat.completions.create({ model: 'm1', messages: MESSAGES, max_tokens: 8 });
    assert.ok(done.choices[0].message.content.length > 0);
    assert.equal(done.choices[0].finish_reason, 'length');

    // Streamed: each chunk arrives as the model makes it (60 ms apart), not at the end.
    const stream = await client.chat.completions.create({ model: 'slow', messages: MESSAGES, max_tokens: 8, stream: true });
    const arrivals = [];
    let text = '';
    for await (const chunk of stream) {
      const delta = chunk.choices?.[0]?.delta?.content;
      if (delta) {
        arrivals.push(Date.now());
        text += delta;
      }
    }
    assert.equal(arrivals.length, 8);
    assert.ok(text.length > 0);
    assert.ok(arrivals[7] - arrivals[0] >= 250, `chunks spread over ${arrivals[7] - arrivals[0]} ms`);
    assert.equal(connections, 1, 'every request went over one kept-alive TLS connection');

    // Back-pressure: a big stream read by a client that stops reading for a while.
    const big = await new Promise((resolve, reject) => {
      const body = JSON.stringify({ model: 'm1', messages: MESSAGES, max_tokens: 20000, stream: true });
      const req = https.request({ host: '127.0.0.1', port: gw.port, path: '/v1/chat/completions', method: 'POST', ca: c.pem, servername: 'localhost', agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let raw = '';
        res.setEncoding('utf8');
        res.pause(); // a slow reader: the gateway's buffer fills and it must pause the model
        setTimeout(() => {
          res.on('data', (d) => {
            raw += d;
          });
          res.resume();
        }, 300);
        res.on('end', () => resolve({ status: res.statusCode, raw }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(big.status, 200);
    const events = big.raw.split('\n\n').filter((e) => e.startsWith('data: '));
    assert.equal(events.at(-1), 'data: [DONE]');
    const tokens = events.filter((e) => e !== 'data: [DONE]').map((e) => JSON.parse(e.slice(6))).filter((j) => j.choices?.[0]?.delta?.content);
    assert.equal(tokens.length, 20000, 'every token arrived over TLS after the pause');

    // Plain HTTP on the TLS port gets no answer.
    const plain = await rawGet(gw.port, '/healthz').then((r) => r.status, (e) => e.code ?? 'error');
    assert.notEqual(plain, 200);
  });

  test('a key that does not match the certificate fails at start with a clear message', async (t) => {
    const dir = await tempDir(t);
    const a = makeCert(dir, 'a');
    const b = makeCert(dir, 'b');
    const gw = await spawnGateway(t, { config: { tls: { cert: a.cert, key: b.key } }, expectExit: true });
    assert.equal(gw.result.code, 1);
    assert.match(gw.output(), new RegExp(`tls\\.key ${b.key.replace(/[.]/g, '\\.')} does not match the certificate in ${a.cert.replace(/[.]/g, '\\.')}`));
    const missing = await spawnGateway(t, { config: { tls: { cert: path.join(dir, 'nope.crt'), key: a.key } }, expectExit: true });
    assert.equal(missing.result.code, 1);
    assert.match(missing.output(), /tls\.cert: cannot read .*nope\.crt: No such file or directory/);
  });

  test('SIGHUP and /admin/reload reload the certificate: new connections get it, open ones keep theirs, a bad one refuses the reload (422)', async (t) => {
    const dir = await tempDir(t);
    const a = makeCert(dir, 'a');
    const b = makeCert(dir, 'b');
    const c = makeCert(dir, 'c');
    const cert = path.join(dir, 'live.crt');
    const key = path.join(dir, 'live.key');
    fs.copyFileSync(a.cert, cert);
    fs.copyFileSync(a.key, key);
    const ca = [a.pem, b.pem, c.pem];
    const gw = await spawnGateway(t, { config: { tls: { cert, key } }, ca });
    const agent = new https.Agent({ ca, keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());

    const first = await httpsGet(gw.port, '/healthz', { ca, agent });
    assert.equal(first.fingerprint, a.fingerprint);
    assert.equal(await servedFingerprint(gw.port, ca), a.fingerprint);

    fs.copyFileSync(b.cert, cert);
    fs.copyFileSync(b.key, key);
    process.kill(gw.pid, 'SIGHUP');
    await waitFor(async () => (await servedFingerprint(gw.port, ca)) === b.fingerprint,
      { timeoutMs: deadline(10000), message: 'the new certificate on new connections' });
    assert.match(gw.output(), /reload: TLS certificate for new connections: .*CN=localhost-b/);

    const again = await httpsGet(gw.port, '/healthz', { ca, agent });
    assert.equal(again.status, 200);
    assert.equal(again.reused, true, 'the kept-alive connection was reused');
    assert.equal(again.fingerprint, a.fingerprint, 'an open connection keeps its certificate');

    // A broken certificate on SIGHUP: logged, nothing of the reload applies, the running
    // certificate stays. The same config also adds a model, which must not appear.
    await gw.rewrite({ models: { m2: { cmd: fakeCmd('m2') } } });
    fs.writeFileSync(cert, 'not a certificate\n');
    process.kill(gw.pid, 'SIGHUP');
    const logged = new RegExp(`ERROR reload of .*config\\.yaml failed; keeping the running configuration:\\s+tls\\.cert ${cert.replace(/[.]/g, '\\.')} is not a PEM certificate`);
    await waitFor(() => logged.test(gw.output()), { timeoutMs: deadline(10000), message: 'the bad certificate reported' });
    assert.equal(await servedFingerprint(gw.port, ca), b.fingerprint);
    assert.equal((await httpsGet(gw.port, '/healthz', { ca })).status, 200);
    const modelIds = async () => JSON.parse((await httpsGet(gw.port, '/v1/models', { ca })).text).data.map((m) => m.id);
    assert.deepEqual(await modelIds(), [], 'the rest of the refused reload did not apply either');

    // POST /admin/reload says so: 422 naming the file and why, in OpenAI's error shape.
    const refused = await httpsGet(gw.port, '/admin/reload', { ca, method: 'POST' });
    assertErrorShape(assert, { ...refused, json: JSON.parse(refused.text) }, 422);
    assert.equal(refused.reason, 'Unprocessable Content');
    const err = JSON.parse(refused.text).error;
    assert.equal(err.code, 'invalid_certificate');
    assert.ok(err.message.includes(`tls.cert ${cert} is not a PEM certificate`), err.message);
    assert.match(err.message, /the reload was not applied/);
    // A key that does not belong to the certificate: refused the same way.
    fs.copyFileSync(c.cert, cert);
    const mismatch = await httpsGet(gw.port, '/admin/reload', { ca, method: 'POST' });
    assert.equal(mismatch.status, 422, mismatch.text);
    assert.ok(JSON.parse(mismatch.text).error.message.includes(`tls.key ${key} does not match the certificate in ${cert}`), mismatch.text);
    assert.equal(await servedFingerprint(gw.port, ca), b.fingerprint, 'still the running certificate');
    assert.deepEqual(await modelIds(), []);

    // POST /admin/reload answers once the reload is applied: the next connection has it.
    fs.copyFileSync(c.key, key);
    const reload = await httpsGet(gw.port, '/admin/reload', { ca, method: 'POST' });
    assert.equal(reload.status, 200, reload.text);
    assert.equal(await servedFingerprint(gw.port, ca), c.fingerprint);
    assert.deepEqual(await modelIds(), ['m2']);
  });
});

describe('tls flags', () => {
  test('llama-swap\'s --tls-cert-file/--tls-key-file turn HTTPS on and win over the file\'s tls, reloads included', async (t) => {
    const dir = await tempDir(t);
    const a = makeCert(dir, 'a');
    const b = makeCert(dir, 'b');
    const c = makeCert(dir, 'c');
    const ca = [a.pem, b.pem, c.pem];
    // No tls section in the file: the flags alone turn HTTPS on.
    const only = await spawnGateway(t, { args: ['--tls-cert-file', a.cert, '--tls-key-file', a.key], ca });
    assert.match(only.output(), new RegExp(`listening on https://127\\.0\\.0\\.1:${only.port}`));
    assert.equal(await servedFingerprint(only.port, ca), a.fingerprint);
    const agent = new https.Agent({ ca });
    t.after(() => agent.destroy());
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: `https://127.0.0.1:${only.port}/v1`, maxRetries: 0, timeout: deadline(30000),
      fetch: httpsFetch(agent) });
    assert.deepEqual((await client.models.list()).data, []);

    // The file names b; the flags (the NAME=VALUE form too) name live copies of a.
    const cert = path.join(dir, 'flag.crt');
    const key = path.join(dir, 'flag.key');
    fs.copyFileSync(a.cert, cert);
    fs.copyFileSync(a.key, key);
    fs.chmodSync(key, 0o600);
    const gw = await spawnGateway(t, { config: { tls: { cert: b.cert, key: b.key } }, args: [`--tls-cert-file=${cert}`, '--tls-key-file', key], ca });
    assert.equal(await servedFingerprint(gw.port, ca), a.fingerprint, 'the flags win over tls: in the file');
    // A reload reads the flags' files again, not the file's tls section.
    fs.copyFileSync(c.cert, cert);
    fs.copyFileSync(c.key, key);
    const reload = await httpsGet(gw.port, '/admin/reload', { ca, method: 'POST' });
    assert.equal(reload.status, 200, reload.text);
    assert.equal(await servedFingerprint(gw.port, ca), c.fingerprint);
    fs.writeFileSync(cert, 'not a certificate\n');
    process.kill(gw.pid, 'SIGHUP');
    await waitFor(() => /reload of .* failed; keeping the running configuration:\s+tls\.cert .*flag\.crt is not a PEM certificate/.test(gw.output()),
      { timeoutMs: deadline(10000), message: 'the broken flag certificate refused' });
    assert.equal(await servedFingerprint(gw.port, ca), c.fingerprint);
  });

  test('one TLS flag alone is a usage error; a file that cannot be read stops the start, naming the flags', async (t) => {
    const dir = await tempDir(t);
    const a = makeCert(dir, 'a');
    for (const args of [['--tls-cert-file', a.cert], ['--tls-key-file', a.key], ['--tls-cert-file', a.cert, '--tls-key-file']]) {
      const gw = await spawnGateway(t, { args, expectExit: true });
      assert.equal(gw.result.code, 2, args.join(' '));
      assert.match(gw.output(), /both --tls-cert-file and --tls-key-file must be given|incomplete argument/);
    }
    const missing = path.join(dir, 'nope.crt');
    const gw = await spawnGateway(t, { args: ['--tls-cert-file', missing, '--tls-key-file', a.key], expectExit: true });
    assert.equal(gw.result.code, 1);
    assert.match(gw.output(), new RegExp(`--tls-cert-file/--tls-key-file: tls\\.cert: cannot read ${missing.replace(/[.]/g, '\\.')}: No such file or directory`));
  });
});

// ----------------------------------------------------------------- CORS --

describe('cors', () => {
  const scope = suiteScope();
  let gw;
  before(async () => {
    gw = await startGateway(scope.t, {
      models: { m1: { cmd: fakeCmd('m1') } },
      extra: { cors: { origins: [ORIGIN, 'https://*.corp.example'], max_age_s: 600 } },
    });
  });
  after(scope.cleanup);
  const guarded = guardWith(() => gw);
  const preflight = (origin, extraHeaders = {}) => gw.request('/v1/chat/completions', {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', ...extraHeaders },
  });

  test('a preflight from an allowed origin gets 204 and the Access-Control-Allow-* headers', guarded(async () => {
    const r = await preflight(ORIGIN, { 'access-control-request-headers': 'authorization, content-type, x-stainless-os' });
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], ORIGIN);
    assert.match(r.headers['access-control-allow-methods'], /\bPOST\b/);
    assert.equal(r.headers['access-control-allow-headers'], 'authorization, content-type, x-stainless-os');
    assert.equal(r.headers['access-control-max-age'], '600');
    assert.match(r.headers.vary, /Origin/);
    assert.equal(r.text, '');
    const sub = await preflight('https://team.corp.example');
    assert.equal(sub.status, 204);
    assert.equal(sub.headers['access-control-allow-origin'], 'https://team.corp.example');
  }));

  test('a preflight from another origin gets 403 in the error shape', guarded(async () => {
    const r = await preflight('https://evil.example');
    const err = assertErrorShape(assert, r, 403);
    assert.equal(err.code, 'origin_not_allowed');
    assert.equal(r.headers['access-control-allow-origin'], undefined);
  }));

  test('plain, streamed and error responses carry Access-Control-Allow-Origin for allowed origins', guarded(async () => {
    const list = await gw.request('/v1/models', { headers: { origin: ORIGIN } });
    assert.equal(list.status, 200);
    assert.equal(list.headers['access-control-allow-origin'], ORIGIN);
    assert.equal(list.headers.vary, 'Origin');
    assert.equal(list.headers['x-content-type-options'], 'nosniff');

    const streamed = await new Promise((resolve, reject) => {
      const body = JSON.stringify({ model: 'm1', messages: MESSAGES, max_tokens: 4, stream: true });
      const req = http.request({ host: '127.0.0.1', port: gw.port, method: 'POST', path: '/v1/chat/completions', agent: false,
        headers: { origin: ORIGIN, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let raw = '';
        res.on('data', (d) => {
          raw += d;
        });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, raw }));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(streamed.status, 200);
    assert.match(streamed.headers['content-type'], /text\/event-stream/);
    assert.equal(streamed.headers['access-control-allow-origin'], ORIGIN);
    assert.match(streamed.raw, /data: \[DONE\]/);

    const missing = await gw.request('/v1/chat/completions', { method: 'POST', headers: { origin: ORIGIN }, body: { model: 'nope', messages: MESSAGES } });
    assertErrorShape(assert, missing, 404);
    assert.equal(missing.headers['access-control-allow-origin'], ORIGIN);

    const other = await gw.request('/v1/models', { headers: { origin: 'https://evil.example' } });
    assert.equal(other.status, 200);
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    const none = await gw.request('/v1/models');
    assert.equal(none.headers['access-control-allow-origin'], undefined);
  }));

  test('the default (as llama-swap): every origin, "*"', async (t) => {
    await withGateway(t, {}, async (def) => {
      const r = await def.request('/v1/models', { method: 'OPTIONS', headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'GET' } });
      assert.equal(r.status, 204);
      assert.equal(r.headers['access-control-allow-origin'], '*');
      assert.equal(r.headers['access-control-allow-headers'], 'Content-Type, Authorization, Accept, X-Requested-With');
      assert.equal(r.headers['access-control-max-age'], '86400');
      const g = await def.request('/v1/models', { headers: { origin: 'http://localhost:5173' } });
      assert.equal(g.headers['access-control-allow-origin'], '*');
    });
  });
});

// --------------------------------------------------------------- limits --

describe('limits', () => {
  test('slowloris: a head trickled one byte at a time is cut off by header_timeout_s with 408', async (t) => {
    await withGateway(t, { extra: { limits: { header_timeout_s: 1, read_timeout_s: 3 } } }, async (gw) => {
      const bytes = `GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'a'.repeat(200)}\r\n\r\n`;
      const r = await trickle(gw.port, { bytes, intervalMs: 50, timeoutMs: deadline(4000) });
      assert.match(r.response, /^HTTP\/1\.1 408 Request Timeout\r\n/);
      assert.match(r.response, /request head not received within 1 s/);
      assert.ok(r.ms >= 900, `closed after ${r.ms} ms`);
      assert.ok(r.ms < deadline(1000) + 1500, `closed after ${r.ms} ms`);
      // A connection that sends nothing at all is closed by then too.
      const idle = await trickle(gw.port, { bytes: '', timeoutMs: deadline(4000) });
      assert.equal(idle.response, '');
      assert.ok(idle.ms >= 900 && idle.ms < deadline(1000) + 1500, `idle connection closed after ${idle.ms} ms`);
    });
  });

  test('slowloris: a body trickled one byte at a time is cut off by read_timeout_s with 408', async (t) => {
    await withGateway(t, { extra: { limits: { header_timeout_s: 1, read_timeout_s: 2 } } }, async (gw) => {
      const prefix = 'POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n';
      const r = await trickle(gw.port, { prefix, bytes: 'x'.repeat(1000), intervalMs: 50, timeoutMs: deadline(5000) });
      assert.match(r.response, /^HTTP\/1\.1 408 Request Timeout\r\n/);
      assert.match(r.response, /request body not received within 2 s/);
      assert.ok(r.ms >= 1900, `closed after ${r.ms} ms`);
      assert.ok(r.ms < deadline(2000) + 1500, `closed after ${r.ms} ms`);
    });
  });

  for (const [name, limits, message] of [
    ['max_connections_per_ip', { max_connections_per_ip: 3 }, /max_connections_per_ip: 3/],
    ['max_connections', { max_connections: 3, max_connections_per_ip: 0 }, /limits\.max_connections: 3/],
  ]) {
    test(`${name}: one connection over the cap gets 503 at once; room again when one closes`, async (t) => {
      await withGateway(t, { extra: { limits } }, async (gw) => {
        const held = [];
        for (let i = 0; i < 3; i++) {
          // The health checks' connections may still be closing: retry until counted.
          held.push(await waitFor(async () => {
            const c = await keepAliveConn(gw.port);
            const r = await c.get('/healthz');
            if (r?.status === 200) return c;
            c.sock.destroy();
            return undefined;
          }, { timeoutMs: deadline(5000), message: `connection ${i + 1} accepted` }));
        }
        t.after(() => held.forEach((c) => c.sock.destroy()));
        const over = await gw.request('/v1/models');
        const err = assertErrorShape(assert, over, 503);
        assert.equal(err.code, 'too_many_connections');
        assert.match(err.message, message);
        assert.equal(over.headers['retry-after'], '1');
        for (const c of held) assert.equal((await c.get('/v1/models')).status, 200, 'the held connections still work');
        held[0].sock.destroy();
        await waitFor(async () => (await gw.request('/v1/models')).status === 200,
          { timeoutMs: deadline(5000), message: 'a new connection accepted once one closed' });
      });
    });
  }

  test('a URL over max_url_bytes gets 414 in the error shape', async (t) => {
    await withGateway(t, {}, async (gw) => {
      const r = await gw.request(`/v1/models?q=${'a'.repeat(9000)}`);
      const err = assertErrorShape(assert, r, 414);
      assert.equal(err.code, 'url_too_long');
      assert.match(err.message, /longer than 8192 bytes/);
      assert.equal((await gw.request(`/v1/models?q=${'a'.repeat(7000)}`)).status, 200);
    });
  });
});
