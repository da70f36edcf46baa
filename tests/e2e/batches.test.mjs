// The OpenAI Batch API (docs/API.md, docs/DISTRIBUTED.md "Durable batches") through the
// official `openai` SDK: files.create/content/list/del, batches.create/retrieve/list/cancel,
// on a nats-server of the test's own with JetStream (-js -sd <tmpdir>). A small batch's
// output equals the direct answers; a bad input file fails with line errors; cancel keeps the
// partial output; 1,000 lines over 2 workers with one killed -9 midway and a gateway killed
// -9 and restarted on its state directory both end with exactly one result per custom_id.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { toFile } from 'openai';
import { deadline, fakeCmd, startGateway, tempDir, waitFor } from './lib/harness.mjs';
import { MODEL, guarded, startNats, startWorker, withOutputs } from './lib/distributed.mjs';

/** Starts nats-server with JetStream, its storage in a temporary directory removed after
 * the server is killed. */
async function startJetStream(t) {
  const store = await fsp.mkdtemp(path.join(os.tmpdir(), 'ig-js-'));
  try {
    return await startNats(t, { args: ['-js', '-sd', store] });
  } finally {
    t.after(() => fsp.rm(store, { recursive: true, force: true })); // after the kill hook
  }
}

/** A gateway on NATSURL named NAME with local fake model MODEL (FLAGS) unless NOMODEL. */
function startBatchGateway(t, natsUrl, { name = 'gw1', flags = [], concurrency, noModel = false, env = {} } = {}) {
  const batches = concurrency !== undefined ? { concurrency } : undefined;
  return startGateway(t, {
    models: noModel ? {} : { [MODEL]: { cmd: fakeCmd(MODEL, flags) } },
    extra: { nats: { url: natsUrl, name }, ...(batches ? { batches } : {}) },
    env,
  });
}

/** A chat request line. */
const chatLine = (i, extra = {}) => ({
  custom_id: `req-${i}`,
  method: 'POST',
  url: '/v1/chat/completions',
  body: { model: MODEL, messages: [{ role: 'user', content: `question number ${i}` }], max_tokens: 4, seed: i, ...extra },
});

const jsonl = (lines) => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';

/** Uploads LINES as a batch input file and creates a chat batch from it. */
async function createBatch(client, lines) {
  const file = await client.files.create({ file: await toFile(Buffer.from(jsonl(lines)), 'input.jsonl'), purpose: 'batch' });
  assert.equal(file.object, 'file');
  assert.equal(file.purpose, 'batch');
  return client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { job: 'e2e' } });
}

/** Polls batch ID until PRED(batch) holds; returns the batch. */
async function waitBatch(client, id, pred, timeoutMs, message) {
  let last;
  try {
    await waitFor(async () => {
      last = await client.batches.retrieve(id);
      return pred(last);
    }, { timeoutMs, intervalMs: 100, message });
  } catch (e) {
    e.message += `\nlast batch: ${JSON.stringify(last)}`;
    throw e;
  }
  return last;
}

const ended = (b) => ['completed', 'failed', 'cancelled', 'expired'].includes(b.status);

/** The output lines of file ID, parsed. */
async function fileLines(client, id) {
  const text = await (await client.files.content(id)).text();
  return text.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

/** Asserts that OUTPUT holds exactly one successful result for each of N custom ids. */
function assertOneEach(output, n) {
  const ids = output.map((o) => o.custom_id);
  assert.equal(new Set(ids).size, ids.length, 'a custom_id appears twice');
  assert.equal(ids.length, n);
  for (const o of output) {
    assert.equal(o.error, null);
    assert.equal(o.response.status_code, 200, JSON.stringify(o));
    assert.equal(o.response.body.object, 'chat.completion');
  }
}

// ----------------------------------------------------------------- tests --

test('a small batch: output equal to the direct answers, files and batches listed, errors', async (t) => {
  const nats = await startJetStream(t);
  const gw = await startBatchGateway(t, nats.url);
  const client = gw.client();
  await guarded(gw, [nats], async () => {
    const lines = [0, 1, 2, 3].map((i) => chatLine(i));
    const created = await createBatch(client, lines);
    assert.equal(created.object, 'batch');
    assert.match(created.id, /^batch_/);
    assert.equal(created.endpoint, '/v1/chat/completions');
    assert.equal(created.completion_window, '24h');
    assert.deepEqual(created.metadata, { job: 'e2e' });
    assert.ok(['validating', 'in_progress', 'finalizing', 'completed'].includes(created.status));

    const done = await waitBatch(client, created.id, ended, deadline(20000), 'batch completed');
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.request_counts, { total: 4, completed: 4, failed: 0 });
    assert.equal(done.error_file_id, null);
    for (const k of ['in_progress_at', 'finalizing_at', 'completed_at']) assert.equal(typeof done[k], 'number', k);

    const output = await fileLines(client, done.output_file_id);
    assertOneEach(output, 4);
    assert.deepEqual(output.map((o) => o.custom_id), lines.map((l) => l.custom_id), 'output in input order');
    for (const [i, o] of output.entries()) {
      const direct = await client.chat.completions.create(lines[i].body);
      assert.equal(o.response.body.choices[0].message.content, direct.choices[0].message.content);
      assert.match(o.id, /^batch_req_/);
      assert.equal(o.response.request_id, `${created.id}-${i}`);
    }

    const outFile = await client.files.retrieve(done.output_file_id);
    assert.equal(outFile.purpose, 'batch_output');
    const files = await client.files.list();
    assert.ok(files.data.some((f) => f.id === done.output_file_id));
    const batches = await client.batches.list();
    assert.ok(batches.data.some((b) => b.id === created.id && b.status === 'completed'));

    // Refusals in OpenAI's shape.
    await assert.rejects(client.batches.create({ input_file_id: 'file-nope', endpoint: '/v1/chat/completions', completion_window: '24h' }),
      (e) => e.status === 404 && e.error?.code === 'file_not_found');
    await assert.rejects(client.batches.create({ input_file_id: done.output_file_id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
      (e) => e.status === 400 && e.error?.code === 'invalid_file_purpose');
    await assert.rejects(client.batches.create({ input_file_id: created.input_file_id, endpoint: '/v1/moderations', completion_window: '24h' }),
      (e) => e.status === 400);
    await assert.rejects(client.batches.create({ input_file_id: created.input_file_id, endpoint: '/v1/chat/completions', completion_window: '1h' }),
      (e) => e.status === 400);
    await assert.rejects(client.batches.retrieve('batch_unknown'), (e) => e.status === 404);
    await assert.rejects(client.batches.cancel(created.id), (e) => e.status === 409 && /completed/.test(e.message));
    const del = await client.files.delete(done.output_file_id);
    assert.equal(del.deleted, true);
    await assert.rejects(client.files.retrieve(done.output_file_id), (e) => e.status === 404);
  });
});

test('without nats, /v1/batches answers 503 saying batches need JetStream', async (t) => {
  const gw = await startGateway(t, { models: { [MODEL]: { cmd: fakeCmd(MODEL) } } });
  const client = gw.client();
  const file = await client.files.create({ file: await toFile(Buffer.from(jsonl([chatLine(0)])), 'in.jsonl'), purpose: 'batch' });
  await assert.rejects(client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
    (e) => e.status === 503 && e.error?.code === 'batches_unavailable' && /JetStream/.test(e.message));
});

test('a bad input file fails the batch with one error per bad line', async (t) => {
  const nats = await startJetStream(t);
  const gw = await startBatchGateway(t, nats.url);
  const client = gw.client();
  await guarded(gw, [nats], async () => {
    const lines = [
      chatLine(0),
      '{"custom_id": "broken", ',
      { ...chatLine(2), custom_id: 'req-0' },
      { ...chatLine(3), url: '/v1/embeddings' },
      { ...chatLine(4), method: 'GET' },
      { ...chatLine(5), body: { ...chatLine(5).body, user: 'x'.repeat(1000000) } }, // > 1 MB
    ];
    const created = await createBatch(client, lines);
    const failed = await waitBatch(client, created.id, ended, deadline(10000), 'batch failed');
    assert.equal(failed.status, 'failed');
    assert.equal(typeof failed.failed_at, 'number');
    assert.equal(failed.output_file_id, null);
    const errors = failed.errors.data.map((e) => [e.line, e.code]);
    assert.deepEqual(errors, [[2, 'invalid_json_line'], [3, 'duplicate_custom_id'], [4, 'invalid_url'], [5, 'invalid_method'], [6, 'line_too_large']]);
  });
});

test('cancel: the lines not run are dropped, the finished ones are the output', async (t) => {
  const nats = await startJetStream(t);
  // 100 ms per token, 4 tokens: ~0.4 s per line, 2 at a time.
  const gw = await startBatchGateway(t, nats.url, { flags: ['--token-us', '100000'], concurrency: 2 });
  const client = gw.client();
  await guarded(gw, [nats], async () => {
    const created = await createBatch(client, Array.from({ length: 40 }, (_, i) => chatLine(i)));
    await waitBatch(client, created.id, (b) => b.request_counts.completed >= 2, deadline(20000), 'two lines done');
    const cancelling = await client.batches.cancel(created.id);
    assert.ok(['cancelling', 'cancelled'].includes(cancelling.status), cancelling.status);
    const cancelled = await waitBatch(client, created.id, ended, deadline(10000), 'batch cancelled');
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(typeof cancelled.cancelled_at, 'number');
    const { completed, failed, total } = cancelled.request_counts;
    assert.equal(total, 40);
    assert.equal(failed, 0);
    assert.ok(completed >= 2 && completed < 40, `completed ${completed}`);
    const output = await fileLines(client, cancelled.output_file_id);
    assertOneEach(output, completed);
    // The rest never runs: the counts stay.
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual((await client.batches.retrieve(created.id)).request_counts, cancelled.request_counts);
  });
});

test('1,000 lines over 2 workers, one killed -9 midway: one successful result per custom_id', async (t) => {
  const dir = await tempDir(t);
  const nats = await startJetStream(t);
  const flags = ['--token-us', '3000'];
  const w1 = await startWorker(t, dir, nats.url, 'w1', { flags });
  const w2 = await startWorker(t, dir, nats.url, 'w2', { flags });
  const gw = await startBatchGateway(t, nats.url, { noModel: true, concurrency: 16 });
  const client = gw.client();
  await guarded(gw, [nats, w1, w2], async () => {
    await waitFor(async () => {
      const list = await gw.json('/v1/models');
      return (list.data.find((m) => m.id === MODEL)?.workers ?? []).length === 2;
    }, { timeoutMs: deadline(10000), message: 'both workers in /v1/models' });
    const created = await createBatch(client, Array.from({ length: 1000 }, (_, i) => chatLine(i)));
    await waitBatch(client, created.id, (b) => b.request_counts.completed >= 150, deadline(30000), '150 lines done');
    await w1.kill('SIGKILL');
    const done = await waitBatch(client, created.id, ended, deadline(60000), 'batch completed');
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.request_counts, { total: 1000, completed: 1000, failed: 0 });
    assert.equal(done.error_file_id, null);
    assertOneEach(await fileLines(client, done.output_file_id), 1000);
  });
});

test('the gateway killed -9 midway and restarted on its state directory: the batch completes, one result each', async (t) => {
  const nats = await startJetStream(t);
  const state = await tempDir(t, 'ig-state-');
  const opts = { name: 'gw-restart', flags: ['--token-us', '4000'], concurrency: 4, env: { INFERGATE_STATE_DIR: state } };
  let gw = await startBatchGateway(t, nats.url, opts);
  try {
    const client = gw.client();
    const created = await createBatch(client, Array.from({ length: 300 }, (_, i) => chatLine(i)));
    await waitBatch(client, created.id, (b) => b.request_counts.completed >= 40, deadline(20000), '40 lines done');
    gw.children();
    process.kill(gw.pid, 'SIGKILL');
    await gw.exit;
    await gw.stop(); // its orphaned model process

    gw = await startBatchGateway(t, nats.url, opts);
    const client2 = gw.client();
    const done = await waitBatch(client2, created.id, ended, deadline(30000), 'batch completed after the restart');
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.request_counts, { total: 300, completed: 300, failed: 0 });
    assertOneEach(await fileLines(client2, done.output_file_id), 300);
    assert.match(gw.output(), /batches: resuming batch_/);
  } catch (e) {
    throw withOutputs(e, gw, [nats]);
  }
});

test('keys: each sees only its own files and batches; lines run as the owner key (usage, allow-list)', async (t) => {
  const nats = await startJetStream(t);
  const ADMIN = 'admin-token-0123456789abcdef';
  const KEYS = { alpha: 'sk-alpha-0123456789abcdef', beta: 'sk-beta-0123456789abcdef' };
  const gw = await startGateway(t, {
    models: { [MODEL]: { cmd: fakeCmd(MODEL) }, other: { cmd: fakeCmd('other') } },
    extra: {
      nats: { url: nats.url, name: 'gw-keys' },
      auth: { admin_token: ADMIN, keys: [{ name: 'alpha', key: KEYS.alpha, models: [MODEL] }, { name: 'beta', key: KEYS.beta, models: ['other'] }] },
    },
  });
  const alpha = gw.client({ apiKey: KEYS.alpha });
  const beta = gw.client({ apiKey: KEYS.beta });
  const admin = gw.client({ apiKey: ADMIN });
  await guarded(gw, [nats], async () => {
    const a = await createBatch(alpha, [chatLine(0), chatLine(1)]);
    const b = await createBatch(beta, [chatLine(0)]); // beta may not use MODEL: a 403 result
    const aDone = await waitBatch(alpha, a.id, ended, deadline(20000), 'alpha batch ended');
    const bDone = await waitBatch(beta, b.id, ended, deadline(20000), 'beta batch ended');
    assert.deepEqual(aDone.request_counts, { total: 2, completed: 2, failed: 0 });
    assert.deepEqual(bDone.request_counts, { total: 1, completed: 0, failed: 1 });
    assert.equal(bDone.output_file_id, null);
    const [err] = await fileLines(beta, bDone.error_file_id);
    assert.equal(err.custom_id, 'req-0');
    assert.equal(err.response.status_code, 403);
    assert.equal(err.response.body.error.code, 'model_not_allowed');

    // Isolation: beta sees none of alpha's files or batches; the admin sees all.
    await assert.rejects(beta.batches.retrieve(a.id), (e) => e.status === 404);
    await assert.rejects(beta.files.retrieve(a.input_file_id), (e) => e.status === 404);
    await assert.rejects(beta.files.content(aDone.output_file_id), (e) => e.status === 404);
    await assert.rejects(beta.batches.create({ input_file_id: a.input_file_id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
      (e) => e.status === 404);
    assert.deepEqual((await beta.batches.list()).data.map((x) => x.id), [b.id]);
    assert.ok((await beta.files.list()).data.every((f) => f.id !== a.input_file_id && f.id !== aDone.output_file_id));
    assert.deepEqual((await admin.batches.list()).data.map((x) => x.id).sort(), [a.id, b.id].sort());
    assert.equal((await admin.batches.retrieve(a.id)).status, 'completed');

    // The lines were alpha's requests: its usage counts them.
    await waitFor(async () => {
      const r = await gw.request('/v1/usage?group_by=key', { headers: { authorization: `Bearer ${KEYS.alpha}` } });
      return r.json?.data?.some((row) => row.key === 'alpha' && row.requests === 2);
    }, { timeoutMs: deadline(5000), message: 'alpha usage of 2 requests' });

    // The internal headers mean nothing from the network.
    const forged = await gw.request('/v1/chat/completions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-infergate-batch-token': 'a'.repeat(64), 'x-infergate-batch-owner': Buffer.from('alpha').toString('hex') },
      body: JSON.stringify(chatLine(0).body),
    });
    assert.equal(forged.status, 401);
  });
});
