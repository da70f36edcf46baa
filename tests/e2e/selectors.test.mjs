// llama-swap `selectors`: virtual model ids resolved per request. warm takes a target that is
// already loaded (else the first), pin always its first target, spillover the next target
// while the first is busy (fake-llama-server's --token-us keeps a request in flight). The
// upstream sees the target's name; /v1/models lists the selectors; a profile pin may name a
// selector; a reload applies changed selectors.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { assertErrorShape, deadline, fakeCmd, rawStream, readEvents, tempDir, toYaml, waitFor, withGateway } from './lib/harness.mjs';

const MESSAGES = [{ role: 'user', content: 'hi' }];

/** Models a, b, c (fake-llama-server, each with its own events file) that may run together. */
function threeModels(dir, flags = []) {
  const models = {};
  for (const id of ['a', 'b', 'c']) models[id] = { cmd: fakeCmd(id, ['--events-file', path.join(dir, `${id}.events`), ...flags]) };
  return { models, groups: { all: { swap: false, exclusive: false, members: ['a', 'b', 'c'] } } };
}

/** The chat requests model ID's process received (their body's model included). */
const served = (dir, id) => readEvents(path.join(dir, `${id}.events`)).filter((e) => e.event === 'request' && e.path === '/v1/chat/completions');

/** The state /running reports per model id. */
async function running(gw) {
  const list = (await gw.json('/running')).running;
  return Object.fromEntries(list.map((r) => [r.model, r.state]));
}

const ask = (gw, model) => gw.client().chat.completions.create({ model, messages: MESSAGES, max_tokens: 2 });

test('warm takes a loaded target, else the first; pin always takes its first target', async (t) => {
  const dir = await tempDir(t);
  const { models, groups } = threeModels(dir);
  const selectors = {
    w: { strategy: 'warm', targets: ['a', 'b'] },
    p: { strategy: 'pin', targets: ['c', 'b'] },
  };
  await withGateway(t, { models, extra: { groups, selectors } }, async (gw) => {
    // Nothing loaded: warm cold-starts its first target; the upstream sees the target's name.
    const r = await ask(gw, 'w');
    assert.equal(r.choices.length, 1);
    assert.equal(served(dir, 'a').length, 1);
    assert.equal(served(dir, 'a')[0].model, 'a');

    // Only b loaded: warm takes b and leaves a unloaded.
    const un = await gw.request('/models/unload', { method: 'POST', body: { model: 'a' } });
    assert.equal(un.status, 200, un.text);
    await waitFor(async () => !(await running(gw)).a, { timeoutMs: deadline(10000), message: 'a unloaded' });
    await ask(gw, 'b');
    await ask(gw, 'w');
    assert.equal(served(dir, 'b').length, 2);
    assert.equal(served(dir, 'b')[1].model, 'b');
    assert.equal(served(dir, 'a').length, 1, 'warm did not start a while b was loaded');
    assert.equal((await running(gw)).a, undefined);

    // pin starts its first target even though its second is the one loaded.
    await ask(gw, 'p');
    await ask(gw, 'p');
    assert.equal(served(dir, 'c').length, 2);
    assert.ok(served(dir, 'c').every((e) => e.model === 'c'));
    assert.equal(served(dir, 'b').length, 2);
  });
});

test('spillover sends to the next target while the first is busy', async (t) => {
  const dir = await tempDir(t);
  const { models, groups } = threeModels(dir, ['--token-us', '100000']);
  const selectors = { s: { strategy: 'spillover', targets: ['a', 'b'] } };
  await withGateway(t, { models, extra: { groups, selectors } }, async (gw) => {
    // A slow stream (about 3 s) keeps a busy.
    let chunks = 0;
    const slow = rawStream({
      port: gw.port,
      path: '/v1/chat/completions',
      body: { model: 's', messages: MESSAGES, max_tokens: 30, stream: true },
      onEvent: () => chunks++,
    });
    await waitFor(() => chunks > 0, { timeoutMs: deadline(10000), message: 'first streamed chunk' });
    assert.equal(served(dir, 'a').length, 1);

    // With a at its one request (settings.spillover defaults to 1), b takes the next.
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 's', messages: MESSAGES, max_tokens: 1 } });
    assert.equal(r.status, 200, r.text);
    assert.equal(served(dir, 'b').length, 1);
    assert.equal(served(dir, 'b')[0].model, 'b');
    assert.equal(served(dir, 'a').length, 1, 'the busy first target got no second request');
    const done = await slow;
    assert.equal(done.status, 200);
    assert.equal(served(dir, 'c').length, 0);
  });
});

test('spillover with settings.spillover fills the first target before the next', async (t) => {
  const dir = await tempDir(t);
  const { models, groups } = threeModels(dir, ['--token-us', '100000']);
  const selectors = { s: { strategy: 'spillover', targets: ['a', 'b'], settings: { spillover: 2 } } };
  await withGateway(t, { models, extra: { groups, selectors } }, async (gw) => {
    let chunks = 0;
    const body = { model: 's', messages: MESSAGES, max_tokens: 30, stream: true };
    const streams = [];
    for (let i = 1; i <= 2; i++) {
      streams.push(rawStream({ port: gw.port, path: '/v1/chat/completions', body, onEvent: () => chunks++ }));
      await waitFor(() => served(dir, 'a').length === i, { timeoutMs: deadline(10000), message: `request ${i} at a` });
    }
    await waitFor(() => chunks > 0, { timeoutMs: deadline(10000), message: 'streams flowing' });
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 's', messages: MESSAGES, max_tokens: 1 } });
    assert.equal(r.status, 200, r.text);
    assert.equal(served(dir, 'b').length, 1, 'the third request spilled over to b');
    assert.equal(served(dir, 'a').length, 2);
    for (const s of streams) assert.equal((await s).status, 200);
  });
});

test('/v1/models lists selectors; profiles may pin to one; unknown selectors 404', async (t) => {
  const dir = await tempDir(t);
  const { models, groups } = threeModels(dir);
  const selectors = {
    coder: { strategy: 'warm', targets: ['a', 'b'], name: 'Coding Model', description: 'best loaded coder', metadata: { purpose: 'coding' } },
    spill: { strategy: 'spillover', targets: ['b', 'c'], settings: { spillover: 4 } },
    hidden: { strategy: 'pin', targets: ['c'], unlisted: true },
  };
  const profiles = { work: { description: 'work', pins: { 'llm-code': 'coder' } } };
  await withGateway(t, { models, extra: { groups, selectors, profiles } }, async (gw) => {
    const list = (await gw.client().models.list()).data;
    const byId = Object.fromEntries(list.map((m) => [m.id, m]));
    assert.deepEqual(Object.keys(byId).sort(), ['a', 'b', 'c', 'coder', 'spill']);
    assert.equal(byId.coder.object, 'model');
    assert.equal(byId.coder.name, 'Coding Model');
    assert.equal(byId.coder.description, 'best loaded coder');
    assert.deepEqual(byId.coder.meta, { purpose: 'coding' });
    assert.deepEqual(byId.coder.selector, { strategy: 'warm', targets: ['a', 'b'] });
    assert.deepEqual(byId.spill.selector, { strategy: 'spillover', targets: ['b', 'c'], spillover: 4 });
    assert.equal(byId.coder.state, 'unloaded');

    await ask(gw, 'b');
    const after = Object.fromEntries((await gw.json('/v1/models')).data.map((m) => [m.id, m]));
    assert.equal(after.coder.state, 'ready', 'a selector shows the state of its loaded target');

    // The unlisted selector still serves.
    await ask(gw, 'hidden');
    assert.equal(served(dir, 'c').length, 1);

    // A profile pin to a selector goes through the selector (b is loaded: warm takes it).
    const put = await gw.request('/api/profiles/active', { method: 'PUT', body: { name: 'work' } });
    assert.equal(put.status, 200, put.text);
    await ask(gw, 'llm-code');
    assert.equal(served(dir, 'b').length, 2);
    assert.equal(served(dir, 'b')[1].model, 'b');
    assert.equal(served(dir, 'a').length, 0);
  });
});

test('a reload applies added, changed and removed selectors', async (t) => {
  const dir = await tempDir(t);
  const { models, groups } = threeModels(dir);
  await withGateway(t, { models, extra: { groups, selectors: { x: { strategy: 'pin', targets: ['a'] } } } }, async (gw) => {
    await ask(gw, 'x');
    assert.equal(served(dir, 'a').length, 1);
    const before = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'y', messages: MESSAGES } });
    assert.equal(assertErrorShape(assert, before, 404).code, 'model_not_found');

    const selectors = { x: { strategy: 'pin', targets: ['b'] }, y: { strategy: 'warm', targets: ['c', 'a'] } };
    await fsp.writeFile(gw.configPath, toYaml({ ...gw.config, groups, selectors }));
    const r = await gw.request('/admin/reload', { method: 'POST' });
    assert.equal(r.status, 200, r.text);

    await ask(gw, 'x');
    assert.equal(served(dir, 'b').length, 1, 'x now pins b');
    await ask(gw, 'y');
    assert.equal(served(dir, 'a').length, 2, 'y (warm) took the loaded a');
    const ids = (await gw.json('/v1/models')).data.map((m) => m.id).sort();
    assert.deepEqual(ids, ['a', 'b', 'c', 'x', 'y']);

    await fsp.writeFile(gw.configPath, toYaml({ ...gw.config, groups, selectors: undefined }));
    assert.equal((await gw.request('/admin/reload', { method: 'POST' })).status, 200);
    const gone = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'x', messages: MESSAGES } });
    assert.equal(assertErrorShape(assert, gone, 404).code, 'model_not_found');
    assert.ok(!(await gw.json('/v1/models')).data.some((m) => m.id === 'x'));
  });
});
