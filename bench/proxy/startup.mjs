#!/usr/bin/env node
// Start-up time and idle memory of infergate.
//
// Starts `BIN serve -c CONFIG --listen 127.0.0.1:PORT` RUNS times (one port per run), polls
// GET /healthz every millisecond until it answers 200, and records spawn->200 time and the
// process's VmRSS right after. Each instance is stopped (SIGTERM, SIGKILL after 5 s) before
// the next starts; every child is killed if this script exits early. Bounded by --timeout-s
// per start.
//
// Usage: node startup.mjs --bin build/infergate --config FILE --ports 20001,20002,...
//        [--timeout-s 10]
// Prints: STARTUP runs=5 ok=5 startup_p50_ms=... startup_min_ms=... startup_max_ms=...
//         rss_p50_kib=... exec_baseline_p50_ms=... (spawn -> exit of `BIN version`)
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';

const o = { bin: '', config: '', ports: [], timeoutS: 10 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const v = process.argv[++i];
  if (a === '--bin') o.bin = v;
  else if (a === '--config') o.config = v;
  else if (a === '--ports') o.ports = v.split(',').map(Number);
  else if (a === '--timeout-s') o.timeoutS = Number(v);
  else {
    console.error(`startup.mjs: unknown argument ${a}`);
    process.exit(2);
  }
}
if (!o.bin || !o.config || o.ports.length === 0) {
  console.error('startup.mjs: --bin, --config and --ports are required');
  process.exit(2);
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function healthz(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => {
      req.destroy();
      resolve(0);
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function vmrssKib(pid) {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

const startups = [];
const rss = [];
let stderrTail = '';
for (const port of o.ports) {
  const t0 = nowMs();
  const child = spawn(o.bin, ['serve', '-c', o.config, '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  child.stderr.on('data', (d) => {
    stderrTail = (stderrTail + d).slice(-2000);
  });
  let ms = NaN;
  while (nowMs() - t0 < o.timeoutS * 1000 && child.exitCode === null) {
    if ((await healthz(port)) === 200) {
      ms = nowMs() - t0;
      break;
    }
    await sleep(1);
  }
  if (Number.isFinite(ms)) {
    startups.push(ms);
    rss.push(vmrssKib(child.pid));
  }
  await stop(child);
  children.delete(child);
}

// Baseline: spawn -> exit of `BIN version` (same binary and libraries, no server), i.e. what
// process creation and dynamic loading alone cost on this machine.
const baseline = [];
for (let i = 0; i < o.ports.length; i++) {
  const t0 = nowMs();
  const child = spawn(o.bin, ['version'], { stdio: 'ignore' });
  children.add(child);
  await new Promise((resolve) => child.once('exit', resolve));
  children.delete(child);
  baseline.push(nowMs() - t0);
}

const med = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};
const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'nan');
console.log(
  `STARTUP runs=${o.ports.length} ok=${startups.length} startup_p50_ms=${f(med(startups))} ` +
  `startup_min_ms=${f(Math.min(...startups))} startup_max_ms=${f(Math.max(...startups))} ` +
  `rss_p50_kib=${f(med(rss))} exec_baseline_p50_ms=${f(med(baseline))}`,
);
if (startups.length !== o.ports.length) {
  console.error(`startup.mjs: ${o.ports.length - startups.length} start(s) never answered /healthz 200`);
  if (stderrTail) console.error(stderrTail);
  process.exit(1);
}
