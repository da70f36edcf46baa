// Model lifecycle over the API: llama.cpp's router endpoints (/models, /models/load,
// /models/unload), llama-swap's unload API, /status, crash detection and back-off,
// /logs and /logs/stream, /upstream/MODEL/... passthrough, preload, priority, profiles, ttl
// and cmdStop.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  FAKE,
  assertErrorShape,
  attachOutput,
  guardWith,
  deadline,
  fakeCmd,
  pidGone,
  startGateway,
  suiteScope,
  waitFor,
} from './lib/harness.mjs';

const MESSAGES = [{ role: 'user', content: 'hi' }];

/** Opens GET PATH as a live text stream; returns {text(), close(), status}. */
function openTextStream(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    let text = '';
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('error', () => {});
      resolve({ status: res.statusCode, headers: res.headers, text: () => text, close: () => req.destroy() });
    });
    req.on('error', reject);
  });
}

describe('lifecycle API', () => {
  const scope = suiteScope();
  let gw;

  before(async () => {
    gw = await startGateway(scope.t, {
      models: {
        alpha: { cmd: fakeCmd('alpha'), aliases: ['a1'] },
        // Prints a marker line before it serves, so its output shows in the logs.
        talker: { cmd: `/bin/sh -c "echo talker-says-hello; exec ${FAKE} --port \${PORT} --model talker"` },
        slow: { cmd: fakeCmd('slow', ['--startup-ms', 300]) },
        broken: { cmd: fakeCmd('broken', ['--no-such-flag']) },
        'org/nested': { cmd: fakeCmd('nested') },
        // The server exits on SIGTERM but its shell ignores it and lingers: only the SIGKILL
        // that follows unloadTimeout ends the model's process.
        stubborn: { cmd: `/bin/sh -c "trap '' TERM; ${FAKE} --port \${PORT} --model stubborn; sleep 30"`, unloadTimeout: 1 },
      },
      extra: {
        groups: { all: { swap: false, exclusive: false, members: ['alpha', 'talker', 'slow', 'broken', 'org/nested', 'stubborn'] } },
        limits: { queue_timeout_s: 2 },
      },
    });
  });
  after(scope.cleanup);

  const guarded = guardWith(() => gw); // failures carry the gateway's output
  const routerModel = async (id) => (await gw.request('/models')).json.data.find((m) => m.id === id);
  const statusModel = async (id) => (await gw.request('/status')).json.models.find((m) => m.id === id);

  test('/models lists every model in the router shape; /models/load waits until it is loaded', guarded(async () => {
    const list = await gw.request('/models');
    assert.equal(list.status, 200);
    assert.equal(list.json.object, 'list');
    assert.deepEqual(list.json.data.map((m) => m.id).sort(), ['alpha', 'broken', 'org/nested', 'slow', 'stubborn', 'talker']);
    assert.deepEqual((await routerModel('slow')).status, { value: 'unloaded' });

    const loading = gw.request('/models/load', { method: 'POST', body: { model: 'slow' } });
    await waitFor(async () => (await routerModel('slow')).status.value === 'loading', {
      timeoutMs: deadline(5000), message: 'slow shows loading',
    });
    const r = await loading;
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { success: true, model: 'slow', state: 'ready' });
    assert.equal((await routerModel('slow')).status.value, 'loaded');
    const st = await statusModel('slow');
    assert.equal(st.state, 'ready');
    assert.ok(st.pid > 0, 'a loaded model has a pid');
    assert.equal(st.in_flight, 0, 'a load holds no request');

    const un = await gw.request('/models/unload', { method: 'POST', body: { model: 'slow' } });
    assert.deepEqual(un.json, { success: true, model: 'slow' });
    await waitFor(async () => (await routerModel('slow')).status.value === 'unloaded', {
      timeoutMs: deadline(5000), message: 'slow unloaded',
    });
    await waitFor(() => pidGone(st.pid), { timeoutMs: deadline(5000), message: 'its process exited' });
  }));

  test('load and unload errors use the OpenAI error shape', guarded(async () => {
    assertErrorShape(assert, await gw.request('/models/load', { method: 'POST', body: { model: 'nope' } }), 404);
    assertErrorShape(assert, await gw.request('/models/load', { method: 'POST', body: {} }), 400);
    assertErrorShape(assert, await gw.request('/models/load', { method: 'POST', body: '{"model":' }), 400);
    assertErrorShape(assert, await gw.request('/models/unload', { method: 'POST', body: { model: 'nope' } }), 404);
    assertErrorShape(assert, await gw.request('/api/models/unload/nope', { method: 'POST' }), 404);
    assertErrorShape(assert, await gw.request('/models/load', { method: 'GET' }), 405);
  }));

  test('llama-swap\'s /api/models/unload stops one model by path, or all', guarded(async () => {
    for (const model of ['alpha', 'a1']) {
      const r = await gw.request('/models/load', { method: 'POST', body: { model } });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.model, 'alpha', 'an alias loads its model');
    }
    assert.equal((await gw.request('/models/load', { method: 'POST', body: { model: 'talker' } })).status, 200);
    const one = await gw.request('/api/models/unload/alpha', { method: 'POST' });
    assert.equal(one.status, 200);
    await waitFor(async () => (await statusModel('alpha')).state === 'unloaded', { timeoutMs: deadline(5000), message: 'alpha unloaded' });
    assert.equal((await statusModel('talker')).state, 'ready', 'the other model keeps running');
    const all = await gw.request('/api/models/unload', { method: 'POST' });
    assert.equal(all.status, 200);
    await waitFor(async () => (await gw.request('/status')).json.children === 0, { timeoutMs: deadline(5000), message: 'no children' });
  }));

  test('a crashed model is seen at once, shows failed, and the next request restarts it', guarded(async () => {
    const client = gw.client();
    await client.chat.completions.create({ model: 'alpha', messages: MESSAGES, max_tokens: 2 });
    const { pid } = await statusModel('alpha');
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => (await statusModel('alpha')).state === 'failed', { timeoutMs: deadline(3000), message: 'alpha failed' });
    const failed = await routerModel('alpha');
    assert.equal(failed.status.failed, true);
    assert.equal(failed.status.exit_code, 128 + 9, 'killed by signal 9');
    const res = await client.chat.completions.create({ model: 'alpha', messages: MESSAGES, max_tokens: 2 });
    assert.equal(res.choices[0].message.role, 'assistant');
    const st = await statusModel('alpha');
    assert.equal(st.state, 'ready');
    assert.notEqual(st.pid, pid);
  }));

  test('repeated start failures back off: beyond the queue wait the client gets 503 with Retry-After at once', guarded(async () => {
    const body = { model: 'broken', messages: MESSAGES };
    const first = await gw.request('/v1/chat/completions', { method: 'POST', body });
    assertErrorShape(assert, first, 502);
    const second = await gw.request('/v1/chat/completions', { method: 'POST', body });
    assertErrorShape(assert, second, 502); // the first retry is immediate
    const third = await gw.request('/v1/chat/completions', { method: 'POST', body });
    assertErrorShape(assert, third, 502); // waited out the 1 s back-off within the 2 s queue bound
    const t0 = Date.now();
    const fourth = await gw.request('/v1/chat/completions', { method: 'POST', body });
    const e = assertErrorShape(assert, fourth, 503);
    assert.ok(Date.now() - t0 < deadline(1000), 'answered without waiting');
    assert.match(e.message, /failed 3 times in a row; next start in \d+ s; last error: .*no-such-flag/);
    assert.ok(Number(fourth.headers['retry-after']) >= 1);
    const st = await statusModel('broken');
    assert.equal(st.failures, 3);
    assert.ok(st.retry_in_ms > 0);
    assert.match(st.last_error, /exited with status 2/);
    const starts = gw.output().match(/model broken: started pid/g) ?? [];
    assert.equal(starts.length, 3, 'no start during the back-off');

    // An operator's unload clears the failed state and the back-off.
    await gw.request('/models/unload', { method: 'POST', body: { model: 'broken' } });
    const cleared = await statusModel('broken');
    assert.equal(cleared.state, 'unloaded');
    assert.equal(cleared.failures, 0);
    assert.equal(cleared.retry_in_ms, 0);
  }));

  test('/logs has the gateway\'s lines and model output; /logs/stream/MODEL follows one model live', guarded(async () => {
    const stream = await openTextStream(gw.port, '/logs/stream/talker?no-history');
    const all = await openTextStream(gw.port, '/logs/stream');
    try {
      assert.equal(stream.status, 200);
      assert.match(stream.headers['content-type'], /^text\/plain/);
      await gw.request('/api/models/unload/talker', { method: 'POST' });
      await waitFor(async () => (await statusModel('talker')).state === 'unloaded', { timeoutMs: deadline(5000), message: 'talker unloaded' });
      assert.equal((await gw.request('/models/load', { method: 'POST', body: { model: 'talker' } })).status, 200);
      await waitFor(() => stream.text().includes('talker-says-hello'), { timeoutMs: deadline(5000), message: 'the live line on the model stream' });
      assert.doesNotMatch(stream.text(), /model talker: started pid/, 'a model stream has only the model\'s output');
      await waitFor(() => /\[talker\] talker-says-hello/.test(all.text()) && /model talker: started pid/.test(all.text()), {
        timeoutMs: deadline(5000), message: 'the combined stream has both, model lines prefixed',
      });
      // With Accept: text/event-stream the same lines come as SSE events, one per line.
      const sse = await openTextStream(gw.port, '/logs/stream/upstream', { accept: 'text/event-stream' });
      try {
        assert.match(sse.headers['content-type'], /^text\/event-stream/);
        await waitFor(() => /^data: \[talker\] talker-says-hello\n\n/m.test(sse.text()), {
          timeoutMs: deadline(5000), message: 'the history as SSE events',
        });
        const events = sse.text().split('\n\n').slice(0, -1); // the last piece may be partial
        assert.ok(events.length > 0 && events.every((e) => e.startsWith('data: ') && !e.slice(6).includes('\n')), 'one line per event');
      } finally {
        sse.close();
      }
      const logs = await gw.request('/logs');
      assert.equal(logs.status, 200);
      assert.match(logs.text, /\[talker\] talker-says-hello/);
      assert.match(logs.text, /INFO +model talker: ready in \d+ ms/);
      const proxyOnly = await gw.request('/logs/stream/proxy', { timeoutMs: 300 }).catch((e) => e);
      assert.ok(proxyOnly instanceof Error, 'a log stream stays open');
      assertErrorShape(assert, await gw.request('/logs/stream/no-such-source'), 400);
    } finally {
      stream.close();
      all.close();
    }
  }));

  test('/upstream/MODEL/PATH passes any request to the model\'s server, starting it; ids with "/" work', guarded(async () => {
    await gw.request('/api/models/unload', { method: 'POST' });
    const health = await gw.request('/upstream/org/nested/health');
    assert.equal(health.status, 200, health.text);
    assert.equal((await statusModel('org/nested')).state, 'ready', 'the request started the model');
    const props = await gw.request('/upstream/a1/v1/chat/completions', { method: 'POST', body: { messages: MESSAGES, max_tokens: 2 } });
    assert.equal(props.status, 200, props.text);
    assert.equal(props.json.object, 'chat.completion');
    assertErrorShape(assert, await gw.request('/upstream/no-such-model/health'), 404);
    assertErrorShape(assert, await gw.request('/upstream/'), 404);
  }));

  test('a model that ignores SIGTERM is killed after its unloadTimeout', guarded(async () => {
    assert.equal((await gw.request('/models/load', { method: 'POST', body: { model: 'stubborn' } })).status, 200);
    const { pid } = await statusModel('stubborn');
    const t0 = Date.now();
    await gw.request('/models/unload', { method: 'POST', body: { model: 'stubborn' } });
    assert.equal((await statusModel('stubborn')).state, 'stopping');
    await waitFor(async () => (await statusModel('stubborn')).state === 'unloaded', { timeoutMs: deadline(5000), message: 'stubborn unloaded' });
    assert.ok(Date.now() - t0 >= 900, `SIGKILL came after the 1 s unloadTimeout, not before (${Date.now() - t0} ms)`);
    assert.ok(pidGone(pid));
    assert.match(gw.output(), /model stubborn: did not stop in 1 s \(unloadTimeout\), sending SIGKILL/);
  }));

  test('/status reports the server and every model', guarded(async () => {
    const r = await gw.request('/status');
    assert.equal(r.status, 200);
    assert.match(r.json.version, /^\d+\.\d+\.\d+/);
    assert.ok(r.json.uptime_s >= 0);
    assert.equal(r.json.models.length, 6);
    for (const m of r.json.models) {
      assert.ok(['unloaded', 'starting', 'ready', 'stopping', 'failed'].includes(m.state), m.state);
      for (const k of ['in_flight', 'waiting', 'failures', 'pid', 'uptime_ms', 'idle_ms', 'retry_in_ms']) assert.equal(typeof m[k], 'number', k);
    }
  }));
});

describe('hooks.on_startup.preload', () => {
  const scope = suiteScope();
  after(scope.cleanup);

  test('preloaded models start without a request; under swap rules the last one stays', async () => {
    const gw = await startGateway(scope.t, {
      models: {
        one: { cmd: fakeCmd('one'), aliases: ['first'] },
        two: { cmd: fakeCmd('two') },
        three: { cmd: fakeCmd('three') },
      },
      extra: {
        groups: { side: { swap: false, exclusive: false, members: ['one', 'two'] } },
        hooks: { on_startup: { preload: ['first', 'two', 'three', 'no-such-model'] } },
      },
    });
    try {
      const state = async () => Object.fromEntries((await gw.request('/status')).json.models.map((m) => [m.id, m.state]));
      // "three" is in the default (swap, exclusive) group: it is started after one and two and
      // stops them; that is llama-swap's behaviour for conflicting preloads.
      await waitFor(async () => (await state()).three === 'ready', { timeoutMs: deadline(10000), message: 'three preloaded' });
      await waitFor(async () => {
        const s = await state();
        return s.one === 'unloaded' && s.two === 'unloaded';
      }, { timeoutMs: deadline(10000), message: 'the earlier preloads were swapped out' });
      assert.match(gw.output(), /model one: started pid[\s\S]*model two: started pid[\s\S]*model three: started pid/, 'started in order');
      assert.match(gw.output(), /preload: unknown model 'no-such-model' is ignored/);
    } catch (e) {
      throw attachOutput(e, gw);
    }
  });
});

describe('routing.scheduler.settings.fifo.priority', () => {
  const scope = suiteScope();
  after(scope.cleanup);

  test('when a swap frees the machine, the waiting model with the higher priority starts first', async () => {
    const gw = await startGateway(scope.t, {
      models: {
        hold: { cmd: fakeCmd('hold', ['--token-us', 20000]) },
        low: { cmd: fakeCmd('low') },
        high: { cmd: fakeCmd('high') },
      },
      extra: { routing: { scheduler: { use: 'fifo', settings: { fifo: { priority: { high: 10, low: 1 } } } } } },
    });
    try {
      const client = gw.client();
      const statusOf = async () => Object.fromEntries((await gw.request('/status')).json.models.map((m) => [m.id, m]));
      // A 2 s stream keeps "hold" busy while the other two queue behind the swap.
      const holding = client.chat.completions.create({ model: 'hold', messages: MESSAGES, max_tokens: 100, stream: true });
      const stream = await holding;
      const drained = (async () => {
        for await (const _ of stream);
      })();
      const low = client.chat.completions.create({ model: 'low', messages: MESSAGES, max_tokens: 2 });
      await waitFor(async () => (await statusOf()).low.waiting === 1, { timeoutMs: deadline(3000), message: 'low queued' });
      const high = client.chat.completions.create({ model: 'high', messages: MESSAGES, max_tokens: 2 });
      await waitFor(async () => (await statusOf()).high.waiting === 1, { timeoutMs: deadline(3000), message: 'high queued' });
      assert.equal((await statusOf()).hold.in_flight, 1, 'both queued while hold was still busy');
      await Promise.all([drained, low, high]);
      assert.match(gw.output(), /model high: started pid[\s\S]*model low: started pid/, 'high started before low, though low asked first');
    } catch (e) {
      throw attachOutput(e, gw);
    }
  });
});

describe('profiles', () => {
  const scope = suiteScope();
  after(scope.cleanup);

  test('pins switch at run time through /api/profiles/active; a null pin disables a name; a reload selects none', async () => {
    const gw = await startGateway(scope.t, {
      models: { alpha: { cmd: fakeCmd('alpha') }, beta: { cmd: fakeCmd('beta') } },
      extra: {
        groups: { all: { swap: false, exclusive: false, members: ['alpha', 'beta'] } },
        profiles: {
          coding: { description: 'code on alpha', pins: { code: 'alpha', images: null } },
          writing: { pins: { code: 'beta' } },
        },
      },
    });
    try {
      const ask = (model) => gw.request('/v1/chat/completions', { method: 'POST', body: { model, messages: MESSAGES, max_tokens: 2 } });
      const put = (body) => gw.request('/api/profiles/active', { method: 'PUT', body });
      const running = async () => (await gw.json('/running')).running.map((m) => m.model).sort();
      const list = await gw.json('/api/profiles');
      assert.deepEqual(list, {
        active: null,
        profiles: [
          { id: 'coding', description: 'code on alpha', pins: { code: 'alpha', images: '' } },
          { id: 'writing', description: '', pins: { code: 'beta' } },
        ],
      });
      assertErrorShape(assert, await ask('code'), 404); // no profile: "code" is no model

      assert.deepEqual((await put({ name: 'coding' })).json, { active: 'coding' });
      assert.equal((await ask('code')).status, 200);
      assert.deepEqual(await running(), ['alpha'], 'coding pins code to alpha');
      const off = assertErrorShape(assert, await ask('images'), 404);
      assert.match(off.message, /disabled by profile coding/);

      assert.deepEqual((await put({ name: 'writing' })).json, { active: 'writing' });
      const up = await gw.request('/upstream/code/health');
      assert.equal(up.status, 200);
      assert.deepEqual(await running(), ['alpha', 'beta'], 'writing pins code to beta (also on /upstream)');

      assertErrorShape(assert, await put({ name: 'nope' }), 404);
      assertErrorShape(assert, await put({}), 400);
      assertErrorShape(assert, await put({ name: 5 }), 400);
      assert.equal((await gw.json('/api/profiles')).active, 'writing', 'a bad request changes nothing');
      assert.deepEqual((await put({ name: null })).json, { active: null });
      assertErrorShape(assert, await ask('code'), 404);

      await put({ name: 'coding' });
      assert.equal((await gw.request('/admin/reload', { method: 'POST' })).status, 200);
      assert.equal((await gw.json('/api/profiles')).active, null, 'a reload selects no profile');
    } catch (e) {
      throw attachOutput(e, gw);
    }
  });
});

describe('ttl', () => {
  const scope = suiteScope();
  after(scope.cleanup);

  test('idle models unload after their ttl (or globalTTL), never while busy; ttl: 0 never unloads', async () => {
    const gw = await startGateway(scope.t, {
      models: {
        short: { cmd: fakeCmd('short', ['--token-us', 20000]), ttl: 1 },
        global: { cmd: fakeCmd('global') }, // no ttl: globalTTL applies
        forever: { cmd: fakeCmd('forever'), ttl: 0 },
      },
      extra: {
        globalTTL: 1,
        groups: { all: { swap: false, exclusive: false, members: ['short', 'global', 'forever'] } },
      },
    });
    try {
      const client = gw.client();
      const state = async () => Object.fromEntries((await gw.json('/status')).models.map((m) => [m.id, m.state]));
      // A 2 s stream on "short" outlives its 1 s ttl: the ttl counts from the end of it.
      const stream = await client.chat.completions.create({ model: 'short', messages: MESSAGES, max_tokens: 100, stream: true });
      let n = 0;
      for await (const c of stream) if (c.choices[0]?.delta?.content) n++;
      assert.equal(n, 100, 'the stream was not cut by the ttl');
      const ended = Date.now();
      await client.chat.completions.create({ model: 'global', messages: MESSAGES, max_tokens: 2 });
      await client.chat.completions.create({ model: 'forever', messages: MESSAGES, max_tokens: 2 });
      assert.equal((await state()).short, 'ready');
      await waitFor(async () => {
        const s = await state();
        return s.short === 'unloaded' && s.global === 'unloaded';
      }, { timeoutMs: deadline(5000), message: 'short and global unloaded' });
      assert.ok(Date.now() - ended >= 900, 'not before the ttl');
      assert.equal((await state()).forever, 'ready', 'ttl: 0 overrides globalTTL');
      assert.match(gw.output(), /model short: idle for its ttl, unloading/);
    } catch (e) {
      throw attachOutput(e, gw);
    }
  });
});

describe('cmdStop', () => {
  const scope = suiteScope();
  let gw;
  let dir;

  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ig-cmdstop-'));
    gw = await startGateway(scope.t, {
      models: {
        // As with `docker stop`: the stop command ends the server by other means than our signal.
        polite: { cmd: fakeCmd('polite'), cmdStop: `/bin/sh -c "echo stopped \${PID} > ${dir}/stop.txt; kill -TERM \${PID}"` },
        missing: { cmd: fakeCmd('missing'), cmdStop: `${dir}/no-such-stop-command` },
      },
      extra: { groups: { g: { swap: false, exclusive: false, members: ['polite', 'missing'] } } },
    });
  });
  after(async () => {
    await scope.cleanup();
    await fsp.rm(dir, { recursive: true, force: true });
  });
  const statusModel = async (id) => (await gw.json('/status')).models.find((m) => m.id === id);

  test('unloading runs cmdStop with ${PID}; a cmdStop that cannot start falls back to SIGTERM', async () => {
    for (const id of ['polite', 'missing']) {
      assert.equal((await gw.request('/models/load', { method: 'POST', body: { model: id } })).status, 200);
    }
    const polite = (await statusModel('polite')).pid;
    const missing = (await statusModel('missing')).pid;
    await gw.request('/models/unload', { method: 'POST', body: { model: 'polite' } });
    await waitFor(async () => (await statusModel('polite')).state === 'unloaded', { timeoutMs: deadline(5000), message: 'polite unloaded' });
    assert.equal((await fsp.readFile(path.join(dir, 'stop.txt'), 'utf8')).trim(), `stopped ${polite}`);
    assert.ok(pidGone(polite));
    await gw.request('/models/unload', { method: 'POST', body: { model: 'missing' } });
    await waitFor(async () => (await statusModel('missing')).state === 'unloaded', { timeoutMs: deadline(5000), message: 'missing unloaded' });
    assert.ok(pidGone(missing));
    assert.match(gw.output(), /model missing: cmdStop failed \(.*no-such-stop-command.*\); sending SIGTERM/);
    assert.doesNotMatch(gw.output(), /SIGKILL/);
  });
});
