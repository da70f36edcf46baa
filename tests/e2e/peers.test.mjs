// llama-swap `peers`: remote OpenAI-compatible servers and the models they serve. Two
// fake-llama-server processes started by this file are the peers. A request for
// "<peer>/<model>" (or the plain model name when one peer alone serves it and no local model
// has it) reaches that peer with the plain model name, the peer's apiKey and its filters;
// /v1/models lists the peer models with owned_by = the peer; local names win a clash; a
// reload adds and removes peers like models.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import {
  FAKE,
  assertErrorShape,
  deadline,
  fakeCmd,
  freePort,
  rawRequest,
  readEvents,
  tempDir,
  toYaml,
  waitFor,
  waitForEvent,
  withGateway,
} from './lib/harness.mjs';

const MESSAGES = [{ role: 'user', content: 'hi' }];
const PEER_KEY = 'sk-peer-alpha-0123456789';

/** Starts a fake-llama-server on a free port as a peer; killed by PID after the test. */
async function startPeer(t, dir, name) {
  const port = await freePort();
  const events = path.join(dir, `${name}.events`);
  const child = spawn(FAKE, ['--port', String(port), '--model', name, '--events-file', events], { stdio: 'ignore' });
  t.after(() => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {}
  });
  await waitFor(async () => (await rawRequest({ port, path: '/health', timeoutMs: 500 })).status === 200, {
    timeoutMs: deadline(5000),
    message: `peer ${name} /health`,
  });
  return { url: `http://127.0.0.1:${port}`, events };
}

/** The request events a peer saw for chat completions. */
const chats = (peer) => readEvents(peer.events).filter((e) => e.event === 'request' && e.path === '/v1/chat/completions');

test('peer models are routed to their peer with its apiKey and filters; local names win', async (t) => {
  const dir = await tempDir(t);
  const alpha = await startPeer(t, dir, 'alpha');
  const beta = await startPeer(t, dir, 'beta');
  const localEvents = path.join(dir, 'local.events');
  const peers = {
    alpha: {
      proxy: alpha.url,
      apiKey: PEER_KEY,
      models: ['llama', 'shared'],
      filters: { stripParams: 'temperature, top_p', setParams: { provider: { zdr: true } } },
    },
    beta: { proxy: `${beta.url}/`, models: ['shared', 'other'] },
  };
  const models = { other: { cmd: fakeCmd('other', ['--events-file', localEvents]) } };
  await withGateway(t, { models, extra: { peers } }, async (gw) => {
    const client = gw.client();

    // A plain name served by one peer only; the peer gets its own name, key and filters.
    const r = await client.chat.completions.create({ model: 'llama', messages: MESSAGES, max_tokens: 3, temperature: 0.2, top_p: 0.5 });
    assert.equal(r.choices.length, 1);
    const seen = await waitForEvent(alpha.events, (e) => e.event === 'request' && e.model === 'llama', { message: 'llama at alpha' });
    assert.equal(seen.authorization, `Bearer ${PEER_KEY}`, 'the peer apiKey replaces the client key');
    assert.equal(seen.body.temperature, undefined, 'stripParams removed temperature');
    assert.equal(seen.body.top_p, undefined, 'stripParams removed top_p');
    assert.deepEqual(seen.body.provider, { zdr: true }, 'setParams added provider');
    assert.equal(seen.body.max_tokens, 3);

    // The full name works too; a streamed answer comes through whole.
    const stream = await client.chat.completions.create({ model: 'alpha/shared', messages: MESSAGES, max_tokens: 4, stream: true });
    let pieces = 0;
    for await (const c of stream) if (c.choices[0]?.delta?.content) pieces++;
    assert.equal(pieces, 4);
    await waitForEvent(alpha.events, (e) => e.event === 'request' && e.model === 'shared', { message: 'shared at alpha' });

    // beta: no apiKey, no filters, a proxy with a trailing slash.
    await client.chat.completions.create({ model: 'beta/shared', messages: MESSAGES, max_tokens: 2, temperature: 0.2 });
    const b = await waitForEvent(beta.events, (e) => e.event === 'request' && e.model === 'shared', { message: 'shared at beta' });
    assert.equal(b.body.temperature, 0.2);
    assert.equal(b.authorization, null, 'no apiKey: no key at all (client keys are never forwarded)');

    // Served by two peers: the plain name is ambiguous and needs the peer's name.
    const amb = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'shared', messages: MESSAGES } });
    assert.equal(assertErrorShape(assert, amb, 404).code, 'model_not_found');

    // "other" is a local model too: the local one wins, beta/other reaches beta.
    await client.chat.completions.create({ model: 'other', messages: MESSAGES, max_tokens: 2 });
    await waitForEvent(localEvents, (e) => e.event === 'request' && e.model === 'other', { message: 'other at the local model' });
    assert.equal(chats(beta).filter((e) => e.model === 'other').length, 0, 'the plain name did not go to beta');
    await client.chat.completions.create({ model: 'beta/other', messages: MESSAGES, max_tokens: 2 });
    await waitForEvent(beta.events, (e) => e.event === 'request' && e.model === 'other', { message: 'other at beta' });

    // /v1/models: every peer model by its full name, owned by its peer.
    const list = (await gw.json('/v1/models')).data;
    const byId = Object.fromEntries(list.map((m) => [m.id, m]));
    for (const id of ['alpha/llama', 'alpha/shared', 'beta/shared', 'beta/other']) {
      assert.ok(byId[id], `${id} listed: ${JSON.stringify(list.map((m) => m.id))}`);
      assert.equal(byId[id].owned_by, id.split('/')[0]);
      assert.equal(byId[id].peer, id.split('/')[0]);
    }
    assert.deepEqual(byId['alpha/llama'].aliases, ['llama']);
    assert.equal(byId.other.owned_by, 'infergate');
    assert.equal(byId.other.peer, undefined);

    // The peer key shows up nowhere in what the gateway answers.
    for (const p of ['/v1/models', '/models', '/running', '/status']) {
      const res = await gw.request(p);
      assert.ok(!res.text.includes(PEER_KEY), `${p} does not show the peer key`);
    }
  });
});

test('a reload adds and removes peers like models', async (t) => {
  const dir = await tempDir(t);
  const alpha = await startPeer(t, dir, 'alpha');
  const beta = await startPeer(t, dir, 'beta');
  const models = { local: { cmd: fakeCmd('local') } };
  await withGateway(t, { models, extra: { peers: { alpha: { proxy: alpha.url, models: ['m1'] } } } }, async (gw) => {
    const client = gw.client();
    await client.chat.completions.create({ model: 'alpha/m1', messages: MESSAGES, max_tokens: 2 });
    const before = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'beta/m2', messages: MESSAGES } });
    assertErrorShape(assert, before, 404);

    const config = { ...gw.config, peers: { beta: { proxy: beta.url, apiKey: 'sk-beta-key', models: ['m2'] } } };
    await fsp.writeFile(gw.configPath, toYaml(config));
    const r = await gw.request('/admin/reload', { method: 'POST' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.models, { kept: 1, changed: 0, added: 1, removed: 1 });

    await client.chat.completions.create({ model: 'm2', messages: MESSAGES, max_tokens: 2 });
    const seen = await waitForEvent(beta.events, (e) => e.event === 'request' && e.model === 'm2', { message: 'm2 at beta' });
    assert.equal(seen.authorization, 'Bearer sk-beta-key');
    const gone = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'alpha/m1', messages: MESSAGES } });
    assert.equal(assertErrorShape(assert, gone, 404).code, 'model_not_found');
    const ids = (await gw.json('/v1/models')).data.map((m) => m.id).sort();
    assert.deepEqual(ids, ['beta/m2', 'local']);
    assert.equal(chats(alpha).length, 1, 'alpha got only the request made before the reload');
  });
});
