// The memory budget under load (models declare `memory:` or `vram:`, so fake-llama-server
// stands in for real engines), the VRAM estimate from -ngl, and crash recovery under load:
// 100 kill -9 of a serving model.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { makeTinyModel } from './lib/engine.mjs';
import { deadline, fakeCmd, pidGone, procStat, waitFor, withGateway } from './lib/harness.mjs';

const MESSAGES = [{ role: 'user', content: 'hi' }];
const GIB = 2 ** 30;
const statusOf = async (gw) => (await gw.json('/status'));
const stateOf = async (gw) => Object.fromEntries((await statusOf(gw)).models.map((m) => [m.id, m]));

/** Three models of 1 GiB each with a 2 GiB budget: two fit at a time. */
function threeModels(flags = []) {
  const models = {};
  for (const id of ['a', 'b', 'c']) models[id] = { cmd: fakeCmd(id, flags), memory: '1GiB' };
  return { models, extra: { budget: { ram: '2GiB' } } };
}

test('the least recently used idle model is the one evicted', async (t) => {
  await withGateway(t, threeModels(), async (gw) => {
    const client = gw.client();
    const ask = (model) => client.chat.completions.create({ model, messages: MESSAGES, max_tokens: 2 });
    await ask('a');
    await ask('b');
    let st = await stateOf(gw);
    assert.equal(st.a.state, 'ready');
    assert.equal(st.b.state, 'ready', 'two models of 1 GiB run side by side in 2 GiB');
    await ask('c'); // a is the least recently used
    st = await stateOf(gw);
    assert.deepEqual([st.a.state, st.b.state, st.c.state], ['unloaded', 'ready', 'ready']);
    await ask('b');
    await ask('a'); // now c is the least recently used
    st = await stateOf(gw);
    assert.deepEqual([st.a.state, st.b.state, st.c.state], ['ready', 'ready', 'unloaded']);
    assert.equal((await statusOf(gw)).budget.ram_used_bytes, 2 * GIB);
  });
});

test('a busy model is never killed to make room: the request waits, both streams finish', async (t) => {
  await withGateway(t, threeModels(['--token-us', 20000]), async (gw) => {
    const client = gw.client();
    const drain = async (model) => {
      const s = await client.chat.completions.create({ model, messages: MESSAGES, max_tokens: 40, stream: true });
      let n = 0;
      for await (const c of s) if (c.choices[0]?.delta?.content) n++;
      return n;
    };
    const a = drain('a');
    const b = drain('b');
    await waitFor(async () => {
      const st = await stateOf(gw);
      return st.a.in_flight === 1 && st.b.in_flight === 1;
    }, { timeoutMs: deadline(5000), message: 'a and b streaming' });
    const t0 = Date.now();
    const c = await client.chat.completions.create({ model: 'c', messages: MESSAGES, max_tokens: 2 });
    assert.equal(c.choices.length, 1);
    assert.deepEqual(await Promise.all([a, b]), [40, 40], 'neither stream was cut');
    assert.ok(Date.now() - t0 >= 200, 'c waited for a stream to end');
    const st = await stateOf(gw);
    assert.equal(st.c.state, 'ready');
    assert.equal([st.a.state, st.b.state].filter((s) => s === 'ready').length, 1, 'one of a, b made room');
  });
});

test('32 concurrent clients over three models with room for two: no failures, never over budget', async (t) => {
  await withGateway(t, threeModels(['--token-us', 1000]), async (gw) => {
    const client = gw.client({ timeout: deadline(60000) });
    const failures = [];
    let overBudget = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const s = await statusOf(gw).catch(() => null);
        if (s && s.budget.ram_used_bytes > s.budget.ram_bytes) overBudget++;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const models = ['a', 'b', 'c'];
    await Promise.all(Array.from({ length: 32 }, async (_, i) => {
      for (let j = 0; j < 6; j++) {
        const model = models[(i + j) % 3];
        try {
          const r = await client.chat.completions.create({ model, messages: MESSAGES, max_tokens: 4, stream: j % 2 === 1 });
          if (j % 2 === 1) for await (const _ of r);
        } catch (e) {
          failures.push(`${model}: ${e.message}`);
        }
      }
    }));
    watching = false;
    await watcher;
    assert.deepEqual(failures, [], 'every request succeeded');
    assert.equal(overBudget, 0, 'the estimates in use never exceeded the budget');
    assert.match(gw.output(), /evicted \(least recently used\) to make room/);
  });
});

test('100 kill -9 of a serving model under load: no zombie, no orphan, every later request served', { timeout: deadline(180000) }, async (t) => {
  const marker = `victim-${process.pid}-${Date.now()}`;
  await withGateway(t, { models: { victim: { cmd: fakeCmd(marker) } } }, async (gw) => {
    const client = gw.client({ timeout: deadline(30000) });
    let loading = true;
    let served = 0;
    const clients = Array.from({ length: 4 }, async () => {
      while (loading) {
        try {
          await client.chat.completions.create({ model: 'victim', messages: MESSAGES, max_tokens: 2 });
          served++;
        } catch {} // requests cut by a kill fail; that is the point
      }
    });
    const killed = [];
    for (let i = 0; i < 100; i++) {
      let pid = 0;
      await waitFor(async () => {
        const m = (await stateOf(gw)).victim;
        pid = m.state === 'ready' && !killed.includes(m.pid) ? m.pid : 0;
        return pid > 0;
      }, { timeoutMs: deadline(10000), message: `restart ${i}` });
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    }
    loading = false;
    await Promise.all(clients);
    assert.ok(served > 0);
    // Every later request is served.
    for (let i = 0; i < 5; i++) {
      const r = await client.chat.completions.create({ model: 'victim', messages: MESSAGES, max_tokens: 2 });
      assert.equal(r.choices.length, 1);
    }
    // No zombie among the gateway's children, no orphan anywhere.
    await waitFor(() => killed.every((p) => pidGone(p)), { timeoutMs: deadline(5000), message: 'killed processes reaped' });
    assert.ok(gw.children().every((p) => procStat(p)?.state !== 'Z'));
    const orphans = [];
    for (const d of await fsp.readdir('/proc')) {
      if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
      const cmd = await fsp.readFile(`/proc/${d}/cmdline`, 'utf8').catch(() => '');
      if (cmd.includes(marker) && !gw.children().includes(Number(d))) orphans.push(d);
    }
    assert.deepEqual(orphans, [], 'no process of this model outside the gateway');
    assert.ok((gw.output().match(/model victim: started pid/g) ?? []).length >= 101);
  });
});

test('budget.vram: a percentage of what nvidia-smi reports; models placed by their vram; too large gets a 507', async (t) => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ig-vram-'));
  t.after(() => fsp.rm(dir, { recursive: true, force: true }));
  // A stand-in for the driver's tool: two lines, one per GPU, in MiB.
  await fsp.writeFile(path.join(dir, 'nvidia-smi'), '#!/bin/sh\necho 10240\necho 10240\n', { mode: 0o755 });
  const models = { huge: { cmd: fakeCmd('huge'), vram: '16GiB' } };
  for (const id of ['a', 'b', 'c']) models[id] = { cmd: fakeCmd(id), vram: '6GiB' };
  const env = { PATH: `${dir}:${process.env.PATH}` };
  await withGateway(t, { models, extra: { budget: { vram: '60%' } }, env }, async (gw) => {
    const client = gw.client();
    const ask = (model) => client.chat.completions.create({ model, messages: MESSAGES, max_tokens: 2 });
    const budget = (await statusOf(gw)).budget;
    assert.equal(budget.vram_bytes, Math.floor(20 * GIB * 0.6));
    assert.equal(budget.vram_percent, 60);
    assert.equal(budget.ram_bytes, 0);
    await ask('a');
    await ask('b');
    let st = await stateOf(gw);
    assert.deepEqual([st.a.state, st.b.state], ['ready', 'ready'], 'two models of 6 GiB fit in 12 GiB');
    assert.equal(st.a.vram_bytes, 6 * GIB);
    assert.equal((await statusOf(gw)).budget.vram_used_bytes, 12 * GIB);
    await ask('c'); // a is the least recently used
    st = await stateOf(gw);
    assert.deepEqual([st.a.state, st.b.state, st.c.state], ['unloaded', 'ready', 'ready']);
    await assert.rejects(ask('huge'), (e) => {
      assert.equal(e.status, 507);
      assert.match(e.message, /huge needs an estimated 16384 MiB of GPU memory, more than the whole budget\.vram of 12288 MiB/);
      return true;
    });
    assert.match(gw.output(), /model huge needs an estimated 16384 MiB of GPU memory, more than budget\.vram/);
    st = await stateOf(gw);
    assert.deepEqual([st.b.state, st.c.state], ['ready', 'ready'], 'the refused model evicted nothing');
  });
});

test('the vram estimate follows -ngl: offloaded layers move from RAM to VRAM', async (t) => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ig-vram-'));
  t.after(() => fsp.rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'tiny.gguf');
  await makeTinyModel(file);
  const models = {
    gpu: { cmd: fakeCmd(file, ['-ngl', 99]) },
    half: { cmd: fakeCmd(file, ['-ngl', 2]) },
    cpu: { cmd: fakeCmd(file) },
  };
  await withGateway(t, { models, extra: { budget: { vram: '8GiB' } } }, async (gw) => {
    const byId = Object.fromEntries((await gw.json('/models')).data.map((m) => [m.id, m]));
    const layers = byId.gpu.details.layers;
    assert.equal(byId.gpu.details.vram.gpu_layers, layers + 1, 'every block and the output layer');
    assert.equal(byId.half.details.vram.gpu_layers, 2);
    assert.ok(byId.gpu.vram_bytes > byId.half.vram_bytes, 'more layers, more VRAM');
    assert.ok(byId.gpu.vram_bytes > 384 * 2 ** 20, 'the GPU context overhead counts');
    assert.ok(byId.gpu.memory_bytes < byId.cpu.memory_bytes, 'offloaded weights and KV leave RAM');
    assert.equal(byId.cpu.vram_bytes, undefined, 'no -ngl: no VRAM');
    assert.match(gw.output(), /model cpu: budget\.vram is set but its cmd has no -ngl/);
    assert.doesNotMatch(gw.output(), /model gpu: budget\.vram is set/);
  });
});
