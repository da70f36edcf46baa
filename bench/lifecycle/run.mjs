#!/usr/bin/env node
// Lifecycle benchmark (issue 5): what infergate adds to a model start, and whether a model
// loading slows the models already serving.
//
//   node bench/lifecycle/run.mjs          (make bench runs it; IG_BIN_DIR picks the build)
//
// 1. Swap overhead. infergate-engine on a tiny mkgguf model. Direct: spawn the engine, poll
//    /health every 1 ms until 200 (its own load time), then the first token of a 1-token
//    stream (its own warm TTFT). Through infergate: with the model unloaded, the time from
//    sending a 1-token streamed chat request to its first SSE event (cold TTFT). Overhead =
//    cold TTFT - (load time + warm TTFT), medians of BENCH_LIFE_STARTS runs each. Target
//    <= 30 ms.
// 2. Hot model during loads. Two fake-llama-server models that may run together; BENCH_LIFE_
//    CLIENTS keep-alive clients send small chat requests to the hot one for BENCH_LIFE_SECONDS,
//    once with nothing else happening and once while another loop loads and unloads the
//    second model (which answers 503 "loading" for 300 ms after each start), interleaved for
//    BENCH_LIFE_ROUNDS rounds. Target: rps during loads >= 0.95 x rps without.
//
// Output: BENCH/MEDIAN/RESULT/TARGET lines like the other benchmarks. Everything on
// 127.0.0.1, every loop bounded in time; only processes started here are stopped, by PID.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const BIN = path.resolve(ROOT, process.env.IG_BIN_DIR || 'build');
const STARTS = Number(process.env.BENCH_LIFE_STARTS || 7);
const ROUNDS = Number(process.env.BENCH_LIFE_ROUNDS || 3);
const SECONDS = Number(process.env.BENCH_LIFE_SECONDS || 4);
const CLIENTS = Number(process.env.BENCH_LIFE_CLIENTS || 16);
const children = new Set();

function cleanup() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Number(process.hrtime.bigint()) / 1e6;

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function start(file, args) {
  const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr.on('data', () => {});
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function request(port, method, p, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent,
      headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {} }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(parts).toString() }));
    });
    req.setTimeout(30000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

/** Sends a streamed request and resolves with the ms until the first SSE data line. */
function firstEventMs(port, p, body) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const t0 = now();
    let done = false;
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: p, agent: false,
      headers: { 'content-type': 'application/json', 'content-length': data.length } }, (res) => {
      res.on('data', (d) => {
        if (!done && d.toString().includes('data:')) {
          done = true;
          resolve(now() - t0);
        }
      });
      res.on('end', () => !done && reject(new Error(`no event (status ${res.statusCode})`)));
    });
    req.setTimeout(60000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

async function waitUntil(fn, ms, what, every = 1) {
  const end = now() + ms;
  while (now() < end) {
    try {
      if (await fn()) return;
    } catch {}
    await sleep(every);
  }
  throw new Error(`timed out: ${what}`);
}

async function swapOverhead(dir) {
  const model = path.join(dir, 'tiny.gguf');
  const mk = spawnSync(path.join(BIN, 'mkgguf'), [model, '--preset', 'tiny'], { encoding: 'utf8' });
  if (mk.status !== 0) throw new Error(`mkgguf: ${mk.stderr}`);
  const engineArgs = ['-c', '512', '-np', '1', '-t', '1'];
  const loads = [];
  const warm = [];
  for (let i = 0; i < STARTS; i++) {
    const port = await freePort();
    const t0 = now();
    const eng = start(path.join(BIN, 'infergate-engine'), ['-m', model, '--port', String(port), ...engineArgs]);
    await waitUntil(async () => (await request(port, 'GET', '/health')).status === 200, 30000, 'engine health');
    loads.push(now() - t0);
    warm.push(await firstEventMs(port, '/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 1, stream: true }));
    await stop(eng);
    console.log(`BENCH swap direct run=${i} load_ms=${loads.at(-1).toFixed(1)} warm_ttft_ms=${warm.at(-1).toFixed(1)}`);
  }
  const gwPort = await freePort();
  const startPort = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral ports
  const cfg = path.join(dir, 'swap.yaml');
  fs.writeFileSync(cfg, `startPort: ${startPort}\nmodels:\n  tiny:\n    cmd: ${path.join(BIN, 'infergate-engine')} -m ${model} --port \${PORT} ${engineArgs.join(' ')}\n`);
  const gw = start(path.join(BIN, 'infergate'), ['serve', '-c', cfg, '--listen', `127.0.0.1:${gwPort}`]);
  await waitUntil(async () => (await request(gwPort, 'GET', '/healthz')).status === 200, 10000, 'gateway');
  const cold = [];
  for (let i = 0; i < STARTS; i++) {
    await request(gwPort, 'POST', '/models/unload', { model: 'tiny' });
    await waitUntil(async () => JSON.parse((await request(gwPort, 'GET', '/status')).text).children === 0, 10000, 'unloaded', 5);
    cold.push(await firstEventMs(gwPort, '/v1/chat/completions', { model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1, stream: true }));
    console.log(`BENCH swap infergate run=${i} cold_ttft_ms=${cold.at(-1).toFixed(1)}`);
  }
  await stop(gw);
  const own = median(loads) + median(warm);
  const overhead = median(cold) - own;
  console.log(`MEDIAN swap direct load_ms=${median(loads).toFixed(1)} warm_ttft_ms=${median(warm).toFixed(1)}`);
  console.log(`MEDIAN swap infergate cold_ttft_ms=${median(cold).toFixed(1)}`);
  console.log(`RESULT swap_overhead_ms=${overhead.toFixed(1)}`);
  console.log(`TARGET swap_overhead value=${overhead.toFixed(1)}ms goal=<=30ms ${overhead <= 30 ? 'MET' : 'NOT_MET'}`);
}

/** Runs CLIENTS request loops on MODEL for SECONDS; resolves requests per second. */
async function loadHot(port, model) {
  const body = { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 };
  const end = now() + SECONDS * 1000;
  let n = 0;
  let errors = 0;
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (now() < end) {
      const r = await request(port, 'POST', '/v1/chat/completions', body).catch(() => ({ status: 0 }));
      if (r.status === 200) n++;
      else errors++;
    }
  }));
  if (errors > 0) throw new Error(`${errors} failed requests on the hot model`);
  return n / SECONDS;
}

async function hotDuringLoads(dir) {
  const fake = path.join(BIN, 'fake-llama-server');
  const gwPort = await freePort();
  const startPort = 20000 + Math.floor(Math.random() * 12000);
  const cfg = path.join(dir, 'hot.yaml');
  fs.writeFileSync(cfg, [
    `startPort: ${startPort}`,
    'groups:', '  both: {swap: false, exclusive: false, members: [hot, cold]}',
    'models:',
    `  hot:\n    cmd: ${fake} --port \${PORT} --model hot`,
    `  cold:\n    cmd: ${fake} --port \${PORT} --model cold --startup-ms 300`,
    '',
  ].join('\n'));
  const gw = start(path.join(BIN, 'infergate'), ['serve', '-c', cfg, '--listen', `127.0.0.1:${gwPort}`]);
  await waitUntil(async () => (await request(gwPort, 'GET', '/healthz')).status === 200, 10000, 'gateway');
  await request(gwPort, 'POST', '/models/load', { model: 'hot' });
  await loadHot(gwPort, 'hot'); // warm-up
  const base = [];
  const during = [];
  let loads = 0;
  for (let r = 0; r < ROUNDS; r++) {
    base.push(await loadHot(gwPort, 'hot'));
    let cycling = true;
    const cycler = (async () => {
      while (cycling) {
        const l = await request(gwPort, 'POST', '/models/load', { model: 'cold' });
        if (l.status !== 200) throw new Error(`load of cold: ${l.status} ${l.text}`);
        loads++;
        await request(gwPort, 'POST', '/models/unload', { model: 'cold' });
        await waitUntil(async () => JSON.parse((await request(gwPort, 'GET', '/status')).text).children === 1, 10000, 'cold unloaded', 5);
      }
    })();
    during.push(await loadHot(gwPort, 'hot'));
    cycling = false;
    await cycler;
    console.log(`BENCH hot round=${r} rps_idle=${base.at(-1).toFixed(0)} rps_during_loads=${during.at(-1).toFixed(0)} loadavg=${os.loadavg().map((x) => x.toFixed(2)).join('/')}`);
  }
  await stop(gw);
  const ratio = median(during) / median(base);
  console.log(`MEDIAN hot rps_idle=${median(base).toFixed(0)} rps_during_loads=${median(during).toFixed(0)} loads=${loads}`);
  console.log(`RESULT hot_rps_ratio=${ratio.toFixed(3)}`);
  console.log(`TARGET hot_rps_during_loads value=${ratio.toFixed(3)} goal=>=0.95 ${ratio >= 0.95 ? 'MET' : 'NOT_MET'}`);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'infergate-bench-life-'));
try {
  console.log(`-- lifecycle: swap overhead (${STARTS} starts) and hot model during loads (${ROUNDS} rounds of ${SECONDS} s, ${CLIENTS} clients)`);
  await swapOverhead(dir);
  await hotDuringLoads(dir);
} finally {
  cleanup();
  fs.rmSync(dir, { recursive: true, force: true });
}
