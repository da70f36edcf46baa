// Graceful shutdown on SIGTERM: in-flight streams finish, children are stopped, exit 0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deadline, fakeCmd, pidGone, procStat, rawRequest, waitFor, withGateway, withTimeout } from './lib/harness.mjs';

const STREAMS = 4;
const TOKENS = 50;

function describePid(pid) {
  const st = procStat(pid);
  return st ? `${pid} (${st.comm}, state ${st.state}, ppid ${st.ppid})` : `${pid} (gone)`;
}

test('SIGTERM lets 4 in-flight streams finish, stops the children and exits 0', async (t) => {
  const models = {
    slow: { cmd: fakeCmd('slow', ['--token-us', 20000]) },
  };
  await withGateway(t, { models }, async (gw) => {
    const client = gw.client();
    const req = (i) => ({ model: 'slow', messages: [{ role: 'user', content: `story ${i}` }], max_tokens: TOKENS, seed: i });

    // What each stream should produce, taken from the same model before the shutdown.
    const expected = await Promise.all(
      Array.from({ length: STREAMS }, (_, i) => client.chat.completions.create(req(i)).then((r) => r.choices[0].message.content)),
    );

    const firstChunk = [];
    const results = Array.from({ length: STREAMS }, (_, i) => {
      let gotFirst;
      firstChunk.push(new Promise((r) => (gotFirst = r)));
      return (async () => {
        const stream = await client.chat.completions.create({ ...req(i), stream: true });
        let text = '';
        let finish = null;
        for await (const chunk of stream) {
          gotFirst();
          text += chunk.choices?.[0]?.delta?.content ?? '';
          finish = chunk.choices?.[0]?.finish_reason ?? finish;
        }
        return { text, finish, done: Date.now() };
      })();
    });
    // Keep rejections observed until we await them below.
    results.forEach((p) => p.catch(() => {}));
    await withTimeout(Promise.all(firstChunk), deadline(10000), 'first chunk of every stream');

    const children = gw.children();
    assert.equal(children.length, 1, `one model process: ${children}`);
    const sigAt = Date.now();
    process.kill(gw.pid, 'SIGTERM');

    // It stops accepting while the streams are still running.
    let inFlight = STREAMS;
    const settled = () => inFlight--;
    results.forEach((p) => p.then(settled, settled));
    const refused = await waitFor(
      async () => {
        try {
          const r = await rawRequest({ port: gw.port, path: '/healthz', timeoutMs: 2000 });
          return r.status === 503 ? 'HTTP 503' : false;
        } catch (e) {
          return ['ECONNREFUSED', 'ECONNRESET'].includes(e.code) ? e.code : false;
        }
      },
      { timeoutMs: deadline(3000), intervalMs: 20, message: 'new connections to be refused after SIGTERM' },
    );
    const stillRunning = inFlight;

    const outs = await withTimeout(Promise.all(results), deadline(15000), 'the in-flight streams');
    for (let i = 0; i < STREAMS; i++) {
      assert.equal(outs[i].text, expected[i], `stream ${i} completed with the full text`);
      assert.ok(outs[i].finish, `stream ${i} got a finish_reason`);
    }
    assert.ok(stillRunning > 0, `the listener closed (${refused}) while streams were still in flight`);

    const { code, signal } = await withTimeout(gw.exit, deadline(20000), 'gateway exit after SIGTERM');
    assert.equal(signal, null, `exited by itself, not killed by ${signal}`);
    assert.equal(code, 0, 'exit status 0');
    t.diagnostic(`exited ${Date.now() - sigAt} ms after SIGTERM`);

    // No model process outlives it (and none is left as a zombie).
    for (const pid of children) {
      assert.ok(pidGone(pid), `child ${describePid(pid)} must be gone after the gateway exits`);
    }
  });
});

test('SIGTERM with no traffic exits 0 promptly and stops the running model', async (t) => {
  await withGateway(t, { models: { m: { cmd: fakeCmd('m') } } }, async (gw) => {
    const client = gw.client();
    await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 });
    const children = gw.children();
    assert.equal(children.length, 1);
    // An idle keep-alive connection (the SDK's) must not hold the shutdown up.
    const sigAt = Date.now();
    process.kill(gw.pid, 'SIGTERM');
    const { code, signal } = await withTimeout(gw.exit, deadline(12000), 'gateway exit after SIGTERM');
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.ok(Date.now() - sigAt < deadline(5000), `idle shutdown took ${Date.now() - sigAt} ms`);
    for (const pid of children) assert.ok(pidGone(pid), `child ${describePid(pid)} must be gone`);
  });
});

test('a stream longer than limits.shutdown_grace_s is cut at the grace, and the gateway exits 0', async (t) => {
  const models = { slow: { cmd: fakeCmd('slow', ['--token-us', 20000]) } };
  await withGateway(t, { models, extra: { limits: { shutdown_grace_s: 1 } } }, async (gw) => {
    const client = gw.client();
    // 500 tokens at 20 ms: 10 s, far beyond the 1 s grace.
    const stream = await client.chat.completions.create({
      model: 'slow',
      messages: [{ role: 'user', content: 'long' }],
      max_tokens: 500,
      stream: true,
    });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    const children = gw.children();
    const sigAt = Date.now();
    process.kill(gw.pid, 'SIGTERM');
    let n = 1;
    let err = null;
    const reading = (async () => {
      try {
        while (!(await it.next()).done) n++;
      } catch (e) {
        err = e;
      }
    })();
    await withTimeout(reading, deadline(8000), 'the stream to end after the grace period');
    const { code, signal } = await withTimeout(gw.exit, deadline(15000), 'gateway exit');
    const took = Date.now() - sigAt;
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.ok(n < 500, `the stream was cut (${n} chunks), not run to its end`);
    assert.ok(took >= 900, `the stream was allowed the grace period (${took} ms)`);
    assert.ok(took < deadline(8000), `exit ${took} ms after SIGTERM with a 1 s grace`);
    t.diagnostic(`stream ended after ${n} chunks (${err ? err.constructor.name : 'no error'}), exit after ${took} ms`);
    for (const pid of children) assert.ok(pidGone(pid), `child ${describePid(pid)} must be gone`);
  });
});

test('SIGKILL of the gateway takes its model processes with it', async (t) => {
  const models = { alpha: { cmd: fakeCmd('alpha') }, beta: { cmd: fakeCmd('beta') } };
  const extra = { groups: { both: { swap: false, members: ['alpha', 'beta'] } } };
  await withGateway(t, { models, extra }, async (gw) => {
    const client = gw.client();
    const msg = [{ role: 'user', content: 'x' }];
    await Promise.all([
      client.chat.completions.create({ model: 'alpha', messages: msg, max_tokens: 2 }),
      client.chat.completions.create({ model: 'beta', messages: msg, max_tokens: 2 }),
    ]);
    const children = gw.children();
    assert.equal(children.length, 2, `two model processes: ${children}`);
    process.kill(gw.pid, 'SIGKILL');
    const { signal } = await withTimeout(gw.exit, deadline(5000), 'gateway death');
    assert.equal(signal, 'SIGKILL');
    // The kernel kills them (PR_SET_PDEATHSIG); init reaps them.
    await waitFor(() => children.every((p) => pidGone(p) || procStat(p)?.state === 'Z'), {
      timeoutMs: deadline(5000),
      message: `children ${children.map(describePid).join(', ')} to die with the gateway`,
    });
  });
});
