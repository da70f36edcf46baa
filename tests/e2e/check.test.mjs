// `infergate check -c FILE`: exit 0 for a good config, 1 with FILE:LINE:COL: for a bad one.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { FAKE, INFERGATE, deadline, freePort, tempDir, withTimeout } from './lib/harness.mjs';

/** Runs the gateway binary with ARGS; resolves {code, signal, stdout, stderr}. */
function run(args, timeoutMs = deadline(10000)) {
  const child = spawn(INFERGATE, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [];
  const err = [];
  child.stdout.on('data', (d) => out.push(d));
  child.stderr.on('data', (d) => err.push(d));
  const done = new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
  });
  return withTimeout(done, timeoutMs, `infergate ${args.join(' ')}`).finally(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
}

/** Writes TEXT (lines joined) to NAME in a temp dir; returns the path. */
async function cfgFile(t, name, lines) {
  const dir = await tempDir(t);
  const file = path.join(dir, name);
  await writeFile(file, lines.join('\n') + '\n');
  return file;
}

/** Every "FILE:LINE:COL:" location printed for FILE, as [{line, col, text}]. */
function locations(stderr, file) {
  const out = [];
  const esc = file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const m of stderr.matchAll(new RegExp(`${esc}:(\\d+):(\\d+):([^\\n]*)`, 'g'))) {
    out.push({ line: Number(m[1]), col: Number(m[2]), text: m[3] });
  }
  return out;
}

const GOOD = [
  'healthCheckTimeout: 30',
  'startPort: 25000',
  'models:',
  '  alpha:',
  '    cmd: |',
  `      ${FAKE} --port \${PORT}`,
  '      # comment lines are ignored',
  '      --model alpha',
  '    aliases: [a1, gpt-alpha]',
  '    ttl: 60',
  '  beta:',
  `    cmd: ${FAKE} --port \${PORT} --model beta --token-us 2000`,
  '  hidden:',
  `    cmd: ${FAKE} --port \${PORT} --model hidden`,
  '    unlisted: true',
];

test('check: a good config exits 0', async (t) => {
  const file = await cfgFile(t, 'good.yaml', GOOD);
  const r = await run(['check', '-c', file]);
  assert.equal(r.code, 0, `exit 0, stderr:\n${r.stderr}`);
  assert.deepEqual(locations(r.stderr, file), [], `no problems reported:\n${r.stderr}`);
});

test('check: ttl: -5 exits 1 and points at its line', async (t) => {
  const file = await cfgFile(t, 'bad.yaml', [
    'healthCheckTimeout: 30', // 1
    'models:', // 2
    '  alpha:', // 3
    `    cmd: ${FAKE} --port \${PORT} --model alpha`, // 4
    '  beta:', // 5
    `    cmd: ${FAKE} --port \${PORT} --model beta`, // 6
    '    ttl: -5', // 7
  ]);
  const r = await run(['check', '-c', file]);
  assert.equal(r.code, 1, `exit 1, stderr:\n${r.stderr}`);
  const locs = locations(r.stderr, file);
  assert.ok(locs.length >= 1, `stderr has ${file}:LINE:COL:\n${r.stderr}`);
  assert.equal(locs[0].line, 7, `the error is on line 7:\n${r.stderr}`);
  assert.ok([5, 10].includes(locs[0].col), `column points at the key (5) or the value (10), got ${locs[0].col}:\n${r.stderr}`);
  assert.match(locs[0].text, /ttl/, 'the message names the field');
});

test('check: every problem is reported, each with its own line', async (t) => {
  const file = await cfgFile(t, 'bad2.yaml', [
    'models:', // 1
    '  alpha:', // 2
    `    cmd: ${FAKE} --port \${PORT} --model alpha`, // 3
    '    ttl: -5', // 4
    '  beta:', // 5
    `    cmd: ${FAKE} --port \${PORT} --model beta`, // 6
    '    ttl: -7', // 7
  ]);
  const r = await run(['check', '-c', file]);
  assert.equal(r.code, 1, `exit 1, stderr:\n${r.stderr}`);
  const lines = new Set(locations(r.stderr, file).map((l) => l.line));
  assert.ok(lines.has(4) && lines.has(7), `errors on lines 4 and 7, got ${[...lines]}:\n${r.stderr}`);
});

test('check: a YAML syntax error exits 1 with FILE:LINE:COL:', async (t) => {
  const file = await cfgFile(t, 'syntax.yaml', [
    'models:', // 1
    '  alpha:', // 2
    `    cmd: ${FAKE} --port \${PORT} --model alpha`, // 3
    '    aliases: [a1, a2', // 4: unclosed flow sequence
    '  beta:', // 5
    `    cmd: ${FAKE} --port \${PORT} --model beta`, // 6
  ]);
  const r = await run(['check', '-c', file]);
  assert.equal(r.code, 1, `exit 1, stderr:\n${r.stderr}`);
  const locs = locations(r.stderr, file);
  assert.ok(locs.length >= 1, `stderr has ${file}:LINE:COL:\n${r.stderr}`);
  assert.ok(locs[0].line >= 4 && locs[0].line <= 7, `near line 4, got ${locs[0].line}:\n${r.stderr}`);
});

test('check: an unknown key is a warning with its line, not an error', async (t) => {
  const file = await cfgFile(t, 'warn.yaml', [
    'models:', // 1
    '  alpha:', // 2
    `    cmd: ${FAKE} --port \${PORT} --model alpha`, // 3
    '    colour: blue', // 4
  ]);
  const r = await run(['check', '-c', file]);
  assert.equal(r.code, 0, `exit 0, stderr:\n${r.stderr}`);
  const locs = locations(r.stderr, file);
  assert.ok(locs.some((l) => l.line === 4 && /colour/.test(l.text)), `a warning at ${file}:4: naming the key:\n${r.stderr}`);
});

test('serve refuses to start on an invalid config', async (t) => {
  const file = await cfgFile(t, 'bad.yaml', ['models:', '  alpha:', `    cmd: ${FAKE} --port \${PORT}`, '    ttl: -5']);
  const port = await freePort();
  const r = await run(['serve', '-c', file, '--listen', `127.0.0.1:${port}`]);
  assert.notEqual(r.code, 0, `non-zero exit, stderr:\n${r.stderr}`);
  assert.ok(locations(r.stderr, file).some((l) => l.line === 4), `the error location is printed:\n${r.stderr}`);
});

test('`config generate` writes a config for a models directory that `check` accepts; `models` lists capabilities and memory', async (t) => {
  const { makeTinyModel } = await import('./lib/engine.mjs');
  const { mkdir } = await import('node:fs/promises');
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'm', 'deep'), { recursive: true });
  await makeTinyModel(path.join(dir, 'm', 'chat.gguf'));
  await makeTinyModel(path.join(dir, 'm', 'deep', 'embed.gguf'), ['--embedding']);
  const out = path.join(dir, 'generated.yaml');
  const gen = await run(['config', 'generate', '--models-dir', path.join(dir, 'm'), '--write', out]);
  assert.equal(gen.code, 0, gen.stderr);
  assert.match(gen.stderr, /wrote .*generated\.yaml: 2 model\(s\)/);
  const check = await run(['check', '-c', out]);
  assert.equal(check.code, 0, check.stderr);
  assert.match(check.stdout, /OK, 2 model\(s\)/);
  const models = await run(['models', '-c', out, '--json']);
  assert.equal(models.code, 0, models.stderr);
  const list = JSON.parse(models.stdout);
  assert.deepEqual(list.map((m) => [m.id, m.capabilities]), [['chat', 'completion'], ['embed', 'embeddings']]);
  for (const m of list) {
    assert.ok(m.memory_bytes > 0);
    assert.match(m.cmd, /infergate-engine' -m '.*\.gguf' --port \d+ -c 4096 -np 4/);
  }
  assert.match(list[1].cmd, /--embeddings/);
  const table = await run(['models', '-c', out]);
  assert.match(table.stdout, /^ID +SOURCE +ARCH +PARAMS +QUANT +MEMORY +VRAM +CAPABILITIES$/m);
  assert.match(table.stdout, /^embed +config +llama +\d+M +F32 +\d+ MiB +- +embeddings$/m);
});
