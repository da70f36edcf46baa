// Shared by the infergate-engine tests: writing test models, starting engines and stopping
// them with a check that they exited cleanly (status 0, no sanitizer report).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import OpenAI from 'openai';
import { BIN_DIR, deadline, freePort, rawRequest, waitFor } from './harness.mjs';

export const ENGINE = path.join(BIN_DIR, 'infergate-engine');
export const MKGGUF = path.join(BIN_DIR, 'mkgguf');
export const SANITIZER = /ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:/;

const engines = new Set(); // every engine started and not yet stopped

/** Runs a program to completion; resolves {code, signal, output}. */
export function runToExit(file, args, timeoutMs = deadline(30000)) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks = [];
    child.stdout.on('data', (d) => chunks.push(d));
    child.stderr.on('data', (d) => chunks.push(d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${file} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output: Buffer.concat(chunks).toString('utf8') });
    });
  });
}

/** Writes a tiny random-weight model to OUT with mkgguf (EXTRA flags appended). */
export async function makeTinyModel(out, extra = []) {
  const r = await runToExit(MKGGUF, [out, '--preset', 'tiny', ...extra]);
  assert.equal(r.code, 0, `mkgguf: ${r.output}`);
}

/** Spawns an engine on MODEL with extra ARGS on a free port without waiting for it. */
export async function spawnEngine(model, args = []) {
  const port = await freePort();
  const child = spawn(ENGINE, ['-m', model, '--port', String(port), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=0' },
  });
  const chunks = [];
  child.stdout.on('data', (d) => chunks.push(d));
  child.stderr.on('data', (d) => chunks.push(d));
  const exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const eng = {
    port,
    child,
    exit,
    exited: false,
    output: () => Buffer.concat(chunks).toString('utf8'),
    client: () => new OpenAI({ apiKey: 'none', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0, timeout: deadline(60000) }),
    request: (p, opts = {}) => rawRequest({ port, path: p, ...opts }),
    post: (p, body) => rawRequest({ port, path: p, method: 'POST', body }),
  };
  engines.add(eng);
  exit.then(() => (eng.exited = true));
  return eng;
}

/** Starts an engine on MODEL with extra ARGS and waits for /health 200. */
export async function startEngine(model, args = []) {
  const eng = await spawnEngine(model, args);
  await waitFor(
    async () => {
      if (eng.exited) throw new Error(`engine exited early: ${eng.output()}`);
      const r = await rawRequest({ port: eng.port, path: '/health', timeoutMs: 1000 });
      return r.status === 200;
    },
    { timeoutMs: deadline(30000), message: 'engine /health == 200' },
  );
  return eng;
}

/** SIGTERMs an engine (SIGKILL after a grace period); checks it exited 0 without sanitizer reports. */
export async function stopEngine(eng) {
  engines.delete(eng);
  if (eng.child.exitCode === null && eng.child.signalCode === null) eng.child.kill('SIGTERM');
  const timer = setTimeout(() => eng.child.kill('SIGKILL'), deadline(10000));
  const st = await eng.exit;
  clearTimeout(timer);
  assert.equal(st.code, 0, `engine exit after SIGTERM: ${JSON.stringify(st)}\n${eng.output().slice(-4000)}`);
  assert.doesNotMatch(eng.output(), SANITIZER, eng.output().slice(-8000));
}

/** Stops every engine still running; throws the first problem after stopping them all. */
export async function stopAllEngines() {
  const problems = [];
  for (const eng of [...engines]) {
    try {
      await stopEngine(eng);
    } catch (e) {
      problems.push(e);
    }
  }
  if (problems.length) throw problems[0];
}
