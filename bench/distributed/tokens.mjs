#!/usr/bin/env node
// Closed-loop streaming load generator for the distributed benchmark.
//
// N clients each send streamed chat completions (stream:true, max_tokens T) one after
// another, over a keep-alive agent, for --warmup-s + --seconds seconds. Every SSE event
// that carries content counts as one token; the tokens whose event arrived inside the
// measured window (after the warm-up) give the aggregate completion tokens per second.
// Requests still running when the window closes finish (they are bounded by T tokens) but
// their later tokens are not counted. Per request it records the time to the first token
// and to the end of the stream, and checks that T tokens and "data: [DONE]" came.
//
// Bounded: the whole run is cancelled after --timeout-s seconds (exit 1).
//
// Usage: node tokens.mjs --url http://127.0.0.1:P/v1/chat/completions --model M
//        [--label NAME] [--clients 16] [--tokens 50] [--seconds 8] [--warmup-s 2]
//        [--timeout-s 60]
// Prints one greppable line:
//   TOKENS label=NAME clients=16 requests=... ok=... failed=... tok_s=... ttft_p50_ms=...
import http from 'node:http';
import { f, nowMs, parseFlags, pct } from '../lib.mjs';

function parseArgs(argv) {
  const o = parseFlags(argv, 'tokens.mjs', {
    '--url': ['url', 'string'], '--label': ['label', 'string'], '--model': ['model', 'string'],
    '--clients': ['clients', 'number'], '--tokens': ['tokens', 'number'],
    '--seconds': ['seconds', 'number'], '--warmup-s': ['warmupS', 'number'],
    '--timeout-s': ['timeoutS', 'number'],
  }, { url: '', model: 'bench', label: 'target', clients: 16, tokens: 50, seconds: 8,
      warmupS: 2, timeoutS: 60 });
  if (!o.url || !(o.clients >= 1) || !(o.tokens >= 1) || !(o.seconds > 0) || !(o.warmupS >= 0)) {
    console.error('tokens.mjs: --url is required; --clients, --tokens, --seconds must be positive');
    process.exit(2);
  }
  return o;
}

const opt = parseArgs(process.argv);
const target = new URL(opt.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: opt.clients, maxFreeSockets: opt.clients });
const body = JSON.stringify({
  model: opt.model,
  stream: true,
  max_tokens: opt.tokens,
  messages: [{ role: 'user', content: 'hi' }],
});

const t0 = nowMs();
const winStart = t0 + opt.warmupS * 1000;
const winEnd = winStart + opt.seconds * 1000;
let windowTokens = 0;

// Counts the content-bearing events in one SSE line; returns 1 for a token, 0 otherwise.
function tokenOf(line) {
  if (!line.startsWith('data:')) return 0;
  const data = line.slice(5).trim();
  if (data === '[DONE]' || data === '') return 0;
  try {
    const c = JSON.parse(data).choices?.[0];
    return c?.delta?.content ? 1 : 0;
  } catch {
    return 0;
  }
}

// One streamed request; resolves with its timings (never rejects).
function oneStream() {
  return new Promise((resolve) => {
    const r = { ok: false, start: nowMs(), ttft: NaN, total: NaN, tokens: 0, done: false, error: '' };
    let tail = ''; // carries a partial line between chunks
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        agent,
        headers: {
          'Content-Type': 'application/json',
          Accept: 'text/event-stream',
          'Content-Length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          const lines = (tail + chunk).split('\n');
          tail = lines.pop();
          const now = nowMs();
          for (const line of lines) {
            if (line.trim() === 'data: [DONE]') r.done = true;
            const n = tokenOf(line);
            if (n === 0) continue;
            if (Number.isNaN(r.ttft)) r.ttft = now - r.start;
            r.tokens += n;
            if (now >= winStart && now < winEnd) windowTokens += n;
          }
        });
        res.on('end', () => {
          r.total = nowMs() - r.start;
          r.ok = res.statusCode === 200 && r.done && r.tokens >= opt.tokens;
          if (!r.ok) r.error = `status=${res.statusCode} tokens=${r.tokens} done=${r.done}`;
          resolve(r);
        });
        res.on('error', (e) => {
          r.error = String(e);
          resolve(r);
        });
      },
    );
    req.on('error', (e) => {
      r.error = String(e);
      resolve(r);
    });
    req.end(body);
  });
}

// One client: requests back to back until the window closes. Only requests started inside
// the window count in the latency figures (the warm-up ones open connections).
async function client(results) {
  while (nowMs() < winEnd) {
    const r = await oneStream();
    if (r.start >= winStart || !r.ok) results.push(r);
  }
}


const killer = setTimeout(() => {
  console.log(`TOKENS label=${opt.label} clients=${opt.clients} ok=0 error=timeout_after_${opt.timeoutS}s`);
  process.exit(1);
}, opt.timeoutS * 1000);
killer.unref();

const results = [];
const cpu0 = process.cpuUsage();
await Promise.all(Array.from({ length: opt.clients }, () => client(results)));
const cpu = process.cpuUsage(cpu0);
clearTimeout(killer);
agent.destroy();

const ok = results.filter((r) => r.ok);
const bad = results.filter((r) => !r.ok);
const sorted = (key) => ok.map((r) => r[key]).sort((a, b) => a - b);
const ttft = sorted('ttft');
const total = sorted('total');
console.log(
  `TOKENS label=${opt.label} clients=${opt.clients} tokens=${opt.tokens} requests=${results.length} ` +
  `ok=${ok.length} failed=${bad.length} window_tokens=${windowTokens} ` +
  `tok_s=${f(windowTokens / opt.seconds)} ` +
  `ttft_p50_ms=${f(pct(ttft, 50))} ttft_p99_ms=${f(pct(ttft, 99))} ` +
  `total_p50_ms=${f(pct(total, 50))} total_p99_ms=${f(pct(total, 99))} ` +
  `client_cpu_ms=${f((cpu.user + cpu.system) / 1000)}` +
  (bad.length > 0 ? ` first_error="${bad[0].error}"` : ''),
);
process.exit(bad.length > 0 || ok.length === 0 ? 1 : 0);
