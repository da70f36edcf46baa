// Distributed mode (docs/DISTRIBUTED.md): a gateway with `nats:` and no models of its own,
// `infergate worker` processes serving fake-llama-server models over a nats-server of the
// test's own on loopback. Load spread over equal workers, kill -9 of a worker mid-stream
// (clean client error, the others unaffected, dropped from routing within 3 s, retry of a
// request it never answered, rejoin under the same --name), nats-server restarted under
// load, least-loaded against round-robin with one slow worker.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import {
  INFERGATE, attachOutput, childPids, deadline, fakeCmd, freePort, pidGone, randomStartPort,
  readEvents, startGateway, tempDir, toYaml, waitFor, withTimeout,
} from './lib/harness.mjs';

const MODEL = 'm';
const SLOT_SERVER = fileURLToPath(new URL('./lib/slot_server.mjs', import.meta.url));
const MESSAGES = [{ role: 'user', content: 'hello over the bus' }];

// ------------------------------------------------------------ processes --

/** Spawns CMD ARGS, keeping its output; the returned handle kills it (and children it was
 * seen to have) by PID. */
function spawnTracked(cmd, args, env = {}) {
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

/** True once something accepts TCP connections on 127.0.0.1:PORT. */
function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts nats-server on loopback (PORT, or a free one) and waits until it accepts TCP. */
async function startNats(t, port) {
  port = port ?? (await freePort());
  const h = spawnTracked('nats-server', ['-a', '127.0.0.1', '-p', String(port)]);
  t.after(() => h.kill('SIGKILL'));
  await waitFor(async () => {
    if (!h.isRunning()) throw new Error(`nats-server exited: ${h.output()}`);
    return accepts(port);
  }, { timeoutMs: deadline(10000), message: `nats-server on port ${port}` });
  return { ...h, port, url: `nats://127.0.0.1:${port}` };
}

/**
 * Starts `infergate worker --name NAME` on NATSURL serving model MODEL from fake-llama-server
 * with FLAGS (its events in DIR/NAME.events), the model preloaded. MODELEXTRA is merged
 * into the model's config. Killed at the end with every child it had.
 */
async function startWorker(t, dir, natsUrl, name, { flags = [], modelExtra = {}, capacity } = {}) {
  const events = path.join(dir, `${name}.events`);
  const configPath = path.join(dir, `${name}.yaml`);
  const config = {
    startPort: await randomStartPort(2),
    healthCheckTimeout: 30,
    hooks: { on_startup: { preload: [MODEL] } },
    models: { [MODEL]: { cmd: fakeCmd(MODEL, ['--events-file', events, ...flags]), ...modelExtra } },
  };
  await fsp.writeFile(configPath, toYaml(config));
  const stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ig-worker-'));
  const args = ['worker', '--nats', natsUrl, '-c', configPath, '--name', name];
  if (capacity !== undefined) args.push('--capacity', String(capacity));
  const h = spawnTracked(INFERGATE, args, { INFERGATE_STATE_DIR: stateDir });
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
  return { ...h, name, events };
}

/** Chat requests the fake of worker W received. */
const served = (w) => readEvents(w.events).filter((e) => e.event === 'request' && e.path === '/v1/chat/completions').length;

/** The worker ids /v1/models lists for MODEL ([] if absent). */
async function workersOf(gw) {
  const list = await gw.json('/v1/models');
  const m = list.data.find((x) => x.id === MODEL);
  return m ? [...m.workers].sort() : [];
}

/** Waits until /v1/models lists exactly the workers NAMES for MODEL. */
function waitWorkers(gw, names, timeoutMs = deadline(10000)) {
  const want = JSON.stringify([...names].sort());
  return waitFor(async () => JSON.stringify(await workersOf(gw)) === want, { timeoutMs, message: `workers ${want} in /v1/models` });
}

/** A gateway with no models of its own, routing MODEL to the workers on NATSURL. */
function startBusGateway(t, natsUrl, strategy = 'least-loaded') {
  return startGateway(t, { models: {}, extra: { nats: { url: natsUrl, strategy } } });
}

/** Attaches the outputs of the workers and nats-server to a failure. */
function withOutputs(e, gw, procs) {
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
async function guarded(gw, procs, body) {
  try {
    return await body();
  } catch (e) {
    throw withOutputs(e, gw, procs);
  }
}

const ask = (client, extra = {}) => client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 4, ...extra });

/** Sends N requests with at most CONC in flight; resolves each one's latency in ms. */
async function load(client, n, conc, extra = {}) {
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

const p99 = (sorted) => sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)];

// ----------------------------------------------------------------- tests --

test('300 concurrent requests over 3 equal workers: all succeed, each serves 100 ± 20%', async (t) => {
  const dir = await tempDir(t);
  const nats = await startNats(t);
  const workers = [];
  for (const name of ['w1', 'w2', 'w3']) workers.push(await startWorker(t, dir, nats.url, name, { flags: ['--token-us', '2000'] }));
  const gw = await startBusGateway(t, nats.url);
  await guarded(gw, [nats, ...workers], async () => {
    await waitWorkers(gw, ['w1', 'w2', 'w3']);
    const client = gw.client();
    const replies = await withTimeout(
      Promise.all(Array.from({ length: 300 }, () => ask(client, { max_tokens: 8 }))),
      deadline(30000), '300 requests',
    );
    assert.equal(replies.length, 300);
    for (const r of replies) assert.equal(r.choices[0].finish_reason, 'length');
    const counts = workers.map(served);
    t.diagnostic(`served per worker: ${counts}`);
    assert.equal(counts.reduce((a, b) => a + b, 0), 300, `served ${counts}`);
    for (const c of counts) assert.ok(c >= 80 && c <= 120, `each worker within 20% of 100: ${counts}`);
  });
});

test('kill -9 of a worker mid-stream: clean error there, others unaffected, dropped, retried, rejoins', async (t) => {
  const dir = await tempDir(t);
  const nats = await startNats(t);
  const flags = ['--token-us', '20000'];
  const workers = [];
  for (const name of ['w1', 'w2', 'w3']) workers.push(await startWorker(t, dir, nats.url, name, { flags }));
  const gw = await startBusGateway(t, nats.url);
  await guarded(gw, [nats, ...workers], async () => {
    await waitWorkers(gw, ['w1', 'w2', 'w3']);
    const client = gw.client();

    // Three slow streams (150 tokens × 20 ms = 3 s); least-loaded puts one on each worker.
    const got = [0, 0, 0];
    const streams = [0, 1, 2].map(async (i) => {
      const s = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: `stream ${i}` }], max_tokens: 150, stream: true });
      let text = '';
      for await (const chunk of s) {
        const d = chunk.choices[0]?.delta?.content;
        if (d) {
          text += d;
          got[i]++;
        }
      }
      return text;
    });
    const settled = Promise.allSettled(streams);
    await waitFor(() => got.every((n) => n >= 3), { timeoutMs: deadline(10000), message: 'tokens on all three streams' });
    assert.deepEqual(workers.map(served), [1, 1, 1], 'one stream per worker');

    const victim = workers[0];
    const killedAt = Date.now();
    await victim.kill('SIGKILL');
    for (const p of victim.seen) assert.ok(pidGone(p) || (await waitFor(() => pidGone(p), { timeoutMs: deadline(5000), message: `fake ${p} gone with its worker` })));

    // Sent right after the kill, before the gateway noticed: least-loaded spreads them over
    // the three (the victim included, its stream still counted). The ones sent to the dead
    // worker get no byte back; the gateway retries them on another worker when it drops it.
    const early = Promise.all(Array.from({ length: 6 }, (_, i) => ask(client, { messages: [{ role: 'user', content: `early ${i}` }] })));

    // Routing drops the victim within 3 s of its last heartbeat (≤ 1 s before the kill),
    // checked on a 250 ms sweep: 3.25 s; 4 s leaves room for a loaded machine.
    await waitWorkers(gw, ['w2', 'w3'], deadline(5000));
    const droppedAfter = Date.now() - killedAt;
    t.diagnostic(`victim left /v1/models ${droppedAfter} ms after the kill`);
    assert.ok(droppedAfter <= deadline(4000), `dropped after ${droppedAfter} ms`);

    const results = await withTimeout(settled, deadline(15000), 'the three streams');
    const failed = results.filter((r) => r.status === 'rejected');
    assert.equal(failed.length, 1, `exactly the victim's stream failed: ${JSON.stringify(results.map((r) => r.status))}`);
    assert.ok(failed[0].reason instanceof Error, 'the SDK raised an Error');
    t.diagnostic(`the victim's client got: ${failed[0].reason.constructor.name}: ${failed[0].reason.message}`);
    for (const r of results.filter((x) => x.status === 'fulfilled')) assert.equal(r.value.split(' ').length, 150, 'the other streams are whole');

    const early6 = await withTimeout(early, deadline(15000), 'requests sent right after the kill');
    assert.equal(early6.length, 6);
    const retried = (gw.output().match(/worker w1 did not answer/g) ?? []).length;
    t.diagnostic(`requests retried away from the dead worker: ${retried}`);
    assert.ok(retried >= 1, 'at least one of them went to the dead worker and was retried');

    // The survivors keep serving.
    const before = served(workers[1]) + served(workers[2]);
    await Promise.all(Array.from({ length: 6 }, () => ask(client, { max_tokens: 2 })));
    assert.equal(served(workers[1]) + served(workers[2]), before + 6);

    // The same --name again: back in the list, and it serves (its model preloaded, so
    // least-loaded takes it on a tie with the others).
    const again = await startWorker(t, dir, nats.url, 'w1', { flags });
    await waitWorkers(gw, ['w1', 'w2', 'w3']);
    const victimBefore = served(again);
    await waitFor(async () => {
      await Promise.all(Array.from({ length: 3 }, () => ask(client, { max_tokens: 2 })));
      return served(again) > victimBefore;
    }, { timeoutMs: deadline(10000), message: 'the restarted worker serves again' });
  });
});

test('nats-server restarted under load: workers and gateway reconnect by themselves', async (t) => {
  const dir = await tempDir(t);
  let nats = await startNats(t);
  const workers = [];
  for (const name of ['w1', 'w2', 'w3']) workers.push(await startWorker(t, dir, nats.url, name, { flags: ['--token-us', '5000'] }));
  const gw = await startBusGateway(t, nats.url);
  const procs = () => [nats, ...workers];
  await guarded(gw, procs(), async () => {
    await waitWorkers(gw, ['w1', 'w2', 'w3']);
    const client = gw.client();

    // A few requests (400 tokens × 5 ms) in flight while the bus goes away for longer than
    // the 3 s after which the gateway drops silent workers: they may fail (their tunnels
    // went with it), but each must end, none may hang.
    const inFlight = Promise.allSettled(Array.from({ length: 6 }, (_, i) => ask(client, { max_tokens: 400, messages: [{ role: 'user', content: `during ${i}` }] })));
    await waitFor(() => workers.reduce((a, w) => a + served(w), 0) >= 3, { timeoutMs: deadline(5000), message: 'requests reaching the workers' });
    await nats.kill('SIGKILL');
    await waitWorkers(gw, [], deadline(6000));
    const down = await ask(client).then(() => null, (e) => e);
    assert.ok(down instanceof Error, 'no worker, no answer');
    t.diagnostic(`with the bus down: ${down.status} ${down.message}`);
    nats = await startNats(t, nats.port);

    const during = await withTimeout(inFlight, deadline(15000), 'requests in flight across the restart');
    t.diagnostic(`in flight across the restart: ${during.filter((r) => r.status === 'fulfilled').length}/6 succeeded`);

    await waitWorkers(gw, ['w1', 'w2', 'w3']);
    const replies = await Promise.all(Array.from({ length: 30 }, () => ask(client)));
    assert.equal(replies.length, 30);
    for (const r of replies) assert.equal(r.choices[0].message.role, 'assistant');
    for (const p of [gw, ...workers]) assert.match(p.output(), /nats: disconnected; reconnecting[^]*nats: connected/, 'reconnected');
  }).catch((e) => {
    throw withOutputs(e, gw, [nats]);
  });
});

test('one slow worker: least-loaded sends it less than round-robin and has a far better p99', async (t) => {
  const dir = await tempDir(t);
  const nats = await startNats(t);
  // Two fast workers (10 tokens at 1 ms) and a slow one with a single slot: 200 ms a
  // request, the others queued behind it (lib/slot_server.mjs, as llama-server -np 1;
  // `concurrencyLimit: 1` would answer 429 at once, as in llama-swap, not queue).
  const slotCmd = [process.execPath, SLOT_SERVER, '--port', '${PORT}', '--ms', '200', '--model', MODEL, '--events-file', path.join(dir, 'slow.events')].join(' ');
  const workers = [
    await startWorker(t, dir, nats.url, 'fast1', { flags: ['--token-us', '1000'] }),
    await startWorker(t, dir, nats.url, 'fast2', { flags: ['--token-us', '1000'] }),
    await startWorker(t, dir, nats.url, 'slow', { modelExtra: { cmd: slotCmd } }),
  ];
  const ll = await startBusGateway(t, nats.url, 'least-loaded');
  const rr = await startBusGateway(t, nats.url, 'round-robin');
  await guarded(rr, [nats, ...workers], async () => {
    await waitWorkers(ll, ['fast1', 'fast2', 'slow']);
    await waitWorkers(rr, ['fast1', 'fast2', 'slow']);
    const slow = workers[2];

    // 60 requests, 12 at a time, through each gateway in turn.
    let base = served(slow);
    const llLat = await load(ll.client(), 60, 12, { max_tokens: 10 });
    const llSlow = served(slow) - base;
    base = served(slow);
    const rrLat = await load(rr.client(), 60, 12, { max_tokens: 10 });
    const rrSlow = served(slow) - base;
    t.diagnostic(`slow worker served: least-loaded ${llSlow}, round-robin ${rrSlow}; ` +
      `p99 least-loaded ${p99(llLat).toFixed(0)} ms, round-robin ${p99(rrLat).toFixed(0)} ms`);

    // Round-robin hands the slow worker every third request, 20 of 60, whatever its queue:
    // lanes sent there stay while the fast ones come straight back, so nearly all 12 lanes
    // end up queued on the one slot and its requests wait ~12 × 200 ms. Least-loaded counts
    // the requests in flight per worker and sends the slow one a new request only while it
    // has fewer than the fast ones (a handful, ~4 in the first burst): its worst wait is
    // about 4 × 200 ms. Expected ~2.4 s against ~0.8 s; the bounds leave room both ways.
    assert.equal(rrSlow, 20, 'round-robin: every third request');
    assert.ok(llSlow <= rrSlow / 2, `least-loaded sent the slow worker ${llSlow} (round-robin ${rrSlow})`);
    assert.ok(p99(rrLat) >= 1500, `round-robin p99 ${p99(rrLat)} ms`);
    assert.ok(p99(rrLat) >= 1.8 * p99(llLat), `p99 round-robin ${p99(rrLat)} vs least-loaded ${p99(llLat)} ms`);
  }).catch((e) => {
    throw withOutputs(e, ll, []);
  });
});
