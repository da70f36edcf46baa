// Shared harness for infergate's end-to-end tests: real processes on loopback, no sleeps.
//
// Environment:
//   IG_E2E_LOG_DIR if set, every gateway's full output is saved there as infergate-PORT.log
//   IG_BIN_DIR    build directory holding `infergate` and `fake-llama-server` (default: build)
//   IG_SANITIZE=1 binaries are ASan/UBSan builds: every deadline is multiplied by 3
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';

export const BIN_DIR = path.resolve(process.env.IG_BIN_DIR || 'build');
// Every infergate this test process starts keeps its database in a directory of its own,
// never in the user's ~/.local/state (startGateway gives each gateway its own).
if (!process.env.INFERGATE_STATE_DIR) {
  process.env.INFERGATE_STATE_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'ig-state-'));
  process.on('exit', () => fs.rmSync(process.env.INFERGATE_STATE_DIR, { recursive: true, force: true }));
}
export const SANITIZE = ['1', 'true', 'on', 'yes'].includes(String(process.env.IG_SANITIZE).toLowerCase());
export const SLOW = SANITIZE ? 3 : 1;
export const INFERGATE = path.join(BIN_DIR, 'infergate');
export const FAKE = path.join(BIN_DIR, 'fake-llama-server');

/** Scales a deadline for sanitizer builds. */
export function deadline(ms) {
  return ms * SLOW;
}

/** Polls FN until it returns a truthy value (which is returned) or the deadline passes. */
export async function waitFor(fn, { timeoutMs = 10000, intervalMs = 25, message = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let lastErr;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= end) {
      const why = lastErr ? ` (last error: ${lastErr.message ?? lastErr})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Rejects with a clear message if PROMISE does not settle within MS. */
export async function withTimeout(promise, ms, what = 'operation') {
  let timer;
  const t = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** A free loopback TCP port (bind port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portBindable(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A random startPort in 20000..32000 whose next COUNT ports are currently free. The range
 * stays below Linux's ephemeral ports (32768+), which outgoing connections of other tests
 * running at the same time take at random and would make a model's port busy.
 */
export async function randomStartPort(count = 4) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * (12000 - count));
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await portBindable(base + i);
    if (ok) return base;
  }
  throw new Error('no free port range found for startPort');
}

/** Temp dir removed by the test's after hook. */
export async function tempDir(t, prefix = 'ig-e2e-') {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  t.after(() => fsp.rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A stand-in for a TestContext's `after` for state shared by a whole file or describe():
 *   const scope = suiteScope(); before(() => startGateway(scope.t, ...)); after(scope.cleanup)
 * Cleanups run last-registered first.
 */
export function suiteScope() {
  const fns = [];
  return {
    t: { after: (fn) => fns.push(fn) },
    async cleanup() {
      while (fns.length) await fns.pop()();
    },
  };
}

// ---------------------------------------------------------------- YAML ----

function yamlScalar(v) {
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null) return 'null';
  return JSON.stringify(String(v)); // JSON strings are valid YAML double-quoted scalars
}

/** Minimal YAML writer for plain objects/arrays/scalars; multi-line strings become `|` blocks. */
export function toYaml(value, indent = 0) {
  const pad = ' '.repeat(indent);
  let out = '';
  if (Array.isArray(value)) {
    for (const item of value) {
      if (item !== null && typeof item === 'object') {
        const inner = toYaml(item, indent + 2).replace(/^\s+/, '');
        out += `${pad}- ${inner}`;
      } else {
        out += `${pad}- ${yamlScalar(item)}\n`;
      }
    }
    return out;
  }
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    if (typeof v === 'string' && v.includes('\n')) {
      out += `${pad}${k}: |\n`;
      for (const line of v.replace(/\n$/, '').split('\n')) out += `${pad}  ${line}\n`;
    } else if (Array.isArray(v) && v.every((x) => x === null || typeof x !== 'object')) {
      out += `${pad}${k}: [${v.map(yamlScalar).join(', ')}]\n`;
    } else if (v !== null && typeof v === 'object') {
      out += `${pad}${k}:\n${toYaml(v, indent + 2)}`;
    } else {
      out += `${pad}${k}: ${yamlScalar(v)}\n`;
    }
  }
  return out;
}

/** A model `cmd` that runs fake-llama-server with ${PORT} and extra flags. */
export function fakeCmd(model, flags = []) {
  const parts = [FAKE, '--port', '${PORT}', '--model', model, ...flags.map(String)];
  return parts.map((p) => (/^[\w@%+=:,./${}-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`)).join(' ');
}

// ------------------------------------------------------------- processes --

const live = new Set(); // every process spawned by this file, killed on exit no matter what

process.on('exit', () => {
  for (const p of live) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {}
  }
});

/** Direct children of PID (from /proc/<pid>/task/<tid>/children, falling back to a /proc scan). */
export function childPids(pid) {
  const out = new Set();
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        const text = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
        for (const c of text.split(/\s+/)) if (c) out.add(Number(c));
      } catch {}
    }
    if (out.size) return [...out];
  } catch {
    return [];
  }
  for (const ent of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    const st = procStat(Number(ent));
    if (st && st.ppid === pid) out.add(Number(ent));
  }
  return [...out];
}

/** {pid, comm, state, ppid} from /proc/PID/stat, or null if the process is gone. */
export function procStat(pid) {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const rest = text.slice(close + 2).split(' ');
    return { pid, comm, state: rest[0], ppid: Number(rest[1]) };
  } catch {
    return null;
  }
}

/** True if PID no longer exists (kill(pid, 0) fails with ESRCH). */
export function pidGone(pid) {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return e.code === 'ESRCH';
  }
}

/** True if PID is gone, or is a zombie that is not ours to reap (reparented away). */
function pidGoneOrZombie(pid) {
  if (pidGone(pid)) return true;
  const st = procStat(pid);
  return st === null || st.state === 'Z';
}

/** SIGTERM, then SIGKILL after GRACEMS; resolves true if the SIGKILL was needed. */
async function killProc(child, graceMs) {
  if (child.exitCode !== null || child.signalCode !== null) return false;
  const exited = new Promise((r) => child.once('exit', r));
  let killed = false;
  try {
    child.kill('SIGTERM');
  } catch {}
  const timer = setTimeout(() => {
    killed = true;
    try {
      child.kill('SIGKILL');
    } catch {}
  }, graceMs);
  await exited;
  clearTimeout(timer);
  return killed;
}

// --------------------------------------------------------------- gateway --

/**
 * Starts infergate with a config built from OPTS and waits for /healthz == 200.
 *   models:   { id: { cmd, aliases, unlisted, ... } }
 *   extra:    top-level keys merged into the config (limits, groups, ...)
 *   yamlText: use this YAML verbatim instead
 *   env:      extra environment variables for the gateway
 *   host:     the address it listens on and is reached at (default 127.0.0.1)
 *   prefix:   a command line it runs under, e.g. ['ip', 'netns', 'exec', NS] (which execs it,
 *             so the PID is infergate's)
 *   args:     extra command-line arguments of `serve`
 * Registers cleanup with t.after: the gateway and every child it was seen to have are killed.
 */
export async function startGateway(t, { models = {}, extra = {}, yamlText, env = {}, healthTimeoutMs = deadline(15000), host = '127.0.0.1', prefix = [], args = [] } = {}) {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ig-e2e-'));
  const port = await freePort();
  const startPort = await randomStartPort(Math.max(4, Object.keys(models).length + 2));
  const config = { healthCheckTimeout: 30 * SLOW, startPort, ...extra, models };
  const configPath = path.join(dir, 'config.yaml');
  await fsp.writeFile(configPath, yamlText ?? toYaml(config));

  const argv = [...prefix, INFERGATE, 'serve', '-c', configPath, '--listen', `${host}:${port}`, ...args];
  const child = spawn(argv[0], argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=0',
      INFERGATE_STATE_DIR: dir, // the database and secret of this gateway only
      ...env,
    },
  });
  live.add(child);
  const chunks = [];
  child.stdout.on('data', (d) => chunks.push(d));
  child.stderr.on('data', (d) => chunks.push(d));
  const exit = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });
  child.once('error', (e) => chunks.push(Buffer.from(`spawn error: ${e.message}\n`)));

  const seenChildren = new Set();
  const gw = {
    dir,
    port,
    startPort,
    configPath,
    config,
    child,
    pid: child.pid,
    host,
    url: `http://${host}:${port}`,
    baseURL: `http://${host}:${port}/v1`,
    dir, // the gateway's temporary directory: config.yaml, its database and secret
    configPath,
    pid: child.pid,
    exit,
    exited: false,
    output: () => Buffer.concat(chunks).toString('utf8'),
    /** Current children of the gateway (also remembered for the cleanup). */
    children() {
      const pids = childPids(child.pid);
      for (const p of pids) seenChildren.add(p);
      return pids;
    },
    seenChildren,
    client(opts = {}) {
      return new OpenAI({ apiKey: 'sk-test', baseURL: gw.baseURL, maxRetries: 0, timeout: deadline(60000), ...opts });
    },
    request(pathname, opts = {}) {
      return rawRequest({ host, port, path: pathname, ...opts });
    },
    async json(pathname, opts = {}) {
      const r = await rawRequest({ host, port, path: pathname, ...opts });
      if (r.status !== 200) throw new Error(`GET ${pathname} -> ${r.status}: ${r.text}`);
      return JSON.parse(r.text);
    },
    /** SIGTERM (SIGKILL after GRACEMS); resolves {code, signal, killed} of the gateway's exit. */
    async stop(graceMs = deadline(12000)) {
      gw.children();
      const wasRunning = child.exitCode === null && child.signalCode === null;
      const killed = wasRunning ? await killProc(child, graceMs) : false;
      gw.exited = true;
      // The gateway must have stopped its children; if it did not, clean up so nothing leaks
      // (tests that care assert on this themselves before stop()).
      for (const p of seenChildren) {
        if (!pidGoneOrZombie(p)) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {}
        }
      }
      return { ...(await exit), stoppedByUs: wasRunning, killed };
    },
  };
  exit.then(() => (gw.exited = true));

  // Remember the gateway's children as they appear, so cleanup can find orphans.
  const watcher = setInterval(() => {
    if (!gw.exited) gw.children();
  }, 50);
  watcher.unref();

  t.after(async () => {
    clearInterval(watcher);
    try {
      const st = await gw.stop();
      if (process.env.IG_E2E_LOG_DIR) {
        await fsp.writeFile(path.join(process.env.IG_E2E_LOG_DIR, `infergate-${port}.log`), gw.output());
      }
      // Every test ends with a SIGTERM: the gateway must exit cleanly by itself, and a
      // sanitizer build must not have reported anything.
      const problems = [];
      if (/ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:/.test(gw.output())) problems.push('a sanitizer report');
      if (st.killed) problems.push(`no exit within ${deadline(12000)} ms of SIGTERM (SIGKILLed)`);
      else if (st.stoppedByUs && (st.code !== 0 || st.signal !== null)) problems.push(`exit ${st.code} / ${st.signal} after SIGTERM`);
      if (problems.length) throw attachOutput(new Error(`infergate cleanup: ${problems.join(', ')}`), gw, 20000);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  try {
    await waitFor(
      async () => {
        if (gw.exited) throw new Error(`infergate exited early: ${JSON.stringify(await exit)}`);
        const r = await rawRequest({ host, port, path: '/healthz', timeoutMs: 1000 });
        return r.status === 200;
      },
      { timeoutMs: healthTimeoutMs, intervalMs: 25, message: 'GET /healthz == 200' },
    );
  } catch (e) {
    attachOutput(e, gw);
    throw e;
  }
  return gw;
}

/**
 * Wraps a test body so that on failure the gateway's output is appended to the error.
 * Usage: test('x', (t) => withGateway(t, opts, async (gw) => { ... }))
 */
export async function withGateway(t, opts, body) {
  const gw = await startGateway(t, opts);
  try {
    return await body(gw);
  } catch (e) {
    attachOutput(e, gw);
    throw e;
  }
}

/** Appends the tail of the gateway's stderr to an error's message (once). */
export function attachOutput(e, gw, maxChars = 6000) {
  if (!(e instanceof Error) || e.igOutputAttached) return e;
  const out = gw.output();
  const tail = out.length > maxChars ? `...${out.slice(-maxChars)}` : out;
  try {
    e.message += `\n---- infergate output (tail) ----\n${tail}\n---- end ----`;
    e.igOutputAttached = true;
  } catch {}
  return e;
}

/**
 * For a describe() sharing one gateway: wraps a test body so that a failure carries the
 * output of the gateway GETGW() returns. Use: const guarded = guardWith(() => gw).
 */
export function guardWith(getGw) {
  return (body) => async () => {
    try {
      await body();
    } catch (e) {
      throw attachOutput(e, getGw());
    }
  };
}

// ------------------------------------------------------------------ HTTP --

/**
 * One HTTP request on a fresh connection. Resolves {status, headers, text, json} (json is
 * undefined if the body is not JSON). Never rejects because the server answered early and
 * closed while the body was still being sent, as long as a response arrived.
 */
export function rawRequest({ port, host = '127.0.0.1', method = 'GET', path: p = '/', headers = {}, body, timeoutMs = deadline(30000) }) {
  return new Promise((resolve, reject) => {
    const buf = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const hdrs = { ...headers };
    if (buf !== undefined) {
      if (!Object.keys(hdrs).some((k) => k.toLowerCase() === 'content-type')) hdrs['content-type'] = 'application/json';
      hdrs['content-length'] = buf.length;
    }
    let settled = false;
    const req = http.request({ host, port, method, path: p, headers: hdrs, agent: false, timeout: timeoutMs }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        settled = true;
        const text = Buffer.concat(parts).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', (e) => {
        if (!settled) reject(e);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${p} timed out after ${timeoutMs} ms`)));
    req.on('error', (e) => {
      if (!settled) reject(e);
    });
    if (buf !== undefined) {
      // Write in pieces so a server that answers early is not fed the whole body at once.
      const piece = 1 << 20;
      let off = 0;
      const pump = () => {
        while (off < buf.length) {
          const ok = req.write(buf.subarray(off, off + piece));
          off += piece;
          if (!ok) return req.once('drain', pump);
        }
        req.end();
      };
      pump();
    } else {
      req.end();
    }
  });
}

/**
 * Streams a POST and hands each SSE `data:` payload to onEvent as it arrives. Resolves
 * {status, headers, events: [string], raw} when the response ends.
 */
export function rawStream({ port, path: p, body, timeoutMs = deadline(30000), onEvent }) {
  return new Promise((resolve, reject) => {
    const buf = Buffer.from(JSON.stringify(body));
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: p, agent: false, timeout: timeoutMs,
        headers: { 'content-type': 'application/json', 'content-length': buf.length } },
      (res) => {
        let raw = '';
        let pending = '';
        const events = [];
        res.setEncoding('utf8');
        res.on('data', (d) => {
          raw += d;
          pending += d;
          let idx;
          while ((idx = pending.search(/\r?\n\r?\n/)) >= 0) {
            const block = pending.slice(0, idx);
            pending = pending.slice(idx).replace(/^\r?\n\r?\n/, '');
            const data = block
              .split(/\r?\n/)
              .filter((l) => l.startsWith('data:'))
              .map((l) => l.slice(5).replace(/^ /, ''))
              .join('\n');
            if (block.split(/\r?\n/).some((l) => l.startsWith('data:'))) {
              events.push(data);
              onEvent?.(data, req);
            }
          }
        });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, events, raw, rest: pending }));
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('response aborted')));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`stream ${p} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(buf);
  });
}

/** Asserts BODY has OpenAI's error shape; returns body.error. */
export function assertErrorShape(assert, res, status) {
  assert.equal(res.status, status, `expected HTTP ${status}, got ${res.status}: ${res.text}`);
  assert.match(String(res.headers['content-type']), /application\/json/, 'error Content-Type');
  assert.ok(res.json && typeof res.json === 'object', `error body is JSON: ${res.text}`);
  const err = res.json.error;
  assert.ok(err && typeof err === 'object', `body has .error: ${res.text}`);
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0, 'error.message is not empty');
  assert.equal(typeof err.type, 'string');
  assert.ok(err.code === null || typeof err.code === 'string', `error.code is string|null: ${res.text}`);
  return err;
}

// ----------------------------------------------------------- fake events --

/** fake-llama-server's --events-file as parsed JSON lines ([] if the file is absent). */
export function readEvents(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT') return [];
    throw e;
  }
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // a line being written right now; ignore the partial tail
    }
  }
  return out;
}

/** Polls the events file until PRED matches an event; returns that event. */
export function waitForEvent(file, pred, { timeoutMs = deadline(10000), message = 'event' } = {}) {
  return waitFor(() => readEvents(file).find(pred), { timeoutMs, intervalMs: 25, message: `${message} in ${file}` });
}
