// The README's one-minute tour, run against examples/demo.yaml: what `make run` serves.
// The binaries and model paths of the demo config are pointed at this build and a temp dir.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { BIN_DIR, deadline, startGateway, tempDir } from './lib/harness.mjs';

const run = promisify(execFile);

/** The demo config with build/ paths replaced by BIN_DIR and DIR. */
async function demoConfig(dir) {
  const text = await readFile('examples/demo.yaml', 'utf8');
  return text
    .replaceAll('build/demo/', `${dir}/`)
    .replaceAll('build/infergate-engine', path.join(BIN_DIR, 'infergate-engine'))
    .replaceAll('build/fake-llama-server', path.join(BIN_DIR, 'fake-llama-server'));
}

test('the README tour works against the demo config', { timeout: deadline(120000) }, async (t) => {
  const dir = await tempDir(t);
  const mkgguf = path.join(BIN_DIR, 'mkgguf');
  await run(mkgguf, [path.join(dir, 'demo-chat.gguf'), '--preset', 'small']);
  await run(mkgguf, [path.join(dir, 'demo-embed.gguf'), '--preset', 'tiny', '--embedding']);
  const gw = await startGateway(t, { yamlText: await demoConfig(dir) });

  // curl -s http://127.0.0.1:8080/v1/models
  const models = (await gw.request('/v1/models')).json;
  const ids = models.data.map((m) => m.id).sort();
  assert.deepEqual(ids, ['demo-chat', 'demo-embed']);
  assert.ok(models.data.every((m) => m.state === 'unloaded'));

  // curl -s http://127.0.0.1:8080/models: what the GGUF files say
  const router = Object.fromEntries((await gw.request('/models')).json.data.map((m) => [m.id, m]));
  assert.deepEqual(router['demo-chat'].capabilities, ['completion']);
  assert.deepEqual(router['demo-embed'].capabilities, ['embeddings']);
  assert.ok(router['demo-chat'].memory_bytes > 100e6, 'the small model is over 100 MB');
  assert.equal(router['demo-chat'].details.architecture, 'llama');

  // chat completion by alias, non-streamed and streamed, through the official SDK
  const client = gw.client();
  const chat = await client.chat.completions.create({
    model: 'demo',
    messages: [{ role: 'user', content: 'hello' }],
    max_tokens: 8,
  });
  assert.equal(chat.usage.completion_tokens, 8);
  assert.ok(chat.choices[0].message.content.length > 0);
  const stream = await client.chat.completions.create({
    model: 'demo',
    messages: [{ role: 'user', content: 'hello' }],
    max_tokens: 16,
    stream: true,
  });
  let streamed = '';
  for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
  assert.ok(streamed.length > 0);

  // embeddings by alias (swaps the chat model out)
  const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hi', encoding_format: 'float' });
  const v = emb.data[0].embedding;
  assert.ok(v.length > 0);
  assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-3);

  // curl -s http://127.0.0.1:8080/api/tags: the same models in Ollama's shape
  const tags = (await gw.request('/api/tags')).json;
  assert.deepEqual(tags.models.map((m) => m.name).sort(), ['demo-chat', 'demo-embed']);

  // curl -s /running, then /unload
  const running = (await gw.request('/running')).json.running;
  assert.deepEqual(running.map((r) => r.model), ['demo-embed']);
  assert.equal((await gw.request('/unload')).text, 'OK');

  // the dashboard at http://127.0.0.1:8080/ui/ (auth off: it opens without a token)
  const ui = await gw.request('/ui/');
  assert.equal(ui.status, 200);
  assert.match(ui.headers['content-type'], /^text\/html/);
  assert.deepEqual((await gw.request('/ui/auth.json')).json, { auth: false });

  // /metrics, the request log and /events, as the tour names them
  const metrics = await gw.request('/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.text, /^infergate_requests_total\{model="demo-chat",status="200",key="-"\} [1-9]/m);
  const log = (await gw.request('/admin/requests?model=demo-chat')).json;
  assert.ok(log.data.length >= 2 && log.data.every((r) => r.model === 'demo-chat'));
  assert.equal((await gw.request('/events?types=bogus')).status, 400);
});
