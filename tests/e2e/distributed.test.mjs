// Distributed mode (docs/DISTRIBUTED.md): a gateway with `nats:` and no models of its own,
// `infergate worker` processes serving fake-llama-server models over a nats-server of the
// test's own on loopback. Load spread over equal workers, kill -9 of a worker mid-stream
// (clean client error, the others unaffected, dropped from routing within 3 s, retry of a
// request it never answered, rejoin under the same --name), nats-server restarted under
// load, least-loaded against round-robin with one slow worker.
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { deadline, pidGone, tempDir, waitFor, withTimeout } from './lib/harness.mjs';
import {
  MODEL, ask, guarded, load, served, startBusGateway, startNats, startWorker, waitWorkers,
  withOutputs,
} from './lib/distributed.mjs';

const SLOT_SERVER = fileURLToPath(new URL('./lib/slot_server.mjs', import.meta.url));

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
    nats = await startNats(t, { port: nats.port });

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
