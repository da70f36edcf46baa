#!/usr/bin/env node
// Streaming load generator for the proxy benchmark.
//
// Opens N concurrent SSE chat completions (stream:true, max_tokens T) against one URL with
// a keep-alive agent, first a warm-up round (so every path has its connections open, both
// client->proxy and proxy->upstream), then the measured round, whose starts are spread over
// --ramp-ms (one stream per millisecond by default; all N run together once the ramp ends
// as long as a stream lasts longer than the ramp). Per stream it records the
// time to the response head, to the first body byte (TTFB) and to the end of the body, and
// checks that the stream carried T token events and ended with "data: [DONE]".
//
// Bounded: the whole run is cancelled after --timeout-s seconds (exit 1).
//
// Usage: node streams.mjs --url http://127.0.0.1:P/v1/chat/completions [--label NAME] [--model M]
//        [--streams 256] [--tokens 200] [--warmup-tokens 2] [--ramp-ms 256] [--timeout-s 60]
// Prints one greppable line:
//   STREAMS label=NAME n=256 ok=256 ttfb_p50_ms=... ttfb_p99_ms=... total_p50_ms=... ...
import http from 'node:http';
import { f, nowMs, parseFlags, pct } from '../lib.mjs';

function parseArgs(argv) {
  const o = parseFlags(argv, 'streams.mjs', {
    '--url': ['url', 'string'], '--label': ['label', 'string'], '--model': ['model', 'string'],
    '--streams': ['streams', 'number'], '--tokens': ['tokens', 'number'],
    '--warmup-tokens': ['warmupTokens', 'number'], '--timeout-s': ['timeoutS', 'number'],
    '--ramp-ms': ['rampMs', 'number'],
  }, { url: '', model: 'bench', label: 'target', streams: 256, tokens: 200, warmupTokens: 2,
      rampMs: 256, timeoutS: 60 });
  if (!o.url) {
    console.error('streams.mjs: --url is required');
    process.exit(2);
  }
  return o;
}

const opt = parseArgs(process.argv);
const target = new URL(opt.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: opt.streams, maxFreeSockets: opt.streams });

// One streamed request; resolves with its timings (never rejects).
function oneStream(maxTokens) {
  const body = JSON.stringify({
    model: opt.model,
    stream: true,
    max_tokens: maxTokens,
    messages: [{ role: 'user', content: 'hi' }],
  });
  return new Promise((resolve) => {
    const r = { ok: false, status: 0, head: NaN, ttfb: NaN, total: NaN, events: 0, done: false, error: '' };
    const t0 = nowMs();
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
        r.head = nowMs() - t0;
        r.status = res.statusCode;
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          if (Number.isNaN(r.ttfb)) r.ttfb = nowMs() - t0;
          const lines = (tail + chunk).split('\n');
          tail = lines.pop();
          for (const line of lines) {
            if (!line.startsWith('data:')) continue;
            if (line.trim() === 'data: [DONE]') r.done = true;
            else r.events++;
          }
        });
        res.on('end', () => {
          r.total = nowMs() - t0;
          // Token events: one per token; the fake may add a final (finish_reason/usage) event.
          r.ok = r.status === 200 && r.done && r.events >= maxTokens;
          if (!r.ok) r.error = `status=${r.status} events=${r.events} done=${r.done}`;
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

// Starts the streams spread evenly over RAMP_MS (0: all in one burst), so that each request
// leaves while the client's event loop is not busy issuing the others.
async function round(maxTokens, rampMs) {
  const t0 = nowMs();
  const cpu0 = process.cpuUsage();
  const all = [];
  for (let i = 0; i < opt.streams; i++) {
    const due = t0 + (rampMs * i) / opt.streams;
    const wait = due - nowMs();
    if (wait >= 1) await new Promise((r) => setTimeout(r, wait));
    all.push(oneStream(maxTokens));
  }
  const results = await Promise.all(all);
  const cpu = process.cpuUsage(cpu0);
  return { results, wall: nowMs() - t0, cpuMs: (cpu.user + cpu.system) / 1000 };
}


const killer = setTimeout(() => {
  console.log(`STREAMS label=${opt.label} n=${opt.streams} ok=0 error=timeout_after_${opt.timeoutS}s`);
  process.exit(1);
}, opt.timeoutS * 1000);
killer.unref();

const warm = await round(opt.warmupTokens, 0);
const warmFailed = warm.results.filter((r) => !r.ok);
if (warmFailed.length > 0) {
  console.log(`STREAMS label=${opt.label} n=${opt.streams} ok=0 error=warmup_failed ` +
              `failed=${warmFailed.length} first_error="${warmFailed[0].error}"`);
  process.exit(1);
}
const m = await round(opt.tokens, opt.rampMs);
clearTimeout(killer);
agent.destroy();

const ok = m.results.filter((r) => r.ok);
const bad = m.results.filter((r) => !r.ok);
const sorted = (key) => ok.map((r) => r[key]).sort((a, b) => a - b);
const head = sorted('head');
const ttfb = sorted('ttfb');
const total = sorted('total');
console.log(
  `STREAMS label=${opt.label} n=${opt.streams} ok=${ok.length} failed=${bad.length} tokens=${opt.tokens} ` +
  `head_p50_ms=${f(pct(head, 50))} ` +
  `ttfb_p50_ms=${f(pct(ttfb, 50))} ttfb_p99_ms=${f(pct(ttfb, 99))} ttfb_max_ms=${f(pct(ttfb, 100))} ` +
  `total_p50_ms=${f(pct(total, 50))} total_p99_ms=${f(pct(total, 99))} total_max_ms=${f(pct(total, 100))} ` +
  `wall_ms=${f(m.wall)} client_cpu_ms=${f(m.cpuMs)}` + (bad.length > 0 ? ` first_error="${bad[0].error}"` : ''),
);
process.exit(bad.length > 0 ? 1 : 0);
