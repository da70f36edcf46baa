// The dashboard (/ui/) in headless Chromium (Debian's chromium driven by playwright-core):
// static files public with the page security headers, login with the admin token, every
// page without console errors and without a request leaving loopback, a model's state
// changing live when it loads (over /events, and by polling /status where /events is
// missing), load/unload buttons, the log tail, the playground streaming a reply with TTFT
// and tok/s, the request log with live rows, filters and paging, and a key created from
// the keys page.
// Screenshots of each page go to BUILD/ui-screenshots/.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { BIN_DIR, assertErrorShape, deadline, fakeCmd, guardWith, pidGone, startGateway, suiteScope, waitFor } from './lib/harness.mjs';

const CHROMIUM = process.env.IG_CHROMIUM || '/usr/bin/chromium';
const ADMIN = 'admin-token-0123456789abcdef';
const SHOTS = path.join(BIN_DIR, 'ui-screenshots');
const UI_WAIT = deadline(10000);
const skip = fs.existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM} (scripts/bootstrap installs Debian's chromium)`;

describe('dashboard', { skip }, () => {
  const scope = suiteScope();
  const guarded = guardWith(() => gw);
  let gw;
  let server; // the browser process (launchServer), killed by PID at the end
  let browser;
  let page;
  const requests = []; // every URL the page asked for
  const errors = []; // console errors and uncaught exceptions
  const allowed = []; // [method-less URL suffix, status] of errors a step expects

  const admin = { authorization: `Bearer ${ADMIN}` };
  const api = (p, opts = {}) => gw.request(p, { ...opts, headers: { ...admin, ...(opts.headers || {}) } });
  const stateOf = async (id) => (await api('/status')).json.models.find((m) => m.id === id).state;
  const shot = (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const go = async (hash, selector) => {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await page.waitForSelector(selector, { state: 'attached', timeout: UI_WAIT });
  };
  /** Asserts no console error and no request off loopback so far, then forgets them. */
  const assertClean = () => {
    const isLoopback = (u) => u.startsWith('data:') || ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(u).hostname);
    assert.deepEqual(requests.filter((u) => !isLoopback(u)), [], 'requests that left loopback');
    assert.deepEqual(errors, [], 'console errors');
    requests.length = 0;
  };
  /** Records PAGE's requests, console errors and uncaught exceptions. */
  const watch = (p) => {
    p.on('request', (r) => requests.push(r.url()));
    p.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
    p.on('console', (m) => {
      if (m.type() !== 'error') return;
      const url = m.location().url || '';
      const ok = allowed.some(([suffix, status]) => url.split('?')[0].endsWith(suffix) && m.text().includes(`${status}`));
      if (!ok) errors.push(`${m.text()} (${url})`);
    });
  };

  before(async () => {
    gw = await startGateway(scope.t, {
      models: {
        a: { cmd: fakeCmd('a', ['--token-us', 40000]) },
        b: { cmd: fakeCmd('b', ['--startup-ms', 2500]) }, // starting long enough to be seen
      },
      extra: {
        groups: { all: { swap: false, exclusive: false, members: ['a', 'b'] } },
        auth: { admin_token: ADMIN },
      },
    });
    fs.mkdirSync(SHOTS, { recursive: true });
    server = await chromium.launchServer({
      executablePath: CHROMIUM,
      headless: true,
      args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
    });
    scope.t.after(async () => {
      const pid = server.process().pid;
      await Promise.race([server.close(), new Promise((r) => setTimeout(r, 5000))]).catch(() => {});
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {}
      }
      await waitFor(() => pidGone(pid), { timeoutMs: 5000, message: 'chromium gone' }).catch(() => {});
    });
    browser = await chromium.connect(server.wsEndpoint());
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
    watch(page);
  });
  after(scope.cleanup);

  test('the files are public with security headers and ETags; the data needs the admin token', guarded(async () => {
    const redirect = await gw.request('/ui');
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.location, '/ui/');
    const index = await gw.request('/ui/');
    assert.equal(index.status, 200);
    assert.match(index.headers['content-type'], /^text\/html/);
    assert.match(index.headers['content-security-policy'], /default-src 'self'/);
    assert.match(index.headers['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(index.headers['x-frame-options'], 'DENY');
    assert.equal(index.headers['referrer-policy'], 'no-referrer');
    assert.equal(index.headers['x-content-type-options'], 'nosniff');
    assert.equal(index.headers['cache-control'], 'no-cache');
    assert.match(index.headers.etag, /^"[0-9a-f]+"$/);
    assert.doesNotMatch(index.text, /https?:\/\//, 'index.html loads nothing from elsewhere');
    const again = await gw.request('/ui/', { headers: { 'if-none-match': index.headers.etag } });
    assert.equal(again.status, 304);
    assert.equal(again.text, '');
    for (const [file, type] of [['app.js', /^text\/javascript/], ['app.css', /^text\/css/], ['favicon.svg', /^image\/svg\+xml/]]) {
      const r = await gw.request(`/ui/${file}`);
      assert.equal(r.status, 200, file);
      assert.match(r.headers['content-type'], type, file);
      assert.equal(r.headers['x-frame-options'], 'DENY', file);
    }
    const missing = await gw.request('/ui/missing.js');
    assertErrorShape(assert, missing, 404);
    assert.equal(missing.json.error.code, 'not_found');
    assert.equal(missing.headers['x-frame-options'], 'DENY');
    assert.equal((await gw.request('/ui/', { method: 'POST', body: {} })).status, 405);
    assert.deepEqual((await gw.request('/ui/auth.json')).json, { auth: true });
    assertErrorShape(assert, await gw.request('/status'), 401);
  }));

  test('login: a wrong token is refused, the admin token opens the overview', guarded(async () => {
    await page.goto(`${gw.url}/ui`);
    await page.waitForSelector('#login-form', { state: 'visible', timeout: UI_WAIT });
    assert.equal(page.url(), `${gw.url}/ui/`);
    await shot('login');
    allowed.push(['/admin/keys', 401]);
    await page.fill('#login-token', 'not-the-token-0123456789');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#login-error:not([hidden])', { timeout: UI_WAIT });
    assert.match(await page.textContent('#login-error'), /not accepted/);
    allowed.pop();
    await page.fill('#login-token', ADMIN);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#overview-models tr[data-model="a"] .badge[data-state="unloaded"]', { timeout: UI_WAIT });
    assert.equal(await page.isVisible('#login'), false);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('infergate.token')), ADMIN);
    await page.waitForSelector('#live[data-mode="events"]', { timeout: UI_WAIT }); // /events
    assertClean();
  }));

  test('the overview shows a model loading live, with its progress, without a reload', guarded(async () => {
    await go('#/overview', '#overview-models tr[data-model="b"] .badge[data-state="unloaded"]');
    await page.evaluate(() => { window.notReloaded = true; });
    // The observer is in place (awaited) before the load starts, so no state can be missed.
    await page.evaluate(() => {
      const seen = { states: [], progress: [] };
      window.seenLoad = new Promise((resolve) => {
        const note = () => {
          const row = document.querySelector('#overview-models tr[data-model="b"]');
          const s = row?.querySelector('.badge')?.dataset.state;
          const pct = row?.querySelector('.progress')?.dataset.progress;
          if (s && seen.states[seen.states.length - 1] !== s) seen.states.push(s);
          if (pct !== undefined && seen.progress[seen.progress.length - 1] !== Number(pct)) seen.progress.push(Number(pct));
          if (s === 'ready') resolve(seen);
        };
        new MutationObserver(note).observe(document.getElementById('main'), { subtree: true, childList: true });
        note();
      });
    });
    const seen = page.evaluate(() => window.seenLoad);
    const load = await api('/models/load', { method: 'POST', body: { model: 'b' } });
    assert.equal(load.status, 200, load.text);
    const { states, progress } = await Promise.race([seen, new Promise((_, rej) => setTimeout(() => rej(new Error('b never showed ready')), UI_WAIT))]);
    assert.deepEqual(states, ['unloaded', 'starting', 'ready'], 'the page followed the load');
    assert.ok(progress.length >= 2 && progress[progress.length - 1] > progress[0], `the load progress rose: ${progress}`);
    assert.equal(await page.evaluate(() => window.notReloaded), true);
    await page.waitForSelector('.events li >> text=b', { timeout: UI_WAIT });
    assert.match(await page.textContent('[data-stat="ready"] .value'), /1 \/ 2/);
    await shot('overview');
    assertClean();
  }));

  test('models page: load and unload buttons, capabilities, the log tail over SSE', guarded(async () => {
    await go('#/models', '#models-table tr[data-model="a"] button[data-action="load"]:not([disabled])');
    await page.click('#models-table tr[data-model="a"] button[data-action="load"]');
    await page.waitForSelector('#models-table tr[data-model="a"] .badge[data-state="ready"]', { timeout: UI_WAIT });
    assert.equal(await stateOf('a'), 'ready');
    await page.click('#models-table tr[data-model="a"] button[data-action="logs"]');
    await page.waitForFunction(() => /listening on/.test(document.getElementById('logs').textContent), null, { timeout: UI_WAIT });
    assert.equal(await page.inputValue('#log-source'), 'a');
    await shot('models');
    await page.click('#models-table tr[data-model="b"] button[data-action="unload"]');
    await page.waitForSelector('#models-table tr[data-model="b"] .badge[data-state="unloaded"]', { timeout: UI_WAIT });
    assert.equal(await stateOf('b'), 'unloaded');
    assertClean();
  }));

  test('playground: a streamed reply appears piece by piece with TTFT and tok/s', guarded(async () => {
    await go('#/playground', '#pg-model option[value="a"]');
    await page.selectOption('#pg-model', 'a');
    await page.fill('#pg-max-tokens', '24');
    await page.fill('#pg-prompt', 'Say something');
    // Record the reply's length each time it changes while it streams.
    await page.evaluate(() => {
      window.replyLengths = [];
      new MutationObserver(() => {
        const reply = document.querySelector('#pg-messages .msg.assistant');
        if (reply) window.replyLengths.push(reply.textContent.length);
      }).observe(document.getElementById('pg-messages'), { subtree: true, childList: true, characterData: true });
    });
    await page.click('#pg-send');
    await page.waitForSelector('#pg-messages .msg.assistant[data-streaming="false"]', { timeout: UI_WAIT });
    const lengths = await page.evaluate(() => window.replyLengths);
    const growing = lengths.filter((n, i) => n > 0 && n !== lengths[i - 1]);
    assert.ok(growing.length >= 10, `the reply grew in pieces: ${JSON.stringify(lengths)}`);
    const perf = await page.textContent('#pg-perf');
    assert.match(perf, /TTFT \d+ ms · [\d.,]+ tok\/s · 24 tokens/);
    assert.ok((await page.textContent('#pg-messages .msg.assistant')).trim().length > 0);
    await shot('playground');
    assertClean();
  }));

  test('requests page: the request log, live rows, filters and paging', guarded(async () => {
    // The playground's chat is in the log (written within the second).
    await go('#/requests', '#requests-table tbody tr');
    await page.waitForSelector('#requests-table tr:has(td:text-is("/v1/chat/completions")):has(td:text-is("a"))', { timeout: UI_WAIT });
    // A request made while the page is open appears at the top without a reload.
    const count = () => page.locator('#requests-table tbody tr').count();
    const before = await count();
    const chat = await api('/v1/chat/completions', { method: 'POST', body: { model: 'a', max_tokens: 1, messages: [{ role: 'user', content: 'hi' }] } });
    assert.equal(chat.status, 200);
    const id = chat.headers['x-request-id'];
    await page.waitForSelector(`#requests-table tbody tr:first-child[data-request-id="${id}"]`, { timeout: UI_WAIT });
    assert.equal(await count(), before + 1);
    await shot('requests');
    // 30 more requests: 25 on the first page, the rest on the next.
    for (let i = 0; i < 30; i++) {
      const r = await api('/v1/completions', { method: 'POST', body: { model: 'a', max_tokens: 1, prompt: `p${i}` } });
      assert.equal(r.status, 200);
    }
    await waitFor(async () => (await api('/admin/requests?endpoint=/v1/completions&limit=100')).json.data.length === 30,
      { timeoutMs: UI_WAIT, message: '30 rows in the request log' });
    const total = (await api('/admin/requests?limit=1000')).json.data.length;
    assert.ok(total > 25 && total <= 50, `${total} rows`);
    await page.selectOption('#requests-filter select[name=limit]', '25');
    await page.click('#requests-filter button[type=submit]');
    await waitFor(async () => (await count()) === 25, { timeoutMs: UI_WAIT, message: 'a page of 25 rows' });
    const first = await page.locator('#requests-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.requestId));
    await page.click('.pager button:text("Older →")');
    await waitFor(async () => (await count()) === total - 25, { timeoutMs: UI_WAIT, message: 'the older rows' });
    const second = await page.locator('#requests-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.requestId));
    assert.equal(second.filter((x) => first.includes(x)).length, 0, 'pages do not overlap');
    assert.equal(await page.isDisabled('.pager button:text("Older →")'), true);
    // Filters: by status class and by key.
    await page.fill('#requests-filter input[name=status]', '4');
    await page.click('#requests-filter button[type=submit]');
    await page.waitForSelector('.notice:text("No requests match.")', { timeout: UI_WAIT });
    await page.fill('#requests-filter input[name=status]', '');
    await page.fill('#requests-filter input[name=key]', 'admin');
    await page.click('#requests-filter button[type=submit]');
    await waitFor(async () => (await count()) === 25, { timeoutMs: UI_WAIT, message: 'the admin\'s requests' });
    assertClean();
  }));

  test('keys page: creates a key that works, shows usage, revokes the key', guarded(async () => {
    await go('#/keys', '#key-form');
    await page.fill('#key-form input[name=name]', 'ui-team');
    await page.fill('#key-form input[name=models]', 'a');
    await page.fill('#key-form input[name=rpm]', '30');
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('#new-key-value', { timeout: UI_WAIT });
    const key = (await page.textContent('#new-key-value')).trim();
    assert.match(key, /^ig-/);
    await page.waitForSelector('#keys-table tr[data-key="ui-team"]', { timeout: UI_WAIT });
    const listed = await gw.request('/v1/models', { headers: { authorization: `Bearer ${key}` } });
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.json.data.map((m) => m.id), ['a']);
    const rows = (await api('/admin/keys')).json.data;
    assert.equal(rows.find((k) => k.name === 'ui-team').rpm, 30);
    // The playground's chat is in the usage: a column in the chart and a row in the table.
    await page.waitForSelector('#usage-chart svg rect', { timeout: UI_WAIT });
    await page.waitForSelector('#usage-table td >> text=admin', { timeout: UI_WAIT });
    await shot('keys');
    await page.click('#keys-table tr[data-key="ui-team"] button[data-action="revoke"]');
    await page.click('#keys-table tr[data-key="ui-team"] button[data-action="revoke"]');
    await page.waitForSelector('#keys-table tr[data-key="ui-team"] .badge.failed', { timeout: UI_WAIT });
    assert.equal((await gw.request('/v1/models', { headers: { authorization: `Bearer ${key}` } })).status, 401);
    assertClean();
  }));

  test('without /events the page polls /status and still follows a load', guarded(async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    try {
      await context.addInitScript((t) => sessionStorage.setItem('infergate.token', t), ADMIN);
      await context.route('**/events', (route) => route.fulfill({
        status: 404, contentType: 'application/json',
        body: JSON.stringify({ error: { message: 'no such endpoint', type: 'invalid_request_error', code: 'not_found' } }),
      }));
      const p = await context.newPage();
      watch(p);
      allowed.push(['/events', 404]);
      await p.goto(`${gw.url}/ui/#/overview`);
      await p.waitForSelector('#live[data-mode="polling"]', { timeout: UI_WAIT });
      await p.waitForSelector('#overview-models tr[data-model="b"] .badge[data-state="unloaded"]', { timeout: UI_WAIT });
      assert.equal((await api('/models/load', { method: 'POST', body: { model: 'b' } })).status, 200);
      await p.waitForSelector('#overview-models tr[data-model="b"] .badge[data-state="ready"]', { timeout: UI_WAIT });
      await p.waitForSelector('.events li:has-text("starting → ready")', { timeout: UI_WAIT });
      await p.close();
      allowed.pop();
      assertClean();
    } finally {
      await context.close();
    }
  }));

  test('with auth off the dashboard opens without a login', guarded(async () => {
    const open = await startGateway(scope.t, { models: { c: { cmd: fakeCmd('c') } } });
    await page.goto(`${open.url}/ui/`);
    await page.waitForSelector('#overview-models tr[data-model="c"]', { timeout: UI_WAIT });
    assert.equal(await page.isVisible('#login'), false);
    assert.equal(await page.isVisible('#logout'), false);
    await page.goto(`${gw.url}/ui/`); // back to the gateway with auth, still logged in
    await page.waitForSelector('#overview-models tr[data-model="a"]', { timeout: UI_WAIT });
    assertClean();
  }));

  test('log out forgets the token', guarded(async () => {
    await page.click('#logout');
    await page.waitForSelector('#login-form', { state: 'visible', timeout: UI_WAIT });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('infergate.token')), null);
    await page.reload();
    await page.waitForSelector('#login-form', { state: 'visible', timeout: UI_WAIT });
    assertClean();
  }));
});
