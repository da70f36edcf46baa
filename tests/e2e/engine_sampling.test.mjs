// infergate-engine sampling on a tiny random-weight GGUF: typical_p and penalties, logit_bias in
// both spellings, logprobs (OpenAI) and n_probs (llama.cpp), and GBNF grammars.
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { rawStream } from './lib/harness.mjs';
import { makeTinyModel, startEngine, stopAllEngines } from './lib/engine.mjs';

const MESSAGES = [{ role: 'user', content: 'hello world' }];

let dir;
let eng;

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ig-engine-sampling-'));
  const model = path.join(dir, 'tiny.gguf');
  await makeTinyModel(model);
  eng = await startEngine(model, ['-c', '8192', '-np', '2', '-t', '1']);
});

after(async () => {
  try {
    await stopAllEngines();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

/** POSTs a greedy chat completion of N tokens that ignores EOS; resolves the JSON reply. */
async function chat(n, extra = {}) {
  const r = await eng.post('/v1/chat/completions', { messages: MESSAGES, temperature: 0, max_tokens: n, ignore_eos: true, ...extra });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json;
}

/** POSTs a greedy /completion of N tokens with n_probs 1; resolves the sampled token ids. */
async function completionIds(n, extra = {}) {
  const r = await eng.post('/completion', { prompt: 'hello world', temperature: 0, n_predict: n, ignore_eos: true, n_probs: 1, ...extra });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.completion_probabilities.map((p) => p.id);
}

test('typical_p and the penalties are deterministic with a seed and change greedy output', async () => {
  const sampled = { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0, typical_p: 0.9, seed: 42, repeat_penalty: 1.3, repeat_last_n: 32, presence_penalty: 0.5, frequency_penalty: 0.5 };
  const a = await chat(32, sampled);
  const b = await chat(32, sampled);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const plain = await completionIds(48);
  const penalised = await completionIds(48, { frequency_penalty: 5, presence_penalty: 5, repeat_penalty: 2, repeat_last_n: -1 });
  assert.notDeepEqual(penalised, plain);
  // A strong frequency penalty over the whole context keeps greedy decoding from repeating much.
  assert.ok(new Set(penalised).size >= new Set(plain).size, `${penalised} vs ${plain}`);
});

test('logit_bias bans and forces tokens in both the OpenAI and llama.cpp spellings', async () => {
  const plain = await completionIds(8);
  const first = plain[0];
  const banned = await completionIds(8, { logit_bias: { [first]: -1000 } });
  assert.ok(!banned.includes(first), `${banned} still has ${first}`);
  const bannedArray = await completionIds(8, { logit_bias: [[first, false]] });
  assert.ok(!bannedArray.includes(first));
  const forced = plain.find((t) => t !== first) ?? first + 1;
  const all = await completionIds(8, { logit_bias: [[forced, 1000]] });
  assert.deepEqual(all, Array(8).fill(forced));
  for (const bad of [{ x: 1 }, [[1]], [['a', 1]], { 99999999: 1 }, 'no']) {
    const r = await eng.post('/completion', { prompt: 'hi', n_predict: 1, logit_bias: bad });
    assert.equal(r.status, 400, JSON.stringify(bad));
  }
});

test('chat logprobs have the OpenAI shape, streamed or not, and sum to at most 1', async () => {
  const whole = await chat(12, { logprobs: true, top_logprobs: 5 });
  const content = whole.choices[0].logprobs.content;
  assert.equal(content.length, 12);
  let text = '';
  for (const c of content) {
    assert.equal(typeof c.token, 'string');
    assert.ok(c.logprob <= 0);
    assert.ok(Array.isArray(c.bytes) && c.bytes.every((b) => Number.isInteger(b) && b >= 0 && b < 256));
    assert.equal(c.top_logprobs.length, 5);
    const sum = c.top_logprobs.reduce((s, t) => s + Math.exp(t.logprob), 0);
    assert.ok(sum <= 1 + 1e-6, `sum ${sum}`);
    for (let i = 1; i < 5; i++) assert.ok(c.top_logprobs[i - 1].logprob >= c.top_logprobs[i].logprob);
    // Greedy: the sampled token is the most likely one.
    assert.equal(c.token, c.top_logprobs[0].token);
    assert.ok(Math.abs(c.logprob - c.top_logprobs[0].logprob) < 1e-6);
    text += Buffer.from(c.bytes).toString('latin1');
  }
  assert.equal(Buffer.from(text, 'latin1').toString('utf8'), whole.choices[0].message.content);
  const r = await rawStream({ port: eng.port, path: '/v1/chat/completions', body: { messages: MESSAGES, temperature: 0, max_tokens: 12, ignore_eos: true, logprobs: true, top_logprobs: 5, stream: true } });
  const streamed = r.events.filter((e) => e !== '[DONE]').flatMap((e) => JSON.parse(e).choices?.[0]?.logprobs?.content ?? []);
  // The KV cache may reuse the prompt's prefix, so low bits of the logits may differ.
  const shape = (list) => list.map((c) => ({ ...c, logprob: 0, top_logprobs: c.top_logprobs.map((t) => ({ ...t, logprob: 0 })) }));
  assert.deepEqual(shape(streamed), shape(content));
  streamed.forEach((c, i) => assert.ok(Math.abs(c.logprob - content[i].logprob) < 1e-3));
  const none = await chat(4);
  assert.equal(none.choices[0].logprobs, undefined);
  const bad = await eng.post('/v1/chat/completions', { messages: MESSAGES, logprobs: true, top_logprobs: 21 });
  assert.equal(bad.status, 400);
});

test('n_probs gives completion_probabilities on /completion', async () => {
  const r = await eng.post('/completion', { prompt: 'hello', temperature: 0, n_predict: 6, ignore_eos: true, n_probs: 3 });
  assert.equal(r.status, 200);
  assert.equal(r.json.completion_probabilities.length, 6);
  for (const p of r.json.completion_probabilities) {
    assert.equal(p.top_logprobs.length, 3);
    assert.equal(p.id, p.top_logprobs[0].id);
    assert.ok(p.top_logprobs.reduce((s, t) => s + Math.exp(t.logprob), 0) <= 1 + 1e-6);
  }
  const s = await rawStream({ port: eng.port, path: '/completion', body: { prompt: 'hello', temperature: 0, n_predict: 6, ignore_eos: true, n_probs: 3, stream: true } });
  const streamed = s.events.flatMap((e) => JSON.parse(e).completion_probabilities ?? []);
  assert.deepEqual(streamed.map((p) => p.top_logprobs.map((t) => t.id)), r.json.completion_probabilities.map((p) => p.top_logprobs.map((t) => t.id)));
});

test('a GBNF grammar constrains the output; an invalid one is a 400', async () => {
  const grammar = 'root ::= "yes" | "no"';
  for (let seed = 1; seed <= 6; seed++) {
    const r = await eng.post('/v1/chat/completions', { messages: MESSAGES, temperature: 1.0, top_k: 0, top_p: 1, min_p: 0, seed, max_tokens: 16, grammar });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.match(r.json.choices[0].message.content, /^(yes|no)$/);
    assert.equal(r.json.choices[0].finish_reason, 'stop');
  }
  const streamed = await rawStream({ port: eng.port, path: '/completion', body: { prompt: 'hello', n_predict: 16, grammar, stream: true } });
  const text = streamed.events.map((e) => JSON.parse(e).content).join('');
  assert.match(text, /^(yes|no)$/);
  for (const bad of ['root ::= "yes', 'root ::= [a-', 'start ::= "a"', 'root ::= undefined-rule', 42]) {
    const r = await eng.post('/v1/chat/completions', { messages: MESSAGES, grammar: bad });
    assert.equal(r.status, 400, String(bad));
    assert.equal(r.json.error.code, 400);
  }
  // Streamed too: the grammar is parsed before the stream opens.
  const bad = await eng.post('/v1/chat/completions', { messages: MESSAGES, grammar: 'root ::= "yes', stream: true });
  assert.equal(bad.status, 400);
  assert.match(bad.json.error.message, /grammar/);
});
