// Faults during streaming: upstream crash mid-stream, client abort.
import assert from 'node:assert/strict';
import path from 'node:path';
import http from 'node:http';
import { test } from 'node:test';
import OpenAI from 'openai';
import {
  deadline,
  fakeCmd,
  pidGone,
  procStat,
  rawStream,
  readEvents,
  waitFor,
  waitForEvent,
  withGateway,
  withTimeout,
} from './lib/harness.mjs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';

const MESSAGES = [{ role: 'user', content: 'Tell me a long story about a lighthouse.' }];

async function eventsDir(t) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ig-e2e-ev-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** No child of the gateway is a zombie (crashed children are reaped). */
async function noZombies(gw) {
  await waitFor(() => gw.children().every((p) => procStat(p)?.state !== 'Z'), {
    timeoutMs: deadline(5000),
    message: 'no zombie children of the gateway',
  });
}

test('upstream crash mid-stream: the SDK stream throws, then the model is served again', async (t) => {
  const dir = await eventsDir(t);
  const events = path.join(dir, 'crashy.events');
  await withGateway(
    t,
    { models: { crashy: { cmd: fakeCmd('crashy', ['--crash-after-tokens', 5, '--token-us', 2000, '--events-file', events]) } } },
    async (gw) => {
      const client = gw.client();
      // Warm up with a short request (fewer tokens than the crash point) and note the PID.
      const warm = await client.chat.completions.create({ model: 'crashy', messages: MESSAGES, max_tokens: 3 });
      assert.ok(warm.choices[0].message.content.length > 0);
      const [firstPid] = gw.children();
      assert.ok(firstPid, 'the model process is a child of the gateway');

      const started = Date.now();
      const stream = await client.chat.completions.create({ model: 'crashy', messages: MESSAGES, max_tokens: 16, stream: true });
      let content = 0;
      let err;
      try {
        await withTimeout(
          (async () => {
            for await (const chunk of stream) if (chunk.choices?.[0]?.delta?.content) content++;
          })(),
          deadline(10000),
          'reading the crashing stream',
        );
      } catch (e) {
        err = e;
      }
      assert.ok(err, 'the stream must not end as if it were complete');
      assert.ok(!/did not finish within/.test(err.message), `the stream hung: ${err.message}`);
      assert.ok(err instanceof OpenAI.APIError, `an APIError from the SSE error event, got ${err.constructor.name}: ${err.message}`);
      assert.ok(content <= 5, `at most 5 content chunks before the crash, got ${content}`);
      assert.ok(Date.now() - started < deadline(10000));

      // The crashed process is gone and reaped.
      await waitFor(() => pidGone(firstPid) || procStat(firstPid)?.state === 'Z', {
        timeoutMs: deadline(5000),
        message: `crashed fake ${firstPid} to exit`,
      });
      await noZombies(gw);

      // The next request is served again: the gateway restarts the model on demand.
      const next = await client.chat.completions.create({ model: 'crashy', messages: MESSAGES, max_tokens: 3 });
      assert.ok(next.choices[0].message.content.length > 0);
      const s2 = await client.chat.completions.create({ model: 'crashy', messages: MESSAGES, max_tokens: 3, stream: true });
      let text = '';
      for await (const chunk of s2) text += chunk.choices?.[0]?.delta?.content ?? '';
      assert.equal(text, next.choices[0].message.content);
      const kids = gw.children();
      assert.equal(kids.length, 1, `one model process now, got ${kids}`);
      assert.notEqual(kids[0], firstPid, 'a new process');
    },
  );
});

test('upstream crash mid-stream: the raw SSE ends with an error event and the connection ends', async (t) => {
  await withGateway(t, { models: { crashy: { cmd: fakeCmd('crashy', ['--crash-after-tokens', 5, '--token-us', 2000]) } } }, async (gw) => {
    const r = await rawStream({
      port: gw.port,
      path: '/v1/chat/completions',
      body: { model: 'crashy', messages: MESSAGES, max_tokens: 16, stream: true },
      timeoutMs: deadline(10000),
    });
    assert.equal(r.status, 200);
    assert.ok(r.events.length >= 1, 'some events');
    assert.notEqual(r.events.at(-1), '[DONE]', 'a crashed stream is not reported as complete');
    const last = JSON.parse(r.events.at(-1));
    assert.ok(last.error, `last event is an error: ${r.events.at(-1)}`);
    assert.equal(typeof last.error.message, 'string');
    assert.equal(typeof last.error.type, 'string');
    assert.ok(last.error.code === null || typeof last.error.code === 'string');
    assert.equal(r.rest.trim(), '', 'nothing after the error event');
    // Everything before it is an intact chunk.
    for (const e of r.events.slice(0, -1)) assert.equal(JSON.parse(e).object, 'chat.completion.chunk');
  });
});

test('client abort cancels the upstream request', async (t) => {
  const dir = await eventsDir(t);
  const events = path.join(dir, 'slow.events');
  await withGateway(
    t,
    { models: { slow: { cmd: fakeCmd('slow', ['--token-us', 20000, '--events-file', events]) } } },
    async (gw) => {
      const client = gw.client();
      const ac = new AbortController();
      const started = Date.now();
      const stream = await client.chat.completions.create(
        { model: 'slow', messages: MESSAGES, max_tokens: 500, stream: true },
        { signal: ac.signal },
      );
      let chunks = 0;
      try {
        for await (const chunk of stream) {
          void chunk;
          if (++chunks === 3) ac.abort();
        }
      } catch (e) {
        assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', `abort error, got ${e.constructor.name}: ${e.message}`);
      }
      assert.equal(chunks, 3, 'no chunk is delivered after the abort');
      // 500 tokens at 20 ms would take 10 s; the cancel must come well before that.
      const cancel = await waitForEvent(events, (e) => e.event === 'cancel', { timeoutMs: deadline(5000), message: 'cancel event' });
      assert.equal(cancel.stream, true);
      assert.ok(cancel.tokens_sent < 100, `upstream stopped early, after ${cancel.tokens_sent} of 500 tokens`);
      const req = readEvents(events).find((e) => e.event === 'request' && e.id === cancel.id);
      assert.ok(req, 'the cancel belongs to a request the fake saw');
      assert.ok(Date.now() - started < deadline(5000), 'cancelled promptly');
      assert.ok(!readEvents(events).some((e) => e.event === 'done'), 'the aborted request never completed upstream');

      // The model and the gateway are fine afterwards.
      const res = await client.chat.completions.create({ model: 'slow', messages: MESSAGES, max_tokens: 2 });
      assert.ok(res.choices[0].message.content.length > 0);
    },
  );
});

test('a hung upstream is cut by limits.request_timeout_s: 504, or an error event mid-stream', async (t) => {
  const dir = await eventsDir(t);
  const events = path.join(dir, 'hang.events');
  const models = { hang: { cmd: fakeCmd('hang', ['--hang-after-tokens', 3, '--events-file', events]) } };
  await withGateway(t, { models, extra: { limits: { request_timeout_s: 1 } } }, async (gw) => {
    const client = gw.client();
    // Non-stream: nothing comes back at all, so the client gets a 504.
    const t0 = Date.now();
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'hang', messages: MESSAGES, max_tokens: 10 } });
    assert.equal(r.status, 504, `504 for a hung upstream: ${r.text}`);
    assert.equal(r.json?.error?.code, 'upstream_error');
    assert.ok(Date.now() - t0 < deadline(5000), `answered after ${Date.now() - t0} ms`);

    // Stream: 3 chunks, then the error event, then the end.
    const t1 = Date.now();
    const s = await rawStream({
      port: gw.port,
      path: '/v1/chat/completions',
      body: { model: 'hang', messages: MESSAGES, max_tokens: 10, stream: true },
      timeoutMs: deadline(8000),
    });
    assert.equal(s.status, 200);
    assert.ok(Date.now() - t1 < deadline(5000), `stream ended after ${Date.now() - t1} ms`);
    const last = JSON.parse(s.events.at(-1));
    assert.ok(last.error, `the stream ends with an error event: ${s.events.at(-1)}`);
    // The SDK raises it.
    const stream = await client.chat.completions.create({ model: 'hang', messages: MESSAGES, max_tokens: 10, stream: true });
    const err = await withTimeout(
      (async () => {
        try {
          for await (const c of stream) void c;
        } catch (e) {
          return e;
        }
        return null;
      })(),
      deadline(8000),
      'SDK stream of a hung upstream',
    );
    assert.ok(err instanceof OpenAI.APIError, `APIError, got ${err?.constructor?.name}: ${err?.message}`);
    // And the hung upstream request was cancelled, not left open.
    await waitFor(() => readEvents(events).filter((e) => e.event === 'cancel').length >= 3, {
      timeoutMs: deadline(5000),
      message: 'a cancel event for each timed-out request',
    });
  });
});

test('the watchdog kills a model whose stream stalls; the next request gets a fresh process', async (t) => {
  const models = { hang: { cmd: fakeCmd('hang', ['--hang-after-tokens', 3]) } };
  await withGateway(t, { models, extra: { limits: { watchdog_s: 1, request_timeout_s: 60 } } }, async (gw) => {
    const t0 = Date.now();
    const s = await rawStream({
      port: gw.port,
      path: '/v1/chat/completions',
      body: { model: 'hang', messages: MESSAGES, max_tokens: 10, stream: true },
      timeoutMs: deadline(10000),
    });
    const elapsed = Date.now() - t0;
    assert.equal(s.status, 200);
    assert.ok(elapsed >= 900 && elapsed < deadline(5000), `cut by the 1 s watchdog after ${elapsed} ms`);
    const last = JSON.parse(s.events.at(-1));
    assert.match(last.error?.message ?? '', /made no progress for 1 s \(watchdog\)/, s.events.at(-1));
    let status;
    await waitFor(async () => {
      status = (await gw.json('/status')).models.find((m) => m.id === 'hang');
      return status.state === 'failed'; // "stopping" until the SIGKILLed process is reaped
    }, { timeoutMs: deadline(3000), message: 'hang shows failed' });
    assert.match(status.last_error, /watchdog/);
    const firstPid = gw.children()[0];
    if (firstPid) await waitFor(() => pidGone(firstPid), { timeoutMs: deadline(3000), message: 'the hung process was killed' });
    // A request that finishes before the fake's hang point is served by a new process.
    const res = await gw.client().chat.completions.create({ model: 'hang', messages: MESSAGES, max_tokens: 2 });
    assert.equal(res.usage.completion_tokens, 2);
    assert.equal((gw.output().match(/model hang: started pid/g) ?? []).length, 2);
  });
});

test('a client that stops reading is not mistaken for a stalled model by the watchdog', async (t) => {
  const models = { big: { cmd: fakeCmd('big') } };
  await withGateway(t, { models, extra: { limits: { watchdog_s: 1 } } }, async (gw) => {
    // ~15 MB of SSE: more than the gateway's 1 MiB high-water mark and the socket buffers,
    // so the upstream is paused while this client sleeps for 2.5 watchdog periods.
    const body = JSON.stringify({ model: 'big', messages: MESSAGES, max_tokens: 60000, stream: true });
    const text = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: gw.port, method: 'POST', path: '/v1/chat/completions', agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        const parts = [];
        res.pause();
        setTimeout(() => {
          res.on('data', (d) => parts.push(d));
          res.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
          res.resume();
        }, 2500);
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.ok(text.length > 10e6, `a large stream (${text.length} bytes)`);
    assert.doesNotMatch(text, /watchdog/);
    assert.match(text, /data: \[DONE\]\s*$/);
    assert.equal((gw.output().match(/model big: started pid/g) ?? []).length, 1, 'the model was not restarted');
  });
});

test('a non-streamed request whose model dies before answering is sent once more, then fails', async (t) => {
  await withGateway(t, { models: { crashy: { cmd: fakeCmd('crashy', ['--crash-after-tokens', 5]) } } }, async (gw) => {
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'crashy', messages: MESSAGES, max_tokens: 16 } });
    assert.equal(r.status, 502, r.text);
    assert.equal(r.json?.error?.code, 'upstream_error');
    await waitFor(() => (gw.output().match(/model crashy: started pid/g) ?? []).length === 2, {
      timeoutMs: deadline(5000), message: 'two starts',
    });
    assert.equal((gw.output().match(/model crashy died during a request; sending it again/g) ?? []).length, 1, 'one retry, not a loop');
    // A request the model can finish is served by the restarted process.
    const ok = await gw.client().chat.completions.create({ model: 'crashy', messages: MESSAGES, max_tokens: 3 });
    assert.equal(ok.usage.completion_tokens, 3);
  });
});
