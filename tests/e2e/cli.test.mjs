// The subcommands that talk to a running server (chat, ps, models --url, bench, top) against
// a gateway in front of fake-llama-server, with auth off and on, and `infergate pull`
// against a local HTTP server with Range support that can drop a download midway.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  INFERGATE,
  deadline,
  fakeCmd,
  guardWith,
  pidGone,
  readEvents,
  startGateway,
  suiteScope,
  tempDir,
  waitFor,
  withGateway,
  withTimeout,
} from './lib/harness.mjs';

const live = new Set(); // CLI processes started here, killed by PID whatever happens
process.on('exit', () => {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
});

/**
 * Runs `infergate ARGS` with INPUT on stdin (closed after it) and ENV added; resolves
 * {code, signal, stdout, stderr}. The process is killed if it outlives TIMEOUTMS.
 */
function cli(args, { input = '', env = {}, timeoutMs = deadline(20000) } = {}) {
  const child = spawn(INFERGATE, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  live.add(child.pid);
  const out = [];
  const err = [];
  child.stdout.on('data', (d) => out.push(d));
  child.stderr.on('data', (d) => err.push(d));
  child.stdin.on('error', () => {}); // it may exit before reading everything
  child.stdin.end(input);
  const done = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      live.delete(child.pid);
      const r = { code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (/ERROR: \w+Sanitizer|runtime error:/.test(r.stderr)) reject(new Error(`sanitizer report from infergate ${args.join(' ')}:\n${r.stderr}`));
      else resolve(r);
    });
  });
  return withTimeout(done, timeoutMs, `infergate ${args.join(' ')}`).finally(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
}

/** Asserts that a CLI run exited with CODE, showing its output otherwise. */
function assertExit(r, code) {
  assert.equal(r.code, code, `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
}

const STATS = /^\[(\S+): (\d+) (tokens|chunks), TTFT (\d+) ms, ([\d.]+) tok\/s\]$/;

/** The stats lines of a chat's stderr, parsed. */
function statsLines(stderr) {
  return stderr
    .split('\n')
    .map((l) => l.match(STATS))
    .filter(Boolean)
    .map((m) => ({ model: m[1], tokens: Number(m[2]), unit: m[3], ttftMs: Number(m[4]), tokPerS: Number(m[5]) }));
}

/** The non-streamed reply the gateway gives to MESSAGES (the fake's text is deterministic). */
async function replyTo(gw, model, messages) {
  const r = await gw.client().chat.completions.create({ model, messages });
  return r.choices[0].message.content;
}

describe('chat, ps, models, bench and top against a running gateway', () => {
  const scope = suiteScope();
  let gw;
  let env;
  let eventsFile;

  before(async () => {
    const dir = await tempDir(scope.t);
    eventsFile = path.join(dir, 'events.jsonl');
    gw = await startGateway(scope.t, {
      models: {
        demo: { cmd: fakeCmd('demo', ['--token-us', 2000, '--events-file', eventsFile]), aliases: ['d'] },
        other: { cmd: fakeCmd('other') },
        slow: { cmd: fakeCmd('slow', ['--startup-ms', 2500]) },
        dying: { cmd: fakeCmd('dying', ['--crash-after-tokens', 3]) },
        idle: { cmd: fakeCmd('idle') },
      },
      extra: { groups: { all: { swap: false, exclusive: false, members: ['demo', 'other', 'slow', 'dying', 'idle'] } } },
    });
    env = { INFERGATE_URL: gw.url, INFERGATE_TOKEN: '' };
  });
  after(scope.cleanup);
  const guarded = guardWith(() => gw);

  test('chat with piped stdin: one reply per line, history kept, /model switches, /reset forgets', guarded(async () => {
    const input = ['hello there', 'and then?', '/model other', 'one more', '/reset', 'hello there', ''].join('\n');
    const r = await cli(['chat', 'demo'], { input, env });
    assertExit(r, 0);
    const replies = r.stdout.split('\n');
    assert.equal(replies.pop(), '', 'stdout ends with a newline');
    assert.equal(replies.length, 4, `one line per message: ${r.stdout}`);
    assert.doesNotMatch(r.stdout, /\x1b\[|>/, 'no prompt decoration when stdin is not a terminal');

    // The conversation is sent again each turn: the fake's text depends on every message.
    const h1 = [{ role: 'user', content: 'hello there' }];
    assert.equal(replies[0], await replyTo(gw, 'demo', h1));
    const h2 = [...h1, { role: 'assistant', content: replies[0] }, { role: 'user', content: 'and then?' }];
    assert.equal(replies[1], await replyTo(gw, 'demo', h2));
    const h3 = [...h2, { role: 'assistant', content: replies[1] }, { role: 'user', content: 'one more' }];
    assert.equal(replies[2], await replyTo(gw, 'other', h3));
    assert.equal(replies[3], replies[0], 'after /reset the conversation starts afresh');
    assert.notEqual(replies[1], replies[0]);

    // After each reply: the model, tokens from the stream's usage, TTFT and tok/s.
    const stats = statsLines(r.stderr);
    assert.deepEqual(stats.map((s) => s.model), ['demo', 'demo', 'other', 'other'], r.stderr);
    for (const s of stats) {
      assert.equal(s.tokens, 16);
      assert.equal(s.unit, 'tokens');
      assert.ok(s.ttftMs >= 0 && s.ttftMs < deadline(10000), `TTFT ${s.ttftMs}`);
      assert.ok(s.tokPerS > 0, `tok/s ${s.tokPerS}`);
    }
    // demo sleeps 2 ms between tokens: its speed is measured, not made up.
    assert.ok(stats[1].tokPerS < 1000, `demo at 2 ms per token: ${stats[1].tokPerS} tok/s`);
    const status = (await gw.request('/status')).json.models;
    assert.equal(status.find((m) => m.id === 'other').state, 'ready', '/model other reached that model');
  }));

  test('chat: an unknown model is an error and a non-zero exit; so is a /model switch to one', guarded(async () => {
    const r = await cli(['chat', 'no-such-model'], { input: 'hello\nsecond\n', env });
    assertExit(r, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /no-such-model.*\(HTTP 404, model_not_found\)/);
    assert.equal((r.stderr.match(/HTTP 404/g) || []).length, 1, 'it stops at the first fatal error');

    const s = await cli(['chat', 'other'], { input: 'hi\n/model nope\nhi again\nnever sent\n', env });
    assertExit(s, 1);
    assert.equal(s.stdout.split('\n').filter(Boolean).length, 1, 'the first reply came');
    assert.match(s.stderr, /nope.*model_not_found/);
  }));

  test('chat: an upstream that dies mid-stream is reported, the partial reply ends its line', guarded(async () => {
    const r = await cli(['chat', 'dying'], { input: 'tell me a long story\n', env });
    assertExit(r, 1);
    assert.equal(r.stdout.split(' ').length, 3, `three tokens came before the crash: ${r.stdout}`);
    assert.ok(r.stdout.endsWith('\n'));
    assert.match(r.stderr, /upstream of model dying failed.*\(upstream_error\)$/m);
    assert.equal(statsLines(r.stderr).length, 0);
  }));

  test('chat says a model is loading, with its progress; ps and top show it too', guarded(async () => {
    const chat = cli(['chat', 'slow'], { input: 'wake up\n', env });
    // The fake reports its load progress in its 503s, as infergate-engine does.
    const ps = await waitFor(async () => {
      const p = await cli(['ps'], { env });
      return /^slow\s+starting \d+%\s/m.test(p.stdout) && p;
    }, { timeoutMs: deadline(5000), message: 'ps shows slow starting with a percentage' });
    assertExit(ps, 0);
    const top = await cli(['top', '--once'], { env });
    assert.match(top.stdout, /^slow\s+starting( \d+%)?\s/m);
    const r = await chat;
    assertExit(r, 0);
    const loading = [...r.stderr.matchAll(/^infergate chat: model 'slow' is loading\.\.\.(?: (\d+)%)?$/gm)];
    assert.ok(loading.length >= 1, r.stderr);
    const percents = loading.filter((m) => m[1] !== undefined).map((m) => Number(m[1]));
    assert.ok(percents.length >= 1, `the progress is shown: ${r.stderr}`);
    assert.deepEqual(percents, [...percents].sort((a, b) => a - b), 'progress only grows');
    assert.ok(percents.every((p) => p >= 0 && p <= 100));
    const [stats] = statsLines(r.stderr);
    assert.ok(stats.ttftMs >= 2000, `TTFT includes the load: ${stats.ttftMs} ms`);
    assert.equal(r.stdout.split('\n').filter(Boolean).length, 1);
  }));

  test('ps lists the running models with pid, uptime and queue; --json; --all', guarded(async () => {
    await gw.client().chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }] });
    const r = await cli(['ps'], { env });
    assertExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^MODEL\s+STATE\s+PID\s+UPTIME\s+IN-FLIGHT\s+WAITING\s+MEMORY\s+VRAM$/);
    const demo = lines.find((l) => l.startsWith('demo '));
    assert.ok(demo, r.stdout);
    const [, state, pid] = demo.split(/\s+/);
    assert.equal(state, 'ready');
    assert.ok(gw.children().includes(Number(pid)), `pid ${pid} is one of the gateway's children`);
    assert.ok(!lines.some((l) => l.startsWith('idle ')), 'a model never started is not listed');

    const j = await cli(['ps', '--json'], { env });
    assertExit(j, 0);
    const rows = JSON.parse(j.stdout);
    const row = rows.find((m) => m.model === 'demo');
    assert.equal(row.pid, Number(pid));
    assert.equal(row.state, 'ready');
    assert.equal(typeof row.uptime_ms, 'number');
    assert.equal(row.in_flight, 0);
    assert.equal(row.waiting, 0);
    assert.ok(row.cmd.includes('fake-llama-server'), 'the /running fields are joined in');

    const all = JSON.parse((await cli(['ps', '--all', '--json'], { env })).stdout);
    assert.equal(all.find((m) => m.model === 'idle').state, 'unloaded');
  }));

  test('models --url lists the server\'s models and states; -c FILE still reads the config', guarded(async () => {
    const r = await cli(['models', '--url', gw.url], { env: { INFERGATE_URL: 'http://127.0.0.1:1' } });
    assertExit(r, 0);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /^ID\s+STATE\s+SOURCE\s+MEMORY\s+VRAM\s+CAPABILITIES\s+ALIASES$/);
    assert.deepEqual(lines.slice(1).map((l) => l.split(/\s+/)[0]).sort(), ['demo', 'dying', 'idle', 'other', 'slow']);
    assert.match(lines.find((l) => l.startsWith('demo ')), /^demo\s+ready\s+config\s.*\sd$/);
    assert.match(lines.find((l) => l.startsWith('idle ')), /^idle\s+unloaded\s/);

    const j = await cli(['models', '--json'], { env }); // the URL from INFERGATE_URL
    assertExit(j, 0);
    const data = JSON.parse(j.stdout);
    assert.deepEqual(data.map((m) => m.id), (await gw.request('/models')).json.data.map((m) => m.id));
    assert.deepEqual(data.find((m) => m.id === 'demo').aliases, ['d']);

    const offline = await cli(['models', '-c', gw.configPath], { env });
    assertExit(offline, 0);
    assert.match(offline.stdout, /^ID\s+SOURCE\s+ARCH/, 'the config file, not the server');
    const both = await cli(['models', '-c', gw.configPath, '--url', gw.url], { env });
    assertExit(both, 2);
  }));

  test('a server that is not there: a clear message and exit 1', guarded(async () => {
    for (const args of [['ps'], ['models'], ['top', '--once'], ['bench', 'demo', '-n', '1']]) {
      const r = await cli(args, { env: { INFERGATE_URL: 'http://127.0.0.1:1' } });
      assertExit(r, 1);
      assert.match(r.stdout + r.stderr, /cannot reach http:\/\/127\.0\.0\.1:1/, args.join(' '));
    }
    const chat = await cli(['chat', 'demo'], { input: 'hi\n', env: { INFERGATE_URL: 'http://127.0.0.1:1' } });
    assertExit(chat, 1);
    assert.match(chat.stderr, /cannot reach/);
  }));

  test('bench: N requests at concurrency C, streamed, with TTFT and tokens from usage', guarded(async () => {
    const doneBefore = readEvents(eventsFile).filter((e) => e.event === 'done').length;
    const r = await cli(['bench', 'demo', '-n', '12', '-c', '3', '--stream', '--max-tokens', '8', '--json'], { env });
    assertExit(r, 0);
    const b = JSON.parse(r.stdout);
    assert.equal(b.requests, 12);
    assert.equal(b.concurrency, 3);
    assert.equal(b.ok, 12);
    assert.equal(b.failed, 0);
    assert.equal(b.completion_tokens, 12 * 8);
    assert.equal(b.tokens_from, 'usage');
    assert.ok(b.rps > 0 && b.tok_per_s > 0);
    for (const k of ['p50', 'p90', 'p99', 'max']) assert.equal(typeof b.latency_ms[k], 'number');
    assert.ok(b.ttft_ms.p50 <= b.ttft_ms.p99 && b.ttft_ms.p99 <= b.latency_ms.max);
    // 8 tokens 2 ms apart: no request can take less than 14 ms.
    assert.ok(b.latency_ms.p50 >= 14, `p50 ${b.latency_ms.p50}`);
    const done = await waitFor(() => {
      const n = readEvents(eventsFile).filter((e) => e.event === 'done').length - doneBefore;
      return n >= 13 && n;
    }, { timeoutMs: deadline(5000), message: '13 requests at the model' });
    assert.equal(done, 13, 'the 12 measured and one warm-up');

    const text = await cli(['bench', 'other', '-n', '5', '-c', '2'], { env });
    assertExit(text, 0);
    assert.match(text.stdout, /^ok 5, failed 0 in [\d.]+ s: [\d.]+ req\/s$/m);
    assert.match(text.stdout, /^latency ms: p50 [\d.]+ {2}p90 [\d.]+ {2}p99 [\d.]+ {2}max [\d.]+$/m);
    assert.match(text.stdout, /^tokens: 320 completion, [\d.]+ tok\/s \(from usage\)$/m);

    const bad = await cli(['bench', 'nope', '-n', '3'], { env });
    assertExit(bad, 1);
    assert.match(bad.stderr, /warm-up request failed: .*model_not_found/);
  }));

  test('top --once prints one plain frame with every model and its state', guarded(async () => {
    const r = await cli(['top', '--once'], { env });
    assertExit(r, 0);
    assert.doesNotMatch(r.stdout, /\x1b/, 'no escape sequences');
    assert.match(r.stdout, /^infergate \S+ - http:\/\/127\.0\.0\.1:\d+ - up /);
    const rows = r.stdout.split('\n').filter((l) => /^(demo|other|slow|dying|idle) /.test(l));
    assert.equal(rows.length, 5, r.stdout);
    assert.match(rows.find((l) => l.startsWith('demo ')), /^demo\s+ready\s+\d+\s/);
    assert.match(rows.find((l) => l.startsWith('idle ')), /^idle\s+unloaded\s+-\s/);
    assert.ok(rows.findIndex((l) => l.startsWith('idle ')) > rows.findIndex((l) => l.startsWith('demo ')), 'running models first');
  }));
});

describe('with auth on', () => {
  const KEY = 'sk-cli-test-key-0123456789';

  test('the token comes from INFERGATE_TOKEN or --token-env; without it a clear 401', (t) =>
    withGateway(t, {
      models: { a: { cmd: fakeCmd('a') } },
      extra: { auth: { keys: [{ name: 'cli', key: KEY }] } },
    }, async (gw) => {
      const url = { INFERGATE_URL: gw.url, INFERGATE_TOKEN: '' };
      const denied = await cli(['ps'], { env: url });
      assertExit(denied, 1);
      assert.match(denied.stderr, /HTTP 401, missing_api_key.*set INFERGATE_TOKEN/);
      const chatDenied = await cli(['chat', 'a'], { input: 'hi\nhi\n', env: url });
      assertExit(chatDenied, 1);
      assert.equal((chatDenied.stderr.match(/HTTP 401/g) || []).length, 1, 'auth errors end the chat');

      const wrong = await cli(['models'], { env: { ...url, INFERGATE_TOKEN: 'sk-wrong-wrong-wrong-wrong' } });
      assertExit(wrong, 1);
      assert.match(wrong.stderr, /invalid_api_key/);
      assert.doesNotMatch(wrong.stderr, /sk-wrong/, 'the token is never printed');

      const chat = await cli(['chat', 'a'], { input: 'hi\n', env: { ...url, INFERGATE_TOKEN: KEY } });
      assertExit(chat, 0);
      assert.equal(statsLines(chat.stderr).length, 1);
      const ps = await cli(['ps', '--json'], { env: { ...url, INFERGATE_TOKEN: KEY } });
      assertExit(ps, 0);
      assert.equal(JSON.parse(ps.stdout)[0].model, 'a');
      const viaName = await cli(['top', '--once', '--token-env', 'MY_IG_KEY'], { env: { ...url, MY_IG_KEY: KEY } });
      assertExit(viaName, 0);
      assert.match(viaName.stdout, /^a\s+ready\s/m);
      const unset = await cli(['ps', '--token-env', 'NOT_SET_ANYWHERE'], { env: url });
      assertExit(unset, 2);
      assert.match(unset.stderr, /NOT_SET_ANYWHERE is not set/);
      const bench = await cli(['bench', 'a', '-n', '4', '-c', '2', '--json'], { env: { ...url, INFERGATE_TOKEN: KEY } });
      assertExit(bench, 0);
      assert.equal(JSON.parse(bench.stdout).ok, 4);
    }));
});

// ------------------------------------------------------------------ pull --

/**
 * A local file server for FILE (a Buffer) at /model.gguf with Range support. Modes, changed
 * between requests through the returned object: dropAfter (bytes after which the first
 * response is cut, once), ignoreRange (answers 200 with everything), file (the content;
 * its strong ETag is its sha256, and If-Range with another one gets the whole file, as in
 * RFC 9110), ignoreIfRange (a sloppy server: the range of whatever file it has now),
 * validators ('etag'; 'date': Last-Modified only, from .modified; 'weak': a weak ETag and
 * Last-Modified, neither usable in If-Range). Records each request's Range and If-Range
 * headers in .ranges and .ifRanges.
 */
async function fileServer(t, initial) {
  const state = {
    dropAfter: -1, ignoreRange: false, ignoreIfRange: false, ranges: [], ifRanges: [], sockets: new Set(),
    file: initial, validators: 'etag', modified: 'Mon, 02 Nov 2026 10:00:00 GMT',
  };
  const server = http.createServer((req, res) => {
    const file = state.file;
    const etag = `"${sha256(file)}"`;
    const validator = { etag, date: state.modified, weak: null }[state.validators];
    const tags = {
      etag: { etag },
      date: { 'last-modified': state.modified },
      weak: { etag: `W/${etag}`, 'last-modified': state.modified },
    }[state.validators];
    state.ranges.push(req.headers.range ?? null);
    state.ifRanges.push(req.headers['if-range'] ?? null);
    if (req.url.split('?')[0] !== '/model.gguf') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (m && !state.ignoreRange && (ifRange === undefined || ifRange === validator || state.ignoreIfRange)) {
      start = Number(m[1]);
      if (start >= file.length) {
        res.writeHead(416, { 'content-range': `bytes */${file.length}` });
        res.end();
        return;
      }
      res.writeHead(206, {
        'content-length': file.length - start,
        'content-range': `bytes ${start}-${file.length - 1}/${file.length}`,
        'accept-ranges': 'bytes',
        ...tags,
      });
    } else {
      res.writeHead(200, { 'content-length': file.length, 'accept-ranges': 'bytes', ...tags });
    }
    if (state.dropAfter >= 0) {
      const cut = state.dropAfter;
      state.dropAfter = -1;
      res.write(file.subarray(start, start + cut), () => res.socket.destroy());
      return;
    }
    res.end(file.subarray(start));
  });
  server.on('connection', (s) => {
    state.sockets.add(s);
    s.on('close', () => state.sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of state.sockets) s.destroy();
    return new Promise((r) => server.close(r));
  });
  state.url = `http://127.0.0.1:${server.address().port}/model.gguf`;
  return state;
}

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

describe('pull', () => {
  test('an interrupted download is resumed with a Range request; the result is identical and its sha256 checked', async (t) => {
    const file = crypto.randomBytes(3 * 1024 * 1024 + 123);
    const srv = await fileServer(t, file);
    const dir = await tempDir(t);
    const dest = path.join(dir, 'model.gguf');

    srv.dropAfter = 1024 * 1024 + 7;
    const first = await cli(['pull', srv.url, '--models-dir', dir, '--sha256', sha256(file)]);
    assertExit(first, 1);
    assert.match(first.stderr, /run the same command to resume/);
    assert.ok(!fs.existsSync(dest), 'no file under the final name');
    const partSize = fs.statSync(`${dest}.part`).size;
    assert.equal(partSize, 1024 * 1024 + 7, 'what arrived is kept in .part');

    const second = await cli(['pull', srv.url, '--models-dir', dir, '--sha256', sha256(file)]);
    assertExit(second, 0);
    assert.equal(srv.ranges.at(-1), `bytes=${partSize}-`, 'the second request asked for the rest');
    assert.match(second.stdout, new RegExp(`^resuming .*model\\.gguf\\.part at 1\\.00 MiB$`, 'm'));
    assert.match(second.stdout, new RegExp(`^saved .*model\\.gguf \\(3\\.00 MiB, sha256 ${sha256(file)}, verified\\)$`, 'm'));
    assert.ok(Buffer.compare(fs.readFileSync(dest), file) === 0, 'byte-identical');
    assert.ok(!fs.existsSync(`${dest}.part`));
    // Not a terminal: plain progress lines, the last one at 100%.
    assert.match(second.stdout, /^100% {2}3\.00 MiB of 3\.00 MiB {2}\S+ \S+\/s {2}ETA \S+$/m);
    assert.doesNotMatch(second.stdout, /\r|\x1b/);

    assert.equal(srv.ifRanges.at(-1), `"${sha256(file)}"`, 'the resume named the file it continues');
    assert.ok(!fs.existsSync(`${dest}.part.validator`), 'the kept validator goes with the .part');

    const again = await cli(['pull', srv.url, '--models-dir', dir]);
    assertExit(again, 1);
    assert.match(again.stderr, /exists; --force replaces it/);
    const forced = await cli(['pull', srv.url, '-o', dest, '--force']);
    assertExit(forced, 0);
    assert.ok(Buffer.compare(fs.readFileSync(dest), file) === 0);
  });

  test('a file that changed on the server since an interrupted pull is fetched whole, not spliced (If-Range)', async (t) => {
    const old = crypto.randomBytes(600 * 1024);
    const srv = await fileServer(t, old);
    const dir = await tempDir(t);
    const dest = path.join(dir, 'm.gguf');

    srv.dropAfter = 100 * 1024;
    assertExit(await cli(['pull', srv.url, '-o', dest]), 1);
    assert.equal(fs.statSync(`${dest}.part`).size, 100 * 1024);
    assert.equal(fs.readFileSync(`${dest}.part.validator`, 'utf8'), `"${sha256(old)}"`);

    const updated = crypto.randomBytes(700 * 1024); // a new upload under the same URL
    srv.file = updated;
    const r = await cli(['pull', srv.url, '-o', dest]);
    assertExit(r, 0);
    assert.equal(srv.ranges.at(-1), `bytes=${100 * 1024}-`);
    assert.equal(srv.ifRanges.at(-1), `"${sha256(old)}"`);
    assert.match(r.stdout, /the file changed on the server since the last attempt: starting over/);
    assert.ok(Buffer.compare(fs.readFileSync(dest), updated) === 0, 'the new file, whole');
    assert.match(r.stdout, new RegExp(`sha256 ${sha256(updated)}`));
    assert.ok(!fs.existsSync(`${dest}.part`) && !fs.existsSync(`${dest}.part.validator`));

    // A server that ignores If-Range sends the rest of the new file (206): its other ETag
    // shows it, and the pull starts over rather than splice.
    const dest2 = path.join(dir, 'm2.gguf');
    srv.file = old;
    srv.dropAfter = 100 * 1024;
    assertExit(await cli(['pull', srv.url, '-o', dest2]), 1);
    srv.file = updated;
    srv.ignoreIfRange = true;
    const r2 = await cli(['pull', srv.url, '-o', dest2]);
    assertExit(r2, 0);
    assert.match(r2.stdout, /the file changed on the server since the last attempt: starting over/);
    assert.equal(srv.ranges.at(-1), null, 'the fresh request asks for the whole file');
    assert.ok(Buffer.compare(fs.readFileSync(dest2), updated) === 0, 'the new file, whole');
  });

  test('If-Range with Last-Modified when there is no ETag; none after a weak ETag', async (t) => {
    const old = crypto.randomBytes(300 * 1024);
    const srv = await fileServer(t, old);
    const dir = await tempDir(t);

    // Last-Modified only: kept and sent; a newer upload comes whole.
    srv.validators = 'date';
    const a = path.join(dir, 'a.gguf');
    srv.dropAfter = 64 * 1024;
    assertExit(await cli(['pull', srv.url, '-o', a]), 1);
    assert.equal(fs.readFileSync(`${a}.part.validator`, 'utf8'), srv.modified);
    const updated = crypto.randomBytes(310 * 1024);
    const firstDate = srv.modified;
    srv.file = updated;
    srv.modified = 'Tue, 03 Nov 2026 10:00:00 GMT';
    const ra = await cli(['pull', srv.url, '-o', a]);
    assertExit(ra, 0);
    assert.equal(srv.ifRanges.at(-1), firstDate);
    assert.match(ra.stdout, /the file changed on the server since the last attempt/);
    assert.ok(Buffer.compare(fs.readFileSync(a), updated) === 0);

    // A weak ETag: no validator is kept (nor the date), the resume asks for the rest plainly.
    srv.validators = 'weak';
    const b = path.join(dir, 'b.gguf');
    srv.dropAfter = 64 * 1024;
    assertExit(await cli(['pull', srv.url, '-o', b]), 1);
    assert.ok(!fs.existsSync(`${b}.part.validator`));
    const rb = await cli(['pull', srv.url, '-o', b]);
    assertExit(rb, 0);
    assert.equal(srv.ranges.at(-1), `bytes=${64 * 1024}-`);
    assert.equal(srv.ifRanges.at(-1), null);
    assert.ok(Buffer.compare(fs.readFileSync(b), updated) === 0);
  });

  test('a sha256 mismatch is an error and keeps no file; a server ignoring Range restarts from scratch', async (t) => {
    const file = crypto.randomBytes(200 * 1024);
    const srv = await fileServer(t, file);
    const dir = await tempDir(t);
    const dest = path.join(dir, 'x.gguf');

    const bad = await cli(['pull', srv.url, '-o', dest, '--sha256', 'ab'.repeat(32)]);
    assertExit(bad, 1);
    assert.match(bad.stderr, new RegExp(`sha256 mismatch .*expected ${'ab'.repeat(32)}, got ${sha256(file)}`));
    assert.ok(!fs.existsSync(dest) && !fs.existsSync(`${dest}.part`), 'nothing kept');

    await fsp.writeFile(`${dest}.part`, Buffer.from('garbage that the server will not continue'));
    srv.ignoreRange = true;
    const r = await cli(['pull', srv.url, '-o', dest, '--sha256', sha256(file)]);
    assertExit(r, 0);
    assert.match(srv.ranges.at(-1), /^bytes=\d+-$/);
    assert.match(r.stdout, /does not resume downloads: starting over/);
    assert.ok(Buffer.compare(fs.readFileSync(dest), file) === 0);

    // A .part holding the whole file already: the server's 416 finishes it.
    srv.ignoreRange = false;
    await fsp.writeFile(`${dest}.part`, file);
    const done = await cli(['pull', srv.url, '-o', dest, '--force', '--sha256', sha256(file)]);
    assertExit(done, 0);
    assert.ok(Buffer.compare(fs.readFileSync(dest), file) === 0);

    const missing = await cli(['pull', srv.url.replace('model.gguf', 'nope.gguf'), '--models-dir', dir]);
    assertExit(missing, 1);
    assert.match(missing.stderr, /HTTP 404/);
    assert.ok(!fs.existsSync(path.join(dir, 'nope.gguf.part')), 'an empty .part is not left behind');
  });
});

// ------------------------------------------------------------------- top --

/** Runs tmux on its own server SOCKET; resolves stdout. */
function tmux(socket, args) {
  return new Promise((resolve, reject) => {
    execFile('tmux', ['-L', socket, '-f', '/dev/null', ...args], (err, stdout, stderr) => {
      if (err) reject(new Error(`tmux ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Starts `infergate top` in a detached tmux pane that stays after it exits; returns helpers. */
async function inTmux(t, gw, name, args) {
  const socket = `ig-cli-${process.pid}-${name}`;
  // Before: a marker on the normal screen. After: the exit code and the terminal modes.
  const script = `echo BEFORE; INFERGATE_URL=${gw.url} ${INFERGATE} ${args}; echo EXIT=$?; ` +
    `stty -a | tr ' ;' '\\n\\n' | grep -E -x -- '-?(icanon|echo)' | tr '\\n' ' '; echo; ` +
    'read -r -t 60 _'; // the pane lives on until Enter: tmux hides the cursor of a dead pane
  await tmux(socket, ['new-session', '-d', '-s', name, '-x', '150', '-y', '30', 'bash', '-c', script]);
  const serverPid = Number((await tmux(socket, ['display-message', '-p', '-t', name, '#{pid}'])).trim());
  t.after(async () => {
    try {
      await tmux(socket, ['kill-server']);
    } catch {}
    await waitFor(() => pidGone(serverPid), { timeoutMs: deadline(5000), message: 'tmux server gone' }).catch(() => {
      try {
        process.kill(serverPid, 'SIGKILL');
      } catch {}
    });
  });
  await tmux(socket, ['set-option', '-t', name, 'remain-on-exit', 'on']);
  const fmt = async (f) => (await tmux(socket, ['display-message', '-p', '-t', name, f])).trim();
  return {
    capture: () => tmux(socket, ['capture-pane', '-p', '-t', name]),
    /** The normal screen with its history: tmux's "Pane is dead" line may scroll it. */
    captureAll: () => tmux(socket, ['capture-pane', '-p', '-S', '-', '-t', name]),
    keys: (...k) => tmux(socket, ['send-keys', '-t', name, ...k]),
    alternate: async () => (await fmt('#{alternate_on}')) === '1',
    cursorVisible: async () => (await fmt('#{cursor_flag}')) === '1',
    dead: async () => (await fmt('#{pane_dead}')) === '1',
    /** Waits until top has exited (after KEY) and the shell printed what follows; returns the
     * normal screen (with history: tmux's "Pane is dead" line may scroll it). */
    async afterTop(key) {
      const text = await waitFor(async () => {
        const all = await this.captureAll();
        return /\n-?icanon -?echo *\n/.test(all.split('EXIT=')[1] ?? '') && all;
      }, { timeoutMs: deadline(5000), message: `top exits on ${key}` });
      return text;
    },
    /** The row of MODEL in the pane as [id, state, pid, uptime, infl, wait, rps, tps, reqs, toks]. */
    async row(model) {
      const line = (await this.capture()).split('\n').find((l) => l.startsWith(`${model} `));
      return line ? line.trim().split(/\s+/) : null;
    },
  };
}

describe('top and chat on a terminal (tmux)', () => {
  test('live view: states, in-flight and counters change with traffic; q restores the terminal', (t) =>
    withGateway(t, {
      models: { demo: { cmd: fakeCmd('demo', ['--token-us', 20000]) }, spare: { cmd: fakeCmd('spare') } },
      extra: { groups: { all: { swap: false, exclusive: false, members: ['demo', 'spare'] } } },
    }, async (gw) => {
      const pane = await inTmux(t, gw, 'q', 'top');
      await waitFor(async () => (await pane.row('demo'))?.[1] === 'unloaded', {
        timeoutMs: deadline(10000), message: 'top shows demo unloaded',
      });
      assert.ok(await pane.alternate(), 'top draws on the alternate screen');
      assert.match(await pane.capture(), /^MODEL\s+STATE\s+PID\s+UPTIME\s+INFL\s+WAIT\s+REQ\/S\s+TOK\/S\s+REQUESTS\s+TOKENS\s+MEMORY/m);

      // A long stream (60 tokens, 20 ms apart): top sees the model ready with it in flight.
      const client = gw.client();
      const streaming = client.chat.completions.create({
        model: 'demo', messages: [{ role: 'user', content: 'go' }], max_tokens: 60, stream: true,
      }).then(async (s) => {
        for await (const _ of s);
      });
      const busy = await waitFor(async () => {
        const r = await pane.row('demo');
        return r && r[1] === 'ready' && r[4] === '1' && r;
      }, { timeoutMs: deadline(10000), message: 'top shows demo ready with 1 in flight' });
      assert.ok(gw.children().includes(Number(busy[2])), `the pid shown (${busy[2]}) is the model's`);
      await streaming;
      await waitFor(async () => (await pane.row('demo'))?.[4] === '0', {
        timeoutMs: deadline(5000), message: 'in flight back to 0',
      });
      // The counters are /status's; the rates are their change between two refreshes.
      const status = (await gw.request('/status')).json.models.find((m) => m.id === 'demo');
      assert.equal(status.requests_total, 1);
      await waitFor(async () => {
        const r = await pane.row('demo');
        return r[8] === '1' && r[9] === String(status.completion_tokens_total);
      }, { timeoutMs: deadline(5000), message: `REQUESTS 1, TOKENS ${status.completion_tokens_total}` });
      await Promise.all([1, 2, 3, 4, 5].map(() =>
        client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'x' }], max_tokens: 2 })));
      const rated = await waitFor(async () => {
        const r = await pane.row('demo');
        return r && Number(r[6]) > 0 && Number(r[7]) > 0 && r;
      }, { timeoutMs: deadline(5000), message: 'REQ/S and TOK/S above 0 after a burst' });
      assert.ok(Number(rated[6]) <= 5 / 0.9, `req/s ${rated[6]} for 5 requests over about a second`);
      assert.ok(!(await pane.cursorVisible()), 'the cursor is hidden while top runs');

      await pane.keys('q');
      const screen = await pane.afterTop('q');
      assert.ok(!(await pane.alternate()), 'back on the normal screen');
      assert.ok(await pane.cursorVisible(), 'the cursor is shown again');
      assert.match(screen, /^BEFORE\nEXIT=0\n/m, 'the normal screen is as it was');
      assert.doesNotMatch(screen, /MODEL\s+STATE/, 'the view is gone with the alternate screen');
      assert.match(screen, /^icanon echo\s*$/m, `canonical mode and echo restored:\n${screen}`);
      await pane.keys('Enter');
      await waitFor(() => pane.dead(), { timeoutMs: deadline(5000), message: 'the shell in the pane ends' });
    }));

  test('Ctrl-C and Ctrl-\\ (SIGQUIT) also leave top with the terminal restored', (t) =>
    withGateway(t, { models: { m: { cmd: fakeCmd('m') } } }, async (gw) => {
      for (const [name, key] of [['c', 'C-c'], ['q', 'C-\\']]) {
        const pane = await inTmux(t, gw, name, 'top');
        await waitFor(async () => (await pane.row('m'))?.[1] === 'unloaded', {
          timeoutMs: deadline(10000), message: 'top shows m',
        });
        await pane.keys(key);
        const screen = await pane.afterTop(key);
        assert.ok(!(await pane.alternate()), key);
        assert.ok(await pane.cursorVisible(), key);
        assert.match(screen, /^BEFORE\nEXIT=0\n/m, key);
        assert.match(screen, /^icanon echo\s*$/m, screen);
        await pane.keys('Enter');
        await waitFor(() => pane.dead(), { timeoutMs: deadline(5000), message: 'the shell in the pane ends' });
      }
    }));

  test('chat on a terminal: a prompt, Ctrl-C stops a reply and not the chat, a bad /model goes back', (t) =>
    withGateway(t, {
      models: { demo: { cmd: fakeCmd('demo', ['--token-us', 20000]) } },
    }, async (gw) => {
      const pane = await inTmux(t, gw, 'chat', 'chat demo --max-tokens 400');
      const screenHas = (re, message) =>
        waitFor(async () => re.test(await pane.capture()), { timeoutMs: deadline(10000), message });
      await screenHas(/^demo>$/m, 'the prompt'); // capture-pane drops trailing spaces
      await pane.keys('hello', 'Enter');
      // 400 tokens 20 ms apart: 8 s. Stop it once it has started.
      await screenHas(/^demo> hello\n\S+ \S+/m, 'the reply streaming');
      await pane.keys('C-c');
      await screenHas(/interrupted\ndemo>$/m, 'a new prompt after Ctrl-C');
      await pane.keys('/model nope', 'Enter');
      await pane.keys('hi', 'Enter');
      await screenHas(/model_not_found.*\n.*back to model 'demo'\ndemo>$/m, 'back to demo');
      await pane.keys('/quit', 'Enter');
      const screen = await pane.afterTop('/quit');
      assert.match(screen, /EXIT=0/);
      assert.match(screen, /^icanon echo\s*$/m);
      await pane.keys('Enter');
      await waitFor(() => pane.dead(), { timeoutMs: deadline(5000), message: 'the shell in the pane ends' });
    }));
});
