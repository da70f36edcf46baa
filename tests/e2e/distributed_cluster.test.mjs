// Distributed mode on a 3-node NATS cluster (docs/DISTRIBUTED.md, "Tests"): two gateways and
// two workers on three clustered nats-servers on loopback. Under load through gateway B,
// gateway A and the NATS node gateway B is connected to are killed -9: B keeps listing both
// workers, and every request sent through B once it and the workers are back on the bus
// succeeds. That none of the requests in flight at the kill fails is checked too, in a subtest
// marked TODO: today some of them are cut or hang (docs/DISTRIBUTED.md, "Not yet").
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deadline, freePort, rawRequest, tempDir, waitFor, withTimeout } from './lib/harness.mjs';
import {
  MODEL, ask, askStream, served, startBusGateway, startNats, startWorker, waitWorkers, withOutputs,
  workersOf,
} from './lib/distributed.mjs';

/** GET http://127.0.0.1:PORT/PATH of a nats-server's monitoring port, as JSON. */
async function monitor(port, pathname) {
  const r = await rawRequest({ port, path: pathname, timeoutMs: deadline(2000) });
  if (r.status !== 200) throw new Error(`GET :${port}${pathname} -> ${r.status}`);
  return r.json;
}

/**
 * Starts three nats-servers on loopback clustered with each other (each soliciting routes to
 * the two others) and waits until each has its two routes (`/routez`).
 */
async function startCluster(t) {
  const ports = [];
  for (let i = 0; i < 3; i++) ports.push({ client: await freePort(), route: await freePort(), http: await freePort() });
  const routeUrl = (p) => `nats://127.0.0.1:${p.route}`;
  const name = `ig-e2e-${process.pid}`;
  const nodes = [];
  for (const [i, p] of ports.entries()) {
    const others = ports.filter((q) => q !== p).map(routeUrl).join(',');
    nodes.push(await startNats(t, {
      port: p.client, name: `node${i + 1}`,
      args: ['-m', String(p.http), '--cluster', routeUrl(p), '--routes', others, '--cluster_name', name],
    }));
    nodes[i].http = p.http;
  }
  await waitFor(async () => {
    for (const n of nodes) if ((await monitor(n.http, '/routez')).num_routes !== 2) return false;
    return true;
  }, { timeoutMs: deadline(10000), message: 'two routes on each of the three nodes' });
  return nodes;
}

/** The nodes (of NODES, those still running) holding a client connection whose name starts
 * with PREFIX. */
async function nodesOf(nodes, prefix) {
  const out = [];
  for (const n of nodes.filter((x) => x.isRunning())) {
    const connz = await monitor(n.http, '/connz?limit=1024');
    // A gateway's batch queue has a connection of its own, "<name>-batches": not the bus's.
    const named = (c) => (c.name ?? '').startsWith(prefix) && !(c.name ?? '').endsWith('-batches');
    if ((connz.connections ?? []).some(named)) out.push(n);
  }
  return out;
}

/** Waits until exactly one node holds a connection named PREFIX...; returns that node. */
async function nodeOf(nodes, prefix) {
  const found = await waitFor(async () => {
    const on = await nodesOf(nodes, prefix);
    return on.length === 1 && on;
  }, { timeoutMs: deadline(5000), message: `the connection ${prefix}* on one node` });
  return found[0];
}

test('two gateways, 3-node NATS cluster: gateway A and B\'s node killed under load, B fails over and keeps serving', async (t) => {
  const dir = await tempDir(t);
  const nodes = await startCluster(t);
  const urls = nodes.map((n) => n.url).join(',');
  // Each worker is given one node (cnats learns the others from the cluster and fails over
  // to them); the gateways get the whole list, whose order cnats shuffles.
  const flags = ['--token-us', '4000'];
  const workers = [
    await startWorker(t, dir, nodes[1].url, 'w1', { flags }),
    await startWorker(t, dir, nodes[2].url, 'w2', { flags }),
  ];
  const gwA = await startBusGateway(t, urls, 'least-loaded', { nats: { name: 'gw-a' } });
  const gwB = await startBusGateway(t, urls, 'least-loaded', { nats: { name: 'gw-b' } });
  const procs = [...nodes, ...workers];
  try {
    await waitWorkers(gwA, ['w1', 'w2']);
    await waitWorkers(gwB, ['w1', 'w2']);
    const victim = await nodeOf(nodes, 'gw-b-');
    const movers = [];
    for (const w of workers) if ((await nodeOf(nodes, w.name)) === victim) movers.push(w.name);
    t.diagnostic(`gateway B is on ${victim.name}; workers on it too: [${movers}]`);

    // 200 requests through B, 8 at a time, every other one streamed: 20 tokens × 4 ms each,
    // about 2.5 s in all; the kills come once 40 are done. A request that hangs is aborted by
    // its client after 10 s (and counted as failed).
    const clientB = gwB.client();
    const HANG_MS = deadline(10000);
    const N = 200;
    const results = [];
    const listed = [];
    let next = 0;
    async function lane() {
      while (next < N) {
        const i = next++;
        const r = { i, streamed: i % 2 === 1, start: Date.now() };
        const messages = [{ role: 'user', content: `request ${i}` }];
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(new Error(`no answer within ${HANG_MS} ms`)), HANG_MS);
        try {
          const opts = { signal: abort.signal };
          if (r.streamed) assert.equal((await askStream(clientB, { max_tokens: 20, messages }, opts)).split(' ').length, 20);
          else assert.equal((await ask(clientB, { max_tokens: 20, messages }, opts)).usage.completion_tokens, 20);
        } catch (e) {
          r.error = `${abort.signal.aborted ? 'HUNG ' : ''}${e.constructor.name}: ${e.status ?? ''} ${e.message}`;
        } finally {
          clearTimeout(timer);
        }
        r.end = Date.now();
        results.push(r);
      }
    }
    let loadOver = false;
    const sampler = (async () => {
      while (!loadOver) {
        listed.push({ at: Date.now(), workers: (await workersOf(gwB)).join(',') });
        await new Promise((r) => setTimeout(r, 50)); // sampling period, not a synchronisation
      }
    })();
    const loadDone = Promise.all(Array.from({ length: 8 }, lane)).finally(() => (loadOver = true));

    await waitFor(() => results.length >= 40, { timeoutMs: deadline(10000), message: '40 requests done' });
    const doneAtKill = results.length;
    const killedAt = Date.now();
    process.kill(gwA.pid, 'SIGKILL');
    await victim.kill('SIGKILL');
    await gwA.exit;
    // When B and the workers are all back on the bus (seen on the surviving nodes).
    const survivors = nodes.filter((n) => n !== victim);
    const back = await nodeOf(survivors, 'gw-b-');
    for (const w of workers) await nodeOf(survivors, w.name);
    const backAt = Date.now();
    await withTimeout(loadDone, deadline(40000), `${N} requests through gateway B`);
    await sampler;
    const failed = results.filter((r) => r.error);
    const inFlight = results.filter((r) => r.start <= killedAt && r.end >= killedAt);
    t.diagnostic(`killed gateway A and ${victim.name} after ${doneAtKill} requests; B back on ${back.name} ` +
      `within ${backAt - killedAt} ms; ${inFlight.length} requests were in flight, ${failed.length} failed: ` +
      JSON.stringify(failed.map((r) => ({ ...r, start: r.start - killedAt, end: r.end - killedAt }))));

    assert.equal(results.length, N);
    const missing = listed.filter((x) => x.workers !== 'w1,w2');
    assert.deepEqual(missing, [], 'gateway B listed both workers throughout');
    // Requests sent once B and the workers were back on the bus all succeed; only those in
    // flight at the kill or sent during the failover may have failed (see the next subtest).
    const late = failed.filter((r) => r.start > backAt);
    assert.deepEqual(late, [], 'requests sent after the failover failed');
    assert.ok(failed.every((r) => r.start <= backAt && r.end >= killedAt), 'only requests around the kill failed');
    // A tunnel message the dead node held is sent again (the worker keeps its answer until
    // acknowledged; the gateway asks for the rest after its reconnect), and a request the
    // worker never got is retried: no request fails.
    assert.deepEqual(failed.map((r) => `${r.i}${r.streamed ? ' (stream)' : ''}: ${r.error}`), [],
      'no request in flight at the kill fails');

    // B moved to a surviving node, and both workers still serve through it.
    const now = await nodeOf(nodes, 'gw-b-');
    assert.notEqual(now, victim);
    t.diagnostic(`gateway B reconnected to ${now.name}`);
    const before = workers.map(served);
    await waitFor(async () => {
      await Promise.all(Array.from({ length: 4 }, () => ask(clientB)));
      return workers.every((w, i) => served(w) > before[i]);
    }, { timeoutMs: deadline(10000), message: 'both workers serving through gateway B' });
    await waitWorkers(gwB, ['w1', 'w2']);
    const models = await gwB.json('/v1/models');
    assert.ok(models.data.some((m) => m.id === MODEL));
  } catch (e) {
    throw withOutputs(e, gwB, procs);
  }
});
