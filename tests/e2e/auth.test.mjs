// Tenants: API keys from the config, the CLI and the admin API; each limit exact; model
// allow-lists; expiry; budgets; usage equal to what the responses reported; isolation
// between keys; only hashes in the database; the audit log of key changes (/admin/audit).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { INFERGATE, assertErrorShape, deadline, fakeCmd, guardWith, startGateway, suiteScope, waitFor } from './lib/harness.mjs';

const MESSAGES = [{ role: 'user', content: 'hello there' }];
const ADMIN = 'admin-token-0123456789abcdef';
const KEYS = {
  alpha: 'sk-alpha-0123456789abcdef',
  beta: 'sk-beta-0123456789abcdef',
  gamma: 'sk-gamma-0123456789abcdef',
  delta: 'sk-delta-0123456789abcdef',
  legacy: 'sk-legacy-0123456789abcdef',
};

/** An openai client of GW with KEY. */
function client(gw, apiKey) {
  return new OpenAI({ apiKey, baseURL: gw.baseURL, maxRetries: 0, timeout: deadline(30000) });
}

/** Runs `infergate keys ARGS -c CONFIG`; returns {code, stdout, stderr}. */
function keysCli(gw, args) {
  const r = spawnSync(INFERGATE, ['keys', ...args, '-c', gw.configPath], {
    encoding: 'utf8',
    env: { ...process.env, INFERGATE_STATE_DIR: gw.dir },
    timeout: deadline(20000),
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('API keys', () => {
  const scope = suiteScope();
  let gw;
  const guarded = guardWith(() => gw);
  const client = (apiKey) => new OpenAI({ apiKey, baseURL: gw.baseURL, maxRetries: 0, timeout: deadline(30000) });
  const chat = (apiKey, extra = {}) => client(apiKey).chat.completions.create({ model: 'a', messages: MESSAGES, max_tokens: 4, ...extra });
  const refusal = async (promise) => {
    try {
      await promise;
    } catch (e) {
      return e;
    }
    assert.fail('the request was not refused');
  };

  before(async () => {
    gw = await startGateway(scope.t, {
      models: {
        a: { cmd: fakeCmd('a') },
        b: { cmd: fakeCmd('b') },
        slow: { cmd: fakeCmd('slow', ['--token-us', 80000]) },
      },
      extra: {
        groups: { all: { swap: false, exclusive: false, members: ['a', 'b', 'slow'] } },
        apiKeys: [KEYS.legacy],
        auth: {
          admin_token: ADMIN,
          keys: [
            { name: 'alpha', key: KEYS.alpha, models: ['a'], rpm: 3 },
            { name: 'beta', key: KEYS.beta, concurrency: 1, max_tokens: 8 },
            { name: 'gamma', key: KEYS.gamma, budget_tokens: 30 },
            { name: 'delta', key: KEYS.delta, tpm: 20 },
          ],
        },
      },
    });
  });
  after(scope.cleanup);

  test('no key or an unknown key gets a 401 in OpenAI\'s shape; a key and the admin token work', guarded(async () => {
    const none = await gw.request('/v1/models');
    assertErrorShape(assert, none, 401);
    assert.match(none.json.error.message, /Authorization: Bearer/);
    const e = await refusal(chat('sk-wrong'));
    assert.equal(e.status, 401);
    assert.equal(e.code, 'invalid_api_key');
    assert.equal((await chat(KEYS.beta)).choices.length, 1);
    assert.equal((await gw.request('/v1/models', { headers: { 'x-api-key': KEYS.beta } })).status, 200);
    assert.equal((await chat(ADMIN)).choices.length, 1);
    assert.equal((await gw.request('/healthz')).status, 200, 'liveness needs no key');
  }));

  test('the model allow-list filters /v1/models and refuses other models with a 403', guarded(async () => {
    const list = await client(KEYS.alpha).models.list();
    assert.deepEqual(list.data.map((m) => m.id), ['a']);
    const e = await refusal(client(KEYS.alpha).chat.completions.create({ model: 'b', messages: MESSAGES, max_tokens: 2 }));
    assert.equal(e.status, 403);
    assert.equal(e.code, 'model_not_allowed');
  }));

  test('rpm: N requests pass, the next gets a 429 naming the limit with Retry-After', guarded(async () => {
    // alpha spent one request above (the refused one does not count toward rpm).
    for (let i = 0; i < 3; i++) await chat(KEYS.alpha);
    const r = await gw.request('/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.alpha}` },
      body: { model: 'a', messages: MESSAGES, max_tokens: 2 },
    });
    assertErrorShape(assert, r, 429);
    assert.equal(r.json.error.code, 'rate_limit_exceeded');
    assert.match(r.json.error.message, /3 requests per minute/);
    const retry = Number(r.headers['retry-after']);
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${r.headers['retry-after']}`);
  }));

  test('concurrency: a second request while one streams gets a 429; max_tokens above the cap a 400', guarded(async () => {
    const stream = await client(KEYS.beta).chat.completions.create({ model: 'slow', messages: MESSAGES, max_tokens: 8, stream: true });
    const iter = stream[Symbol.asyncIterator]();
    await iter.next();
    const e = await refusal(chat(KEYS.beta));
    assert.equal(e.status, 429);
    assert.equal(e.code, 'concurrency_limit_exceeded');
    while (!(await iter.next()).done);
    assert.equal((await chat(KEYS.beta)).choices.length, 1, 'the slot is free again');
    const big = await refusal(chat(KEYS.beta, { max_tokens: 9 }));
    assert.equal(big.status, 400);
    assert.equal(big.code, 'max_tokens_exceeded');
    // llama.cpp's n_predict (read before max_tokens) cannot get around the cap, nor -1.
    for (const extra of [{ max_tokens: 8, n_predict: 40 }, { n_predict: -1 }, { max_completion_tokens: 50 }]) {
      const e = await refusal(chat(KEYS.beta, extra));
      assert.equal(e.status, 400, JSON.stringify(extra));
    }
    // Without any, the cap is what the model gets.
    const capped = await client(KEYS.beta).chat.completions.create({ model: 'a', messages: MESSAGES });
    assert.ok(capped.usage.completion_tokens <= 8, `${capped.usage.completion_tokens} tokens`);
  }));

  test('budget: requests pass until the key has used its tokens, then 429 insufficient_quota', guarded(async () => {
    let used = 0;
    let n = 0;
    while (used < 30 && n < 20) {
      const r = await chat(KEYS.gamma);
      used += r.usage.total_tokens;
      n++;
    }
    assert.ok(used >= 30);
    const e = await refusal(chat(KEYS.gamma));
    assert.equal(e.status, 429);
    assert.equal(e.code, 'insufficient_quota');
  }));

  test('tpm: streamed tokens count too; past the limit the key waits', guarded(async () => {
    const s = await client(KEYS.delta).chat.completions.create({ model: 'a', messages: MESSAGES, max_tokens: 25, stream: true });
    for await (const _ of s);
    const e = await refusal(chat(KEYS.delta));
    assert.equal(e.status, 429);
    assert.equal(e.code, 'tokens_rate_limit_exceeded');
    const retry = Number(e.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
  }));

  test('admin endpoints need the admin token; a plain key gets a 403', guarded(async () => {
    const r = await gw.request('/models/load', { method: 'POST', headers: { authorization: `Bearer ${KEYS.beta}` }, body: { model: 'a' } });
    assertErrorShape(assert, r, 403);
    assert.equal(r.json.error.code, 'admin_required');
    assert.equal((await gw.request('/logs', { headers: { authorization: `Bearer ${KEYS.legacy}` } })).status, 403,
      'llama-swap apiKeys are not admins when an admin token is set');
    assert.equal((await gw.request('/models/load', { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` }, body: { model: 'b' } })).status, 200);
  }));

  test('usage: each key sees its own rows, equal to the sum of its responses\' usage; the admin sees all', guarded(async () => {
    const k = await gw.request('/admin/keys', { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` }, body: { name: 'metered' } });
    assert.equal(k.status, 201, k.text);
    let prompt = 0;
    let completion = 0;
    for (let i = 0; i < 5; i++) {
      const r = await chat(k.json.key, { max_tokens: 3 + i });
      prompt += r.usage.prompt_tokens;
      completion += r.usage.completion_tokens;
    }
    const s = await client(k.json.key).chat.completions.create({ model: 'b', messages: MESSAGES, max_tokens: 6, stream: true, stream_options: { include_usage: true } });
    for await (const c of s) {
      if (c.usage) {
        prompt += c.usage.prompt_tokens;
        completion += c.usage.completion_tokens;
      }
    }
    const own = await gw.request('/v1/usage?group_by=key', { headers: { authorization: `Bearer ${k.json.key}` } });
    assert.equal(own.status, 200, own.text);
    assert.deepEqual(own.json.data.map((r) => [r.key, r.requests, r.prompt_tokens, r.completion_tokens]), [['metered', 6, prompt, completion]]);
    const byModel = await gw.request('/v1/usage?group_by=model', { headers: { authorization: `Bearer ${k.json.key}` } });
    assert.deepEqual(byModel.json.data.map((r) => [r.model, r.requests]), [['a', 5], ['b', 1]]);
    const other = await gw.request('/v1/usage?group_by=key&key=alpha', { headers: { authorization: `Bearer ${k.json.key}` } });
    assert.ok(other.json.data.every((r) => r.key === 'metered'), 'a key never sees another key\'s usage');
    const all = await gw.request('/v1/usage?group_by=key', { headers: { authorization: `Bearer ${ADMIN}` } });
    const names = all.json.data.map((r) => r.key);
    for (const n of ['metered', 'alpha', 'beta', 'gamma']) assert.ok(names.includes(n), `${n} in ${names}`);
    const alpha = all.json.data.find((r) => r.key === 'alpha');
    assert.ok(alpha.errors >= 2, 'refused requests count as errors');
  }));

  test('keys from the admin API: shown once, usable at once, revoked at once; names checked', guarded(async () => {
    const auth = { authorization: `Bearer ${ADMIN}` };
    const made = await gw.request('/admin/keys', { method: 'POST', headers: auth, body: { name: 'temp', models: ['a'], rpm: 100, expires_in: '30d' } });
    assert.equal(made.status, 201, made.text);
    assert.match(made.json.key, /^ig-[A-Za-z0-9_-]{40}$/);
    assert.equal((await chat(made.json.key)).choices.length, 1);
    const list = await gw.request('/admin/keys', { headers: auth });
    const temp = list.json.data.find((k) => k.name === 'temp');
    assert.equal(temp.prefix, made.json.key.slice(0, 10));
    assert.equal(temp.key, undefined, 'the list never shows keys');
    assert.ok(temp.expires_at > Date.now() / 1000 + 29 * 86400);
    const dup = await gw.request('/admin/keys', { method: 'POST', headers: auth, body: { name: 'temp' } });
    assertErrorShape(assert, dup, 400);
    assert.equal((await gw.request('/admin/keys/temp', { method: 'DELETE', headers: auth })).status, 200);
    const e = await refusal(chat(made.json.key));
    assert.equal(e.status, 401, 'revocation takes effect on the next request');
    assertErrorShape(assert, await gw.request('/admin/keys/temp', { method: 'DELETE', headers: auth }), 404);
    assertErrorShape(assert, await gw.request('/admin/keys', { method: 'POST', headers: auth, body: { name: 'x', rpm: -1 } }), 400);
    for (const name of ['beta', 'admin', '-', 'apiKeys[0]']) {
      const r = await gw.request('/admin/keys', { method: 'POST', headers: auth, body: { name } });
      assertErrorShape(assert, r, 400);
    }
    assertErrorShape(assert, await gw.request('/admin/keys', { method: 'POST', headers: { authorization: `Bearer ${KEYS.beta}` }, body: { name: 'y' } }), 403);
  }));

  test('keys from the CLI: printed once, picked up by the running server, expiry, update and revoke', guarded(async () => {
    const made = keysCli(gw, ['create', '--name', 'cli-key', '--models', 'a,b', '--rpm', '50', '--expires', '30d']);
    assert.equal(made.code, 0, made.stderr);
    const key = made.stdout.trim();
    assert.match(key, /^ig-/);
    assert.match(made.stderr, /cannot be shown again/);
    await waitFor(async () => (await gw.request('/v1/models', { headers: { authorization: `Bearer ${key}` } })).status === 200,
      { timeoutMs: deadline(5000), message: 'the server sees the new key' });
    const listed = keysCli(gw, ['list', '--json']);
    const row = JSON.parse(listed.stdout).find((k) => k.name === 'cli-key');
    assert.deepEqual(row.models, ['a', 'b']);
    assert.equal(row.rpm, 50);
    assert.equal(keysCli(gw, ['update', 'cli-key', '--models', 'b']).code, 0);
    await waitFor(async () => (await refusal(chat(key)).catch((e) => e))?.status === 403,
      { timeoutMs: deadline(5000), message: 'the update is seen' });
    // Expiry, on a key of its own: it works, then every route refuses it.
    const short = keysCli(gw, ['create', '--name', 'cli-short', '--expires', '2s']).stdout.trim();
    const t0 = Date.now();
    await waitFor(async () => (await gw.request('/v1/models', { headers: { authorization: `Bearer ${short}` } })).status !== 401 || Date.now() - t0 > 1000,
      { timeoutMs: deadline(5000), message: 'cli-short seen' });
    await waitFor(async () => {
      const r = await gw.request('/v1/models', { headers: { authorization: `Bearer ${short}` } });
      return r.status === 401 && r.json.error.code === 'key_expired';
    }, { timeoutMs: deadline(10000), message: 'the key expires after 2 s, on every route' });
    const second = keysCli(gw, ['create', '--name', 'cli-two']);
    const key2 = second.stdout.trim();
    await waitFor(async () => (await gw.request('/v1/models', { headers: { authorization: `Bearer ${key2}` } })).status === 200,
      { timeoutMs: deadline(5000), message: 'cli-two seen' });
    assert.equal(keysCli(gw, ['revoke', 'cli-two']).code, 0);
    await waitFor(async () => (await gw.request('/v1/models', { headers: { authorization: `Bearer ${key2}` } })).status === 401,
      { timeoutMs: deadline(5000), message: 'cli-two revoked' });
    const missing = keysCli(gw, ['revoke', 'no-such-key']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no active key named 'no-such-key'/);
    assert.equal(keysCli(gw, ['create', '--name', 'alpha']).code, 1, 'a config key name is taken');
    assert.equal(keysCli(gw, ['create', '--name', 'admin']).code, 1, 'a reserved name');
    // Only hashes are stored: no key appears in any file of the state directory.
    const secrets = [key, key2, ...Object.values(KEYS), ADMIN];
    for (const f of await fsp.readdir(gw.dir)) {
      const bytes = await fsp.readFile(path.join(gw.dir, f)).catch(() => Buffer.alloc(0));
      for (const s of secrets) {
        if (f === 'config.yaml' && Object.values(KEYS).concat(ADMIN).includes(s)) continue; // written by the test
        assert.equal(bytes.includes(s), false, `${f} contains a key`);
      }
    }
    assert.equal(fs.statSync(path.join(gw.dir, 'infergate.secret')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(gw.dir, 'infergate.db')).mode & 0o777, 0o600);
  }));
});

describe('audit log', () => {
  const scope = suiteScope();
  let gw;
  const guarded = guardWith(() => gw);
  const admin = { authorization: `Bearer ${ADMIN}` };
  const audit = (query = '', headers = admin) => gw.request(`/admin/audit${query}`, { headers });
  const cliActor = `cli:${os.userInfo().username}`;

  before(async () => {
    gw = await startGateway(scope.t, {
      models: { a: { cmd: fakeCmd('a') } },
      extra: { apiKeys: [KEYS.legacy], auth: { admin_token: ADMIN, keys: [{ name: 'alpha', key: KEYS.alpha }] } },
    });
  });
  after(scope.cleanup);

  test('/admin/keys/NAME is percent-decoded: names with spaces and \'/\'; a bad escape is a 400', guarded(async () => {
    const name = 'team a/b';
    const made = await gw.request('/admin/keys', { method: 'POST', headers: admin, body: { name, rpm: 5 } });
    assert.equal(made.status, 201, made.text);
    const encoded = encodeURIComponent(name); // team%20a%2Fb
    const patched = await gw.request(`/admin/keys/${encoded}`, { method: 'PATCH', headers: admin, body: { rpm: 10 } });
    assert.equal(patched.status, 200, patched.text);
    assert.equal(patched.json.name, name);
    const row = (await gw.request('/admin/keys', { headers: admin })).json.data.find((k) => k.name === name);
    assert.equal(row.rpm, 10);
    assert.equal((await client(gw, made.json.key).models.list()).data.length, 1, 'the key works');
    for (const bad of ['team%2', 'team%zz', 'a%00b', `${'x'.repeat(128)}`]) {
      const r = await gw.request(`/admin/keys/${bad}`, { method: 'DELETE', headers: admin });
      assertErrorShape(assert, r, 400);
      assert.equal(r.json.error.code, 'invalid_request_error');
    }
    assert.equal((await gw.request(`/admin/keys/${encoded}`, { method: 'DELETE', headers: admin })).status, 200);
    assertErrorShape(assert, await gw.request(`/admin/keys/${encoded}`, { method: 'DELETE', headers: admin }), 404);
    assert.equal((await gw.request('/v1/models', { headers: { authorization: `Bearer ${made.json.key}` } })).status, 401, 'revoked');
  }));

  test('changes by the admin API and the CLI are listed newest first with who, what, when and from where', guarded(async () => {
    const before = Math.floor(Date.now() / 1000);
    for (const args of [['create', '--name', 'cli-audited', '--rpm', '3'], ['update', 'cli-audited', '--rpm', '7'], ['revoke', 'cli-audited']]) {
      const r = keysCli(gw, args);
      assert.equal(r.code, 0, r.stderr);
    }
    const r = await audit();
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.object, 'list');
    assert.equal(r.json.has_more, false);
    const rows = r.json.data;
    assert.deepEqual(rows.map((x) => [x.action, x.target, x.actor]), [
      ['key.revoke', 'cli-audited', cliActor],
      ['key.update', 'cli-audited', cliActor],
      ['key.create', 'cli-audited', cliActor],
      ['key.revoke', 'team a/b', 'admin'],
      ['key.update', 'team a/b', 'admin'],
      ['key.create', 'team a/b', 'admin'],
    ]);
    for (let i = 1; i < rows.length; i++) assert.ok(rows[i].id < rows[i - 1].id, 'newest first');
    for (const x of rows) {
      assert.deepEqual(Object.keys(x).sort(), ['action', 'actor', 'at', 'client', 'detail', 'id', 'target']);
      assert.match(x.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const at = Date.parse(x.at) / 1000;
      assert.ok(at >= before - 120 && at <= Date.now() / 1000 + 1, `${x.at} is recent`);
    }
    assert.equal(rows[0].client, 'cli');
    assert.match(rows[3].client, /^127\.0\.0\.1:\d+$/, 'the API records the client address');
    assert.deepEqual(JSON.parse(rows[1].detail), { rpm: 7 });
    assert.deepEqual(JSON.parse(rows[4].detail), { rpm: 10 });
    assert.equal(rows[3].detail, null);
    assert.equal(JSON.stringify(rows).includes('ig-'), false, 'no key in the audit log');
  }));

  test('filters: action, actor, since and until (RFC 3339 or unix seconds)', guarded(async () => {
    const creates = (await audit('?action=key.create')).json.data;
    assert.deepEqual(creates.map((x) => x.target), ['cli-audited', 'team a/b']);
    const byCli = (await audit(`?actor=${encodeURIComponent(cliActor)}`)).json.data;
    assert.equal(byCli.length, 3);
    assert.ok(byCli.every((x) => x.actor === cliActor));
    assert.deepEqual((await audit('?actor=admin&action=key.update')).json.data.map((x) => x.target), ['team a/b']);
    const now = Math.floor(Date.now() / 1000);
    const iso = (s) => new Date(s * 1000).toISOString(); // with milliseconds: 2026-11-23T10:00:00.000Z
    assert.equal((await audit(`?since=${iso(now - 3600)}`)).json.data.length, 6);
    assert.equal((await audit(`?since=${now + 3600}`)).json.data.length, 0);
    assert.equal((await audit(`?until=${now - 3600}`)).json.data.length, 0);
    assert.equal((await audit(`?since=${now - 3600}&until=${iso(now + 3600)}`)).json.data.length, 6);
    assert.equal((await audit('?until=2000-01-01')).json.data.length, 0);
    assert.equal((await audit('?action=key.nothing')).json.data.length, 0);
  }));

  test('paging: limit and before=<id> walk every row once; has_more says when to stop', guarded(async () => {
    const all = (await audit()).json.data.map((x) => x.id);
    const seen = [];
    let query = '?limit=4';
    for (;;) {
      const page = await audit(query);
      assert.equal(page.status, 200, page.text);
      assert.ok(page.json.data.length <= 4);
      seen.push(...page.json.data.map((x) => x.id));
      if (!page.json.has_more) break;
      query = `?limit=4&before=${page.json.data.at(-1).id}`;
    }
    assert.deepEqual(seen, all);
    const two = await audit('?limit=2&action=key.update');
    assert.deepEqual([two.json.data.length, two.json.has_more], [2, false]);
    const one = await audit('?limit=1&action=key.update');
    assert.deepEqual([one.json.data.length, one.json.has_more], [1, true]);
    assert.equal((await audit(`?before=${all.at(-1)}`)).json.data.length, 0);
  }));

  test('bad parameters get a 400; keys that are not the admin token get a 403, no key a 401', guarded(async () => {
    for (const q of ['?limit=0', '?limit=1001', '?limit=ten', '?limit=-1', '?before=0', '?before=x', '?since=yesterday',
      '?until=2026-13-01', '?since=2026-11-23T10:00:00', '?action=%zz', `?actor=${'x'.repeat(300)}`]) {
      const r = await audit(q);
      assertErrorShape(assert, r, 400);
      assert.match(r.json.error.message, /^(limit|before|since|until|action|actor): /, q);
    }
    assert.equal((await audit('?limit=1000')).status, 200);
    // /v1/usage reads its times and parameters the same way.
    for (const q of ['?from=yesterday', '?to=2026-11-23T10:00', '?key=%zz']) {
      const r = await gw.request(`/v1/usage${q}`, { headers: admin });
      assertErrorShape(assert, r, 400);
      assert.match(r.json.error.message, /^(from|to|key): /, q);
    }
    assert.equal((await gw.request('/v1/usage?from=2026-11-23T10:00:00.500Z', { headers: admin })).status, 200);
    for (const key of [KEYS.alpha, KEYS.legacy]) {
      const r = await audit('', { authorization: `Bearer ${key}` });
      assertErrorShape(assert, r, 403);
      assert.equal(r.json.error.code, 'admin_required');
    }
    assertErrorShape(assert, await audit('', {}), 401);
    assertErrorShape(assert, await gw.request('/admin/audit', { method: 'POST', headers: admin, body: {} }), 405);
  }));
});

describe('auth switches', () => {
  test('an admin token alone turns auth on; the admin API is never open to anyone', async (t) => {
    const gw = await startGateway(t, { models: { a: { cmd: fakeCmd('a') } }, extra: { auth: { admin_token: ADMIN } } });
    assertErrorShape(assert, await gw.request('/admin/keys', { method: 'POST', body: { name: 'x' } }), 401);
    assertErrorShape(assert, await gw.request('/v1/models'), 401);
    assert.equal((await gw.request('/v1/models', { headers: { authorization: `Bearer ${ADMIN}` } })).status, 200);
  });

  test('auth.enabled: false keeps everything open even with keys configured', async (t) => {
    const gw = await startGateway(t, { models: { a: { cmd: fakeCmd('a') } }, extra: { auth: { enabled: false, keys: [{ name: 'k', key: KEYS.alpha }] } } });
    assert.equal((await gw.request('/v1/models')).status, 200);
  });
});

describe('crash safety', () => {
  test('kill -9 under load, then restart: usage within the flush window, database checked ok', async (t) => {
    const key = 'sk-crash-0123456789abcdef';
    const opts = {
      models: { a: { cmd: fakeCmd('a') } },
      extra: { auth: { admin_token: ADMIN, keys: [{ name: 'crash', key }] } },
    };
    const first = await startGateway(t, opts);
    const stateDir = first.dir;
    const done = []; // completion times of successful requests
    let running = true;
    const load = Array.from({ length: 8 }, async () => {
      const c = new OpenAI({ apiKey: key, baseURL: first.baseURL, maxRetries: 0, timeout: deadline(10000) });
      while (running) {
        try {
          await c.chat.completions.create({ model: 'a', messages: MESSAGES, max_tokens: 2 });
          done.push(Date.now());
        } catch {
          return; // the gateway is gone
        }
      }
    });
    // Long enough that some requests are older than the flush window when the kill comes.
    await waitFor(() => done.length >= 300 && Date.now() - done[0] > 2500, { timeoutMs: deadline(30000), message: '300 requests over 2.5 s' });
    const killedAt = Date.now();
    first.children(); // remembered, so the cleanup can stop the orphaned models
    process.kill(first.pid, 'SIGKILL');
    running = false;
    await Promise.all(load);
    await first.exit;
    const completed = done.length;
    const settledBefore = done.filter((at) => at < killedAt - 1500).length; // older than the flush window
    // The same database, a new process.
    const second = await startGateway(t, { ...opts, env: { INFERGATE_STATE_DIR: stateDir } });
    await waitFor(() => /integrity check: ok/.test(second.output()), { timeoutMs: deadline(5000), message: 'the integrity check ran' });
    const usage = await second.request('/v1/usage?group_by=key', { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(usage.status, 200, usage.text);
    const requests = usage.json.data.find((r) => r.key === 'crash')?.requests ?? 0;
    assert.ok(settledBefore > 0);
    // A request is counted when the gateway ends it, just before its client sees it: up to
    // one per client more than the client saw.
    assert.ok(requests >= settledBefore && requests <= completed + 8,
      `usage ${requests} should be between ${settledBefore} (done over 1.5 s before the kill) and ${completed}`);
    assert.equal((await second.request('/v1/models', { headers: { authorization: `Bearer ${key}` } })).status, 200);
  });
});
