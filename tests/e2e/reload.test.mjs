// Hot reload (POST /admin/reload and SIGHUP): unchanged models keep running, changed ones
// drain and restart, removed ones stop, added ones appear; an invalid file changes nothing;
// requests in flight during a reload all succeed.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { test } from 'node:test';
import {
  assertErrorShape,
  deadline,
  fakeCmd,
  pidGone,
  toYaml,
  waitFor,
  withGateway,
} from './lib/harness.mjs';

const MESSAGES = [{ role: 'user', content: 'hi' }];
const GROUPS = (members) => ({ all: { swap: false, exclusive: false, members } });

/** Rewrites the gateway's config file with MODELS (and the group holding them all). */
async function rewrite(gw, models, extra = {}) {
  const config = { ...gw.config, ...extra, models, groups: GROUPS(Object.keys(models)) };
  await fsp.writeFile(gw.configPath, toYaml(config));
}

const statusOf = async (gw) => Object.fromEntries((await gw.json('/status')).models.map((m) => [m.id, m]));

test('reload keeps unchanged models, restarts changed ones after their requests, stops removed ones', async (t) => {
  const models = {
    alpha: { cmd: fakeCmd('alpha') },
    beta: { cmd: fakeCmd('beta', ['--token-us', 20000]) },
    gamma: { cmd: fakeCmd('gamma') },
  };
  await withGateway(t, { models, extra: { groups: GROUPS(Object.keys(models)) } }, async (gw) => {
    const client = gw.client();
    for (const model of ['alpha', 'beta', 'gamma']) await client.chat.completions.create({ model, messages: MESSAGES, max_tokens: 2 });
    const before = await statusOf(gw);

    // A 1 s stream on beta is in flight while beta's command changes.
    const stream = await client.chat.completions.create({ model: 'beta', messages: MESSAGES, max_tokens: 50, stream: true });
    const streamed = (async () => {
      let n = 0;
      for await (const c of stream) if (c.choices[0]?.delta?.content) n++;
      return n;
    })();

    await rewrite(gw, {
      alpha: { cmd: fakeCmd('alpha'), aliases: ['first'], ttl: 300 }, // same process: kept
      beta: { cmd: fakeCmd('beta', ['--token-us', 20000, '--embedding-dim', 8]) }, // changed
      delta: { cmd: fakeCmd('delta') }, // added; takes the port gamma had
    });
    const r = await gw.request('/admin/reload', { method: 'POST' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { success: true, models: { kept: 1, changed: 1, added: 1, removed: 1 } });

    // alpha: same process, new settings at once.
    const after = await statusOf(gw);
    assert.equal(after.alpha.pid, before.alpha.pid, 'alpha kept its process');
    assert.equal((await client.chat.completions.create({ model: 'first', messages: MESSAGES, max_tokens: 2 })).choices.length, 1);
    assert.equal((await gw.json('/running')).running.find((m) => m.model === 'alpha').ttl, 300);
    // gamma: gone from the API, its process stops.
    assertErrorShape(assert, await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'gamma', messages: MESSAGES } }), 404);
    await waitFor(() => pidGone(before.gamma.pid), { timeoutMs: deadline(5000), message: 'gamma stopped' });
    // beta: the stream in flight finishes normally on the old process...
    assert.equal(await streamed, 50, 'the in-flight stream completed');
    // ...which then stops; the next request starts the new version.
    await waitFor(() => pidGone(before.beta.pid), { timeoutMs: deadline(5000), message: 'old beta stopped' });
    const emb = await client.embeddings.create({ model: 'beta', input: 'x', encoding_format: 'float' });
    assert.equal(emb.data[0].embedding.length, 8, 'the new beta runs with its new flags');
    assert.notEqual((await statusOf(gw)).beta.pid, before.beta.pid);
    // delta: new, on the port gamma had.
    assert.equal((await client.chat.completions.create({ model: 'delta', messages: MESSAGES, max_tokens: 2 })).choices.length, 1);
    assert.deepEqual(Object.keys(await statusOf(gw)).sort(), ['alpha', 'beta', 'delta']);
  });
});

test('an invalid file is rejected with its errors and the running config stays; SIGHUP reloads too', async (t) => {
  const models = { alpha: { cmd: fakeCmd('alpha') } };
  await withGateway(t, { models }, async (gw) => {
    await fsp.writeFile(gw.configPath, 'models:\n  alpha:\n    cmd: 42\n    ttl: -5\n');
    const r = await gw.request('/admin/reload', { method: 'POST' });
    const e = assertErrorShape(assert, r, 400);
    assert.match(e.message, /config\.yaml:4:10: .*ttl/, e.message);
    assert.equal(r.json.error.code, 'invalid_config');
    const res = await gw.client().chat.completions.create({ model: 'alpha', messages: MESSAGES, max_tokens: 2 });
    assert.equal(res.choices.length, 1, 'still served by the old config');

    await rewrite(gw, { alpha: { cmd: fakeCmd('alpha') }, omega: { cmd: fakeCmd('omega') } });
    process.kill(gw.pid, 'SIGHUP');
    await waitFor(async () => (await gw.json('/v1/models')).data.some((m) => m.id === 'omega'), {
      timeoutMs: deadline(5000), message: 'omega listed after SIGHUP',
    });
    // stderr may arrive after the HTTP answer: poll for the line.
    await waitFor(() => /reloaded .*config\.yaml: 1 model\(s\) kept, 0 changed, 1 added, 0 removed/.test(gw.output()), {
      timeoutMs: deadline(5000), message: 'the reload summary in the log',
    });
  });
});

test('requests under load during reloads that change a model all succeed', async (t) => {
  const models = { alpha: { cmd: fakeCmd('alpha', ['--token-us', 2000]) }, beta: { cmd: fakeCmd('beta', ['--token-us', 2000]) } };
  await withGateway(t, { models, extra: { groups: GROUPS(['alpha', 'beta']) } }, async (gw) => {
    const client = gw.client();
    const failures = [];
    let done = 0;
    let running = true;
    const worker = async (i) => {
      const model = i % 2 ? 'alpha' : 'beta';
      for (let j = 0; j < 200 && running; j++) {
        try {
          const res = await client.chat.completions.create({ model, messages: MESSAGES, max_tokens: 5, stream: j % 2 === 0 });
          if (j % 2 === 0) for await (const _ of res);
          done++;
        } catch (e) {
          failures.push(`${model}: ${e.message}`);
        }
      }
    };
    const workers = Array.from({ length: 8 }, (_, i) => worker(i));
    // Three reloads, each changing beta's command (so it drains and restarts under load).
    for (let k = 1; k <= 3; k++) {
      await waitFor(() => done >= k * 20, { timeoutMs: deadline(15000), message: `${k * 20} requests done` });
      await rewrite(gw, { alpha: models.alpha, beta: { cmd: fakeCmd('beta', ['--token-us', 2000, '--embedding-dim', 8 + k]) } });
      const r = await gw.request('/admin/reload', { method: 'POST' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.models.changed, 1);
    }
    await waitFor(() => done >= 80, { timeoutMs: deadline(15000), message: 'requests after the last reload' });
    running = false;
    await Promise.all(workers);
    assert.deepEqual(failures, [], 'no request failed');
    // Each reload replaced beta; a version replaced before it ever started is skipped.
    const starts = (gw.output().match(/model beta: started pid/g) ?? []).length;
    assert.ok(starts >= 2 && starts <= 4, `beta started ${starts} times`);
    const emb = await client.embeddings.create({ model: 'beta', input: 'x', encoding_format: 'float' });
    assert.equal(emb.data[0].embedding.length, 11, 'beta runs the last reload\'s command');
  });
});

test('reloads asked at the same time are all answered; one asked during a reload gets the next one', async (t) => {
  const models = { alpha: { cmd: fakeCmd('alpha') } };
  await withGateway(t, { models }, async (gw) => {
    await rewrite(gw, { alpha: models.alpha, beta: { cmd: fakeCmd('beta') } });
    const answers = await Promise.all(Array.from({ length: 6 }, () => gw.request('/admin/reload', { method: 'POST' })));
    for (const r of answers) assert.equal(r.status, 200, r.text);
    const added = answers.reduce((n, r) => n + r.json.models.added, 0);
    assert.equal(added, 1, 'beta was added by exactly one of the reloads');
    assert.ok(answers.every((r) => r.json.models.removed === 0));
    process.kill(gw.pid, 'SIGHUP');
    const r = await gw.request('/models/rescan', { method: 'POST' });
    assert.equal(r.status, 200);
    assert.deepEqual((await gw.json('/v1/models')).data.map((m) => m.id).sort(), ['alpha', 'beta']);
  });
});
