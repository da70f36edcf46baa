// Model discovery (models_dir), capabilities, the memory estimate against the engine's real
// memory, and the memory budget: models side by side while they fit, least recently used
// idle model evicted when not, 507 for a model larger than the whole budget.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { ENGINE, makeTinyModel, runToExit, MKGGUF } from './lib/engine.mjs';
import {
  SANITIZE,
  assertErrorShape,
  deadline,
  tempDir,
  toYaml,
  waitFor,
  withGateway,
} from './lib/harness.mjs';

const MESSAGES = [{ role: 'user', content: 'hi' }];
const ENGINE_DEFAULTS = { ctx_size: 512, parallel: 1, threads: 1 };

const statusOf = async (gw) => Object.fromEntries((await gw.json('/status')).models.map((m) => [m.id, m]));

/** Rewrites the gateway's config with EXTRA keys and reloads it. */
async function reloadWith(gw, extra) {
  await fsp.writeFile(gw.configPath, toYaml({ ...gw.config, ...extra }));
  const r = await gw.request('/admin/reload', { method: 'POST' });
  assert.equal(r.status, 200, r.text);
}

test('models_dir: every GGUF becomes a model with its capabilities; the budget evicts the least recently used', async (t) => {
  const dir = await tempDir(t);
  await fsp.mkdir(path.join(dir, 'sub'));
  await makeTinyModel(path.join(dir, 'chat-a.gguf'), ['--seed', '1']);
  await makeTinyModel(path.join(dir, 'chat-b.gguf'), ['--seed', '2']);
  await makeTinyModel(path.join(dir, 'sub', 'embed.gguf'), ['--embedding']);
  await fsp.writeFile(path.join(dir, 'notes.gguf'), 'not a model');
  const extra = { models_dir: dir, engine: ENGINE_DEFAULTS };
  await withGateway(t, { models: {}, extra }, async (gw) => {
    const client = gw.client();
    const list = (await gw.json('/models')).data;
    const byId = Object.fromEntries(list.map((m) => [m.id, m]));
    assert.deepEqual(Object.keys(byId).sort(), ['chat-a', 'chat-b', 'embed'], 'the unreadable file is no model');
    assert.match(gw.output(), /models_dir: .*notes\.gguf skipped: /, 'and says why');
    assert.deepEqual(byId['chat-a'].capabilities, ['completion']);
    assert.deepEqual(byId.embed.capabilities, ['embeddings']);
    assert.equal(byId.embed.discovered, true);
    assert.equal(byId['chat-a'].details.architecture, 'llama');
    assert.ok(byId['chat-a'].details.parameters > 0);
    assert.equal(byId['chat-a'].path, path.join(dir, 'chat-a.gguf'));
    for (const m of list) assert.ok(m.memory_bytes > 0, `${m.id} has an estimate`);

    // A file added later appears after POST /models/rescan; the others keep their ports
    // (and so their processes), though the new id sorts before them.
    await makeTinyModel(path.join(dir, 'aaa.gguf'), ['--seed', '3']);
    const rescan = await gw.request('/models/rescan', { method: 'POST' });
    assert.equal(rescan.status, 200, rescan.text);
    assert.deepEqual(rescan.json.models, { kept: 3, changed: 0, added: 1, removed: 0 });
    assert.ok((await gw.json('/v1/models')).data.some((m) => m.id === 'aaa'));
    await fsp.rm(path.join(dir, 'aaa.gguf'));
    assert.deepEqual((await gw.request('/models/rescan', { method: 'POST' })).json.models, { kept: 3, changed: 0, added: 0, removed: 1 });

    // A request that needs a missing capability is a 400 that says so.
    const e1 = assertErrorShape(assert, await gw.request('/v1/embeddings', { method: 'POST', body: { model: 'chat-a', input: 'x' } }), 400);
    assert.match(e1.message, /does not support embeddings/);
    const e2 = assertErrorShape(assert, await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'embed', messages: MESSAGES } }), 400);
    assert.match(e2.message, /embedding model/);

    // A budget that holds both chat models, or chat-b and embed, but not all three.
    const mem = Object.fromEntries(list.map((m) => [m.id, m.memory_bytes]));
    const budget = mem['chat-b'] + mem.embed + Math.floor(mem['chat-a'] / 2);
    assert.ok(mem['chat-a'] + mem['chat-b'] <= budget && mem['chat-a'] + mem['chat-b'] + mem.embed > budget);
    await reloadWith(gw, { ...extra, budget: { ram: budget } });
    assert.equal((await gw.json('/status')).budget.ram_bytes, budget);

    await client.chat.completions.create({ model: 'chat-a', messages: MESSAGES, max_tokens: 2 });
    await client.chat.completions.create({ model: 'chat-b', messages: MESSAGES, max_tokens: 2 });
    let st = await statusOf(gw);
    assert.equal(st['chat-a'].state, 'ready', 'ungrouped models run side by side under a budget');
    assert.equal(st['chat-b'].state, 'ready');
    assert.equal((await gw.json('/status')).budget.ram_used_bytes, mem['chat-a'] + mem['chat-b']);

    // embed does not fit beside both: chat-a, the least recently used, makes room.
    const emb = await client.embeddings.create({ model: 'embed', input: 'hello', encoding_format: 'float' });
    assert.ok(emb.data[0].embedding.length > 0);
    st = await statusOf(gw);
    assert.equal(st.embed.state, 'ready');
    assert.equal(st['chat-b'].state, 'ready', 'the more recently used model stays');
    assert.equal(st['chat-a'].state, 'unloaded', 'the least recently used one was evicted');
    assert.match(gw.output(), /model chat-a: evicted \(least recently used\) to make room for embed/);
    assert.ok((await gw.json('/status')).budget.ram_used_bytes <= budget);

    // A budget below a model's own estimate: 507 at request time, a warning at load.
    await reloadWith(gw, { ...extra, budget: { ram: Math.floor(mem['chat-a'] / 2) } });
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'chat-a', messages: MESSAGES } });
    const e3 = assertErrorShape(assert, r, 507);
    assert.match(e3.message, /needs an estimated \d+ MiB of RAM, more than the whole budget\.ram/);
    assert.equal(r.json.error.code, 'model_too_large');
    await waitFor(() => /model chat-a needs an estimated \d+ MiB of RAM, more than budget\.ram/.test(gw.output()), {
      timeoutMs: deadline(3000), message: 'the warning',
    });
  });
});

test('a configured model is not discovered twice; its estimate is within 15% of the engine\'s memory', { skip: SANITIZE && 'ASan changes RSS' }, async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'small.gguf');
  const made = await runToExit(MKGGUF, [file, '--preset', 'small'], deadline(120000));
  assert.equal(made.code, 0, made.output);
  const models = { mine: { cmd: `${ENGINE} -m ${file} --port \${PORT} -c 4096 -np 4 -t 1` } };
  await withGateway(t, { models, extra: { models_dir: dir } }, async (gw) => {
    const list = (await gw.json('/models')).data;
    assert.deepEqual(list.map((m) => m.id), ['mine'], 'the file the config serves is not added again');
    const estimate = list[0].memory_bytes;
    for (let i = 0; i < 4; i++)
      await gw.client().chat.completions.create({ model: 'mine', messages: MESSAGES, max_tokens: 8 });
    const { pid } = (await statusOf(gw)).mine;
    const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
    const ratio = estimate / rss;
    t.diagnostic(`estimate ${(estimate / 2 ** 20).toFixed(1)} MiB, RSS ${(rss / 2 ** 20).toFixed(1)} MiB, ratio ${ratio.toFixed(3)}`);
    assert.ok(ratio > 0.85 && ratio < 1.15, `estimate/RSS = ${ratio.toFixed(3)}`);
  });
});
