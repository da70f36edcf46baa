// A one-slot llama-server stand-in (distributed.test.mjs): like llama-server with `-np 1`,
// it answers one completion at a time and the others wait their turn in its queue, which
// fake-llama-server (every request served at once) cannot show. GET /health and
// POST /v1/chat/completions (not streamed), each taking --ms milliseconds of the slot.
//   node slot_server.mjs --port P [--ms N] [--model NAME] [--events-file F]
// The events file gets fake-llama-server's `request` lines, so tests count the same way.
import fs from 'node:fs';
import http from 'node:http';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(arg('--port'));
const ms = Number(arg('--ms', '200'));
const model = arg('--model', 'slot');
const events = arg('--events-file');
const MAX_BODY = 1 << 20;
let slot = Promise.resolve(); // the tail of the queue
let n = 0;

function send(res, status, doc) {
  const body = JSON.stringify(doc);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function complete(res, id) {
  send(res, 200, {
    id: `chatcmpl-slot${id}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: 'one slot' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
  });
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/health') return send(res, 200, { status: 'ok' });
  if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
    return send(res, 404, { error: { code: 404, message: 'File Not Found', type: 'not_found_error' } });
  }
  let size = 0;
  req.on('data', (d) => {
    size += d.length;
    if (size > MAX_BODY) req.destroy();
  });
  req.on('end', () => {
    const id = n++;
    if (events) fs.appendFileSync(events, `${JSON.stringify({ event: 'request', id, path: req.url })}\n`);
    slot = slot.then(() => new Promise((r) => setTimeout(r, ms))).then(() => complete(res, id));
  });
});
server.listen(port, '127.0.0.1');
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
