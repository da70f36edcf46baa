// OpenAI-compatible API through the gateway in front of infergate-engine doing real inference
// on tiny random-weight models (mkgguf --preset tiny): the shared suite (lib/openai_suite.mjs).
// Greedy decoding (temperature 0) keeps every reply deterministic.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { ENGINE, makeTinyModel, startEngine, stopEngine } from './lib/engine.mjs';
import { registerOpenAISuite } from './lib/openai_suite.mjs';

const ENGINE_ARGS = ['-c', '2048', '-np', '2', '-t', '1'];
let dir;
let chatModel;
let embedModel;

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ig-e2e-oai-engine-'));
  chatModel = path.join(dir, 'tiny.gguf');
  embedModel = path.join(dir, 'embed.gguf');
  await Promise.all([makeTinyModel(chatModel), makeTinyModel(embedModel, ['--embedding'])]);
});

after(() => fsp.rm(dir, { recursive: true, force: true }));

registerOpenAISuite({
  name: 'engine',
  chatArgv: () => [ENGINE, '-m', chatModel, '--port', '${PORT}', ...ENGINE_ARGS],
  embedArgv: () => [ENGINE, '-m', embedModel, '--port', '${PORT}', '--embeddings', '-t', '1'],
  comm: 'infergate-engin', // comm is truncated to 15 characters
  embedDim: 128,
  sampling: (seed) => ({ temperature: 0, seed }),
  countTokens: 'logprobs',
  async startDirect(t) {
    const eng = await startEngine(chatModel, ENGINE_ARGS);
    t.after(() => stopEngine(eng));
    return eng.port;
  },
});
