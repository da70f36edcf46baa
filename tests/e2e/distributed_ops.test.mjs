// Distributed mode under pressure and in operation (docs/DISTRIBUTED.md): a worker whose
// model is at its concurrencyLimit answers 429 through the tunnel and the request goes to
// another worker (busy, not a failure); a model whose workers are all gone answers 503
// model_unavailable until one rejoins; requests wait at the gateway while every worker is
// busy; a worker that goes silent mid-request (SIGSTOP) ends the request at the tunnel's
// stall deadline; /workers, /running, /metrics, /models/load and /logs/stream reach remote
// models.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { assertErrorShape, deadline, fakeCmd, rawRequest, readEvents, tempDir, waitFor, withTimeout } from './lib/harness.mjs';
import {
  MESSAGES, MODEL, guarded, served, startBusGateway, startNats, startWorker, waitWorkers,
} from './lib/distributed.mjs';

/** A streamed chat of N tokens through CLIENT; resolves its text. */
async function streamChat(client, n, content = 'stream') {
  const s = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content }], max_tokens: n, stream: true });
  let text = '';
  for await (const chunk of s) text += chunk.choices[0]?.delta?.content ?? '';
  return text;
}

test('a worker at its concurrencyLimit answers 429: the request goes to another worker, no failure', async (t) => {
  const dir = await tempDir(t);
  const nats = await startNats(t);
  // w1 takes one request at a time (20 ms a token); both gateways try it first (priority).
  const w1 = await startWorker(t, dir, nats.url, 'w1', { flags: ['--token-us', '20000'], modelExtra: { concurrencyLimit: 1 } });
  const a = await startBusGateway(t, nats.url, 'priority');
  const b = await startBusGateway(t, nats.url, 'priority');
  await waitWorkers(a, ['w1']);
  await waitWorkers(b, ['w1']);
  const w2 = await startWorker(t, dir, nats.url, 'w2', { flags: ['--token-us', '1000'] });
  await guarded(a, [nats, w1, w2, b], async () => {
    await waitWorkers(a, ['w1', 'w2']);
    await waitWorkers(b, ['w1', 'w2']);
    // Each gateway sends one stream at the same moment: both pick w1, whose heartbeat shows
    // room; the second to reach it gets 429 there and its gateway moves it to w2. (Unless a
    // heartbeat fell between the two: then the second gateway knew and chose w2 at once;
    // the rounds go on until a 429 was seen.)
    let rounds = 0;
    const busyLines = () => (a.output() + b.output()).match(/worker w1 is busy/g)?.length ?? 0;
    await waitFor(async () => {
      rounds++;
      const texts = await Promise.all([streamChat(a.client(), 30, `a${rounds}`), streamChat(b.client(), 30, `b${rounds}`)]);
      for (const text of texts) assert.equal(text.split(' ').length, 30, 'every stream whole');
      return busyLines() > 0;
    }, { timeoutMs: deadline(20000), message: 'a 429 from w1 moved to w2' });
    t.diagnostic(`rounds until a 429: ${rounds}; w1 served ${served(w1)}, w2 ${served(w2)}`);
    assert.ok(served(w2) >= 1, 'w2 took what w1 refused');
    // Busy is not a failure: w1 was never taken out of routing.
    assert.doesNotMatch(a.output() + b.output(), /failures in a row/);
  });
});

/** POSTs a chat for MODEL to gateway GW on a fresh connection: {status, headers, json}. */
const chat = (gw, model = MODEL, extra = {}, headers = {}) => rawRequest({ port: gw.port, method: 'POST', path: '/v1/chat/completions', headers, body: { model, messages: MESSAGES, max_tokens: 2, ...extra } });

/** X-Log-Level: debug: the gateway logs the request's steps (routing, queueing) at info. */
const DEBUG = { 'X-Log-Level': 'debug' };

/** How many requests GW logged as waiting for room (those sent with DEBUG). */
const queued = (gw) => gw.output().match(/waiting for room/g)?.length ?? 0;

test('every worker of a model gone: 503 model_unavailable with Retry-After, served again when one rejoins', async (t) => {
  const dir = await tempDir(t);
  const nats = await startNats(t);
  const w1 = await startWorker(t, dir, nats.url, 'w1');
  const gw = await startBusGateway(t, nats.url);
  await guarded(gw, [nats, w1], async () => {
    await waitWorkers(gw, ['w1']);
    assert.equal((await chat(gw)).status, 200);
    await w1.kill('SIGKILL');
    await waitWorkers(gw, [], deadline(6000));

    const gone = await chat(gw);
    const err = assertErrorShape(assert, gone, 503);
    assert.equal(err.code, 'model_unavailable');
    assert.ok(Number(gone.headers['retry-after']) >= 1, `Retry-After: ${gone.headers['retry-after']}`);
    // A model no worker ever served is still unknown.
    assert.equal(assertErrorShape(assert, await chat(gw, 'never-seen'), 404).code, 'model_not_found');

    const again = await startWorker(t, dir, nats.url, 'w1');
    await waitWorkers(gw, ['w1']);
    const before = served(again); /* the same events file as the first w1 */
    const back = await chat(gw);
    assert.equal(back.status, 200, back.text);
    assert.equal(served(again), before + 1);
  });
});

test('a worker that goes silent mid-request (SIGSTOP): the tunnel stall deadline ends the request; keep-alives keep a silent answer alive', async (t) => {
  const dir = await tempDir(t);
  const nats = await startNats(t);
  const w1 = await startWorker(t, dir, nats.url, 'w1', { flags: ['--token-us', '20000'] });
  // A 1 s stall deadline: shorter than the 3 s after which the silent worker is dropped.
  const gw = await startBusGateway(t, nats.url, 'least-loaded', { nats: { stall_timeout_s: 1 } });
  t.after(() => {
    try {
      process.kill(w1.pid, 'SIGCONT');
    } catch {}
  });
  await guarded(gw, [nats, w1], async () => {
    await waitWorkers(gw, ['w1']);
    const client = gw.client();

    // A non-streamed answer of 100 tokens × 20 ms: 2 s with nothing on the tunnel but the
    // worker's keep-alives. Not a stall.
    const whole = await chat(gw, MODEL, { max_tokens: 100 });
    assert.equal(whole.status, 200, whole.text);
    assert.equal(whole.json.choices[0].message.content.split(' ').length, 100);

    // A stream under way when the worker freezes: the client's stream ends with an error
    // about a second later, long before the worker is dropped.
    let tokens = 0;
    let stoppedAt = 0;
    const streamed = (async () => {
      const s = await client.chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 200, stream: true });
      for await (const chunk of s) {
        if (chunk.choices[0]?.delta?.content) tokens++;
        if (tokens === 3 && stoppedAt === 0) {
          process.kill(w1.pid, 'SIGSTOP');
          stoppedAt = Date.now();
        }
      }
    })();
    const err = await withTimeout(streamed.then(() => null, (e) => e), deadline(10000), 'the frozen stream');
    const after = Date.now() - stoppedAt;
    t.diagnostic(`the frozen stream ended ${after} ms after SIGSTOP: ${err?.message}`);
    assert.ok(err instanceof Error, `the SDK raised (got ${tokens} tokens)`);
    assert.ok(after < 2800, `ended by the stall deadline, before the drop: ${after} ms`);
    assert.match(gw.output(), /tunnel \S+ to worker w1: no message for 1000 ms/);

    // Sent to the frozen worker (still in routing): nothing comes back, 504 at the deadline.
    const frozen = await chat(gw);
    assert.equal(assertErrorShape(assert, frozen, 504).code, 'worker_stalled');

    process.kill(w1.pid, 'SIGCONT');
    await waitFor(async () => (await chat(gw)).status === 200, { timeoutMs: deadline(10000), message: 'w1 serving again' });
  });
});

test('every worker busy: requests wait at the gateway for room (bounded in time and number, a client that leaves is withdrawn)', async (t) => {
  const dir = await tempDir(t);
  const nats = await startNats(t);
  // One request at a time (--capacity 1), 20 ms a token.
  const w1 = await startWorker(t, dir, nats.url, 'w1', { flags: ['--token-us', '20000'], capacity: 1 });
  const gw = await startBusGateway(t, nats.url);
  const tight = await startBusGateway(t, nats.url, 'least-loaded', { nats: { queue_timeout_s: 1, queue_length: 1 } });
  await guarded(gw, [nats, w1, tight], async () => {
    await waitWorkers(gw, ['w1']);
    await waitWorkers(tight, ['w1']);

    // Four requests of 15 tokens (0.3 s each) at once: one runs, three wait their turn; no
    // client sees an error.
    const before = served(w1);
    const replies = await Promise.all([1, 2, 3, 4].map((i) => chat(gw, MODEL, { max_tokens: 15, messages: [{ role: 'user', content: `q${i}` }] })));
    for (const r of replies) assert.equal(r.status, 200, r.text);
    assert.equal(served(w1), before + 4);

    // Through the tight gateway: a long request runs, one waits (the queue's one place); a
    // third is refused at once; the waiting one gives up after 1 s with 503 + Retry-After.
    const long = chat(tight, MODEL, { max_tokens: 150 }); // 3 s
    await waitFor(() => served(w1) === before + 5, { timeoutMs: deadline(5000), message: 'the long request on w1' });
    const t0 = Date.now();
    const waiting = chat(tight, MODEL, {}, DEBUG);
    await waitFor(() => queued(tight) === 1, { timeoutMs: deadline(2000), message: 'a request waiting' });
    const refused = await chat(tight);
    assert.equal(assertErrorShape(assert, refused, 503).code, 'model_unavailable');
    assert.match(refused.json.error.message, /wait already/);
    const late = await waiting;
    const waited = Date.now() - t0;
    assert.equal(assertErrorShape(assert, late, 503).code, 'model_unavailable');
    assert.ok(Number(late.headers['retry-after']) >= 1);
    assert.ok(waited >= 900 && waited < 2500, `gave up after the 1 s queue_timeout_s: ${waited} ms`);

    // A client that leaves while waiting frees its place: the next one may wait and is served.
    const ac = new AbortController();
    const leaving = tight.client().chat.completions.create({ model: MODEL, messages: MESSAGES, max_tokens: 2 }, { signal: ac.signal, headers: DEBUG }).catch((e) => e);
    await waitFor(() => queued(tight) === 2, { timeoutMs: deadline(2000), message: 'the leaving request waiting' });
    ac.abort();
    assert.ok((await leaving) instanceof Error);
    // While the long one still runs, a new request gets the freed place (refused with "wait
    // already" only until the gateway has seen the client leave).
    let after;
    await waitFor(async () => {
      const n = queued(tight);
      const p = chat(tight, MODEL, {}, DEBUG);
      const first = await Promise.race([p, waitFor(() => queued(tight) > n, { timeoutMs: deadline(1000) }).then(() => 'queued', () => 'no')]);
      if (first === 'queued') after = p;
      else assert.match((first === 'no' ? await p : first).json.error.message, /wait already/);
      return first === 'queued';
    }, { timeoutMs: deadline(2000), message: 'the place of the client that left' });
    assert.equal((await after).status, 503, 'it waited its 1 s like the first one');
    assert.equal((await long).status, 200);
  });
});

test('/workers, /running, /metrics, /models/load and /logs/stream reach the models on workers', async (t) => {
  const dir = await tempDir(t);
  const nats = await startNats(t);
  const w1 = await startWorker(t, dir, nats.url, 'w1');
  // w2 also has a model `cold` that it does not start by itself.
  const w2 = await startWorker(t, dir, nats.url, 'w2', { extra: { models: { [MODEL]: { cmd: fakeCmd(MODEL, ['--events-file', `${dir}/w2.events`]) }, cold: { cmd: fakeCmd('cold') } } } });
  const gw = await startBusGateway(t, nats.url);
  t.after(() => {
    try {
      process.kill(w2.pid, 'SIGCONT');
    } catch {}
  });
  await guarded(gw, [nats, w1, w2], async () => {
    await waitWorkers(gw, ['w1', 'w2']);
    assert.equal((await chat(gw)).status, 200);

    // /workers: the registry as the router sees it.
    const workers = await gw.json('/workers');
    assert.deepEqual(workers.data.map((w) => w.id).sort(), ['w1', 'w2']);
    for (const w of workers.data) {
      assert.equal(typeof w.last_heartbeat_ms, 'number');
      assert.equal(w.capacity, 64);
      assert.equal(w.tripped, false);
      assert.ok(w.models.some((m) => m.id === MODEL && m.state === 'ready'), JSON.stringify(w));
    }
    assert.ok(workers.data.find((w) => w.id === 'w2').models.some((m) => m.id === 'cold' && m.state === 'unloaded'));

    // The copies a worker keeps of its answers for resends (across a NATS failover) go as
    // soon as the gateway reports the answers whole (Ig-Done lists, every 250 ms), not after
    // the 5 s linger: a heartbeat sent after the answers came shows nothing kept.
    const answers = await Promise.all(Array.from({ length: 20 }, () => chat(gw)));
    assert.ok(answers.every((r) => r.status === 200));
    const cameAt = Date.now();
    await waitFor(async () => {
      const since = Date.now() - cameAt;
      return (await gw.json('/workers')).data.every((w) => w.last_heartbeat_ms < since && w.resend_bytes === 0);
    }, { timeoutMs: 3500, message: 'workers let go of the answers that came whole, well before the 5 s linger' });

    // /running: the local shape, plus remote models with their worker.
    const running = (await gw.json('/running')).running;
    const remote = running.filter((r) => r.model === MODEL).map((r) => `${r.worker}:${r.state}:${r.worker_state}`).sort();
    assert.deepEqual(remote, ['w1:ready:ready', 'w2:ready:ready']);
    assert.ok(!running.some((r) => r.model === 'cold'), 'an unloaded remote model is not running');

    // /models/load of a model only w2 has: forwarded there, answered when it is ready.
    const load = await rawRequest({ port: gw.port, method: 'POST', path: '/models/load', body: { model: 'cold' } });
    assert.equal(load.status, 200, load.text);
    assert.deepEqual([load.json.success, load.json.model, load.json.state], [true, 'cold', 'ready']);
    await waitFor(async () => (await gw.json('/running')).running.some((r) => r.model === 'cold' && r.worker === 'w2'), { timeoutMs: deadline(5000), message: 'cold running on w2' });
    assert.equal(assertErrorShape(assert, await rawRequest({ port: gw.port, method: 'POST', path: '/models/load', body: { model: 'nowhere' } }), 404).code, 'model_not_found');

    // /logs/stream/cold: the model's log on the worker that runs it, streamed as it comes
    // (plain text and SSE): its history holds the fake's start-up line.
    for (const accept of ['text/plain', 'text/event-stream']) {
      const abort = new AbortController();
      const logs = await fetch(`${gw.url}/logs/stream/cold`, { headers: { accept }, signal: abort.signal });
      assert.equal(logs.status, 200);
      assert.ok(logs.headers.get('content-type').startsWith(accept), logs.headers.get('content-type'));
      const reader = logs.body.getReader();
      let seen = '';
      await withTimeout((async () => {
        while (!/listening on/.test(seen)) {
          const { value, done } = await reader.read();
          if (done) break;
          seen += Buffer.from(value).toString('utf8');
        }
      })(), deadline(5000), `the worker's log of cold (${accept})`);
      abort.abort();
      assert.match(seen, /listening on/);
    }

    // /metrics: each worker's own metrics, read through a tunnel, renamed and labelled (w2
    // swapped m out for cold: one model at a time, as llama-swap does without groups).
    const res = await fetch(`${gw.url}/metrics`);
    const text = await res.text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: deadline(20000) });
    assert.equal(check.status, 0, `promtool: ${check.stdout}${check.stderr}`);
    for (const w of ['w1', 'w2']) assert.match(text, new RegExp(`^infergate_worker_model_state\\{worker="${w}",model="[^"]+",state="ready"} 1$`, 'm'));
    assert.match(text, /^infergate_requests_total\{model="m"/m, "the gateway's own are still there");

    // A worker that does not answer in time is left out; the others still show.
    process.kill(w2.pid, 'SIGSTOP');
    const t0 = Date.now();
    const partial = await (await fetch(`${gw.url}/metrics`)).text();
    const took = Date.now() - t0;
    assert.ok(took < 3000, `answered without the frozen worker in ${took} ms`);
    assert.match(partial, /worker="w1"/);
    assert.doesNotMatch(partial, /worker="w2"/);
    process.kill(w2.pid, 'SIGCONT');
  });
});

test('a model both local and on workers: a worker gets the model by its id and the body before this gateway\'s filters', async (t) => {
  const dir = await tempDir(t);
  const nats = await startNats(t);
  const w1 = await startWorker(t, dir, nats.url, 'w1');
  // Locally the model has an alias and renames itself for its upstream (useModelName); the
  // worker knows neither: it must get `m`, and round-robin sends every other request there.
  const local = `${dir}/local.events`;
  const gw = await startBusGateway(t, nats.url, 'round-robin', {
    models: { [MODEL]: { cmd: fakeCmd(MODEL, ['--events-file', local]), aliases: ['alias-m'], useModelName: 'upstream-name' } },
  });
  await guarded(gw, [nats, w1], async () => {
    await waitFor(async () => (await gw.json('/workers')).data.some((w) => w.id === 'w1' && w.models.some((m) => m.id === MODEL && m.state === 'ready')),
      { timeoutMs: deadline(10000), message: 'w1 serving m' });
    for (let i = 0; i < 4; i++) {
      for (const name of ['alias-m', MODEL]) {
        const r = await rawRequest({ port: gw.port, method: 'POST', path: '/v1/chat/completions', body: { model: name, messages: MESSAGES, max_tokens: 2 } });
        assert.equal(r.status, 200, `${name}: ${r.text}`);
      }
    }
    const backends = (await gw.json('/admin/requests?limit=8')).data.map((r) => r.backend);
    assert.deepEqual([...new Set(backends)].sort(), ['local', 'w1'], 'both were used');
    const seen = (file) => readEvents(file).filter((e) => e.event === 'request').map((e) => e.model);
    assert.deepEqual([...new Set(seen(w1.events))], [MODEL], 'the worker got the model id');
    assert.deepEqual([...new Set(seen(local))], ['upstream-name'], 'the local upstream got useModelName');
  });
});
