// Helpers of the distributed-mode tests (docs/DISTRIBUTED.md): nats-server processes,
// `infergate worker` processes serving fake-llama-server models, gateways with `nats:` and no
// models of their own, and the checks on what the gateway lists. Every process is killed by
// PID (with every child it was seen to have) by the test's after hook.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  INFERGATE, attachOutput, childPids, deadline, fakeCmd, freePort, pidGone, randomStartPort,
  readEvents, startGateway, toYaml, waitFor,
} from './harness.mjs';

export const MODEL = 'm';
export const MESSAGES = [{ role: 'user', content: 'hello over the bus' }];

/** Spawns CMD ARGS, keeping its output; the returned handle kills it (and children it was
 * seen to have) by PID. */
export function spawnTracked(cmd, args, env = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const chunks = [];
  child.stdout.on('data', (d) => chunks.push(d));
  child.stderr.on('data', (d) => chunks.push(d));
  child.once('error', (e) => chunks.push(Buffer.from(`spawn error: ${e.message}\n`)));
  const exit = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const seen = new Set();
  const watcher = setInterval(() => {
    if (child.exitCode === null && child.signalCode === null) for (const p of childPids(child.pid)) seen.add(p);
  }, 50);
  watcher.unref();
  const h = {
    child,
    pid: child.pid,
    exit,
    seen,
    output: () => Buffer.concat(chunks).toString('utf8'),
    isRunning: () => child.exitCode === null && child.signalCode === null,
    /** Sends SIG and waits for the exit; kills leftover children by PID. */
    async kill(sig = 'SIGKILL', graceMs = deadline(5000)) {
      clearInterval(watcher);
      for (const p of childPids(child.pid)) seen.add(p);
      if (h.isRunning()) {
        try {
          process.kill(child.pid, sig);
        } catch {}
        const timer = setTimeout(() => {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {}
        }, graceMs);
        await exit;
        clearTimeout(timer);
      }
      for (const p of seen) {
        if (!pidGone(p)) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {}
        }
      }
    },
  };
  return h;
}

/** True once something accepts TCP connections on HOST:PORT. */
export function accepts(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect({ host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Starts nats-server listening on HOST:PORT (PORT: a free one if not given) with the extra
 * ARGS, under the command line PREFIX (e.g. `ip netns exec NS`); waits until it is ready
 * (accepts TCP on loopback; says "Server is ready" elsewhere). Killed at the end.
 */
export async function startNats(t, { port, host = '127.0.0.1', args = [], prefix = [], name = 'nats-server' } = {}) {
  port = port ?? (await freePort());
  const argv = [...prefix, 'nats-server', '-a', host, '-p', String(port), ...args];
  const h = spawnTracked(argv[0], argv.slice(1));
  t.after(() => h.kill('SIGKILL'));
  await waitFor(async () => {
    if (!h.isRunning()) throw new Error(`${name} exited: ${h.output()}`);
    return prefix.length === 0 ? accepts(port, host) : /Server is ready/.test(h.output());
  }, { timeoutMs: deadline(10000), message: `${name} on port ${port}` });
  return Object.assign(h, { name, port, url: `nats://${host}:${port}` });
}

/**
 * Starts `infergate worker --name NAME` on NATSURL (one URL or a comma-separated list) serving
 * model MODEL from fake-llama-server with FLAGS (its events in DIR/NAME.events), the model
 * preloaded, under the command line PREFIX if given. MODELEXTRA is merged into the model's
 * config, EXTRA into the whole config (MODEL names another model). Killed at the end with
 * every child it had.
 */
export async function startWorker(t, dir, natsUrl, name, { flags = [], modelExtra = {}, capacity, prefix = [], model = MODEL, extra = {} } = {}) {
  const events = path.join(dir, `${name}.events`);
  const configPath = path.join(dir, `${name}.yaml`);
  const config = {
    startPort: await randomStartPort(2),
    healthCheckTimeout: 30,
    hooks: { on_startup: { preload: [model] } },
    models: { [model]: { cmd: fakeCmd(model, ['--events-file', events, ...flags]), ...modelExtra } },
    ...extra,
  };
  await fsp.writeFile(configPath, toYaml(config));
  const stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ig-worker-'));
  const argv = [...prefix, INFERGATE, 'worker', '--nats', natsUrl, '-c', configPath, '--name', name];
  if (capacity !== undefined) argv.push('--capacity', String(capacity));
  const h = spawnTracked(argv[0], argv.slice(1), { INFERGATE_STATE_DIR: stateDir });
  t.after(async () => {
    await h.kill('SIGTERM');
    await fsp.rm(stateDir, { recursive: true, force: true });
  });
  // The preloaded model is up once the fake has taken its port (its events file exists
  // only after a request, so look at the worker's children instead).
  await waitFor(() => {
    if (!h.isRunning()) throw new Error(`worker ${name} exited: ${h.output()}`);
    return childPids(h.pid).length > 0;
  }, { timeoutMs: deadline(10000), message: `worker ${name}'s model process` });
  return Object.assign(h, { name, events, startPort: config.startPort });
}

/** Chat requests the fake of worker W received. */
export const served = (w) => readEvents(w.events).filter((e) => e.event === 'request' && e.path === '/v1/chat/completions').length;

/** The worker ids /v1/models lists for MODEL ([] if absent). */
export async function workersOf(gw) {
  const list = await gw.json('/v1/models');
  const m = list.data.find((x) => x.id === MODEL);
  return m ? [...m.workers].sort() : [];
}

/** Waits until /v1/models lists exactly the workers NAMES for MODEL. */
export function waitWorkers(gw, names, timeoutMs = deadline(10000)) {
  const want = JSON.stringify([...names].sort());
  return waitFor(async () => JSON.stringify(await workersOf(gw)) === want, { timeoutMs, message: `workers ${want} in /v1/models` });
}

/** A gateway with no models of its own, routing MODEL to the workers on NATSURL; OPTS go to
 * startGateway (host, prefix, args) and NATS is merged into its `nats:` section. */
export function startBusGateway(t, natsUrl, strategy = 'least-loaded', { nats = {}, ...opts } = {}) {
  return startGateway(t, { models: {}, extra: { nats: { url: natsUrl, strategy, ...nats } }, ...opts });
}

/** Attaches the outputs of the workers and nats-servers to a failure. */
export function withOutputs(e, gw, procs) {
  attachOutput(e, gw);
  try {
    for (const p of procs) {
      const out = p.output();
      e.message += `\n---- ${p.name ?? 'nats-server'} (tail) ----\n${out.slice(-3000)}`;
    }
  } catch {}
  return e;
}

/** Runs BODY; a failure carries every process's output. */
export async function guarded(gw, procs, body) {
  try {
    return await body();
  } catch (e) {
    throw withOutputs(e, gw, procs);
  }
}

/** One chat request for MODEL through CLIENT (an openai SDK client); EXTRA is merged into
 * the body, OPTS are the SDK's request options (e.g. `signal`). */
export const ask = (client, extra = {}, opts = undefined) =>
  client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 4, ...extra }, opts);

/** One streamed chat request for MODEL (as ask()); resolves the text of its deltas. */
export async function askStream(client, extra = {}, opts = undefined) {
  const s = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 4, stream: true, ...extra }, opts);
  let text = '';
  for await (const chunk of s) text += chunk.choices[0]?.delta?.content ?? '';
  return text;
}

/** Sends N requests with at most CONC in flight; resolves each one's latency in ms. */
export async function load(client, n, conc, extra = {}) {
  const lat = [];
  let next = 0;
  async function lane() {
    while (next < n) {
      next++;
      const t0 = performance.now();
      const r = await ask(client, extra);
      assert.equal(r.choices.length, 1);
      lat.push(performance.now() - t0);
    }
  }
  await Promise.all(Array.from({ length: conc }, lane));
  return lat.sort((a, b) => a - b);
}
