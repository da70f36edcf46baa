// Single-stream peer: node-llama-cpp 3.22.1 (the same prebuilt libllama), driven from JS.
// Usage: node nlc.mjs --module DIR/node_modules/node-llama-cpp --model FILE.gguf --threads N
//          --prompt-tokens P --tokens N [--ctx C] [--runs R]
// Prints one line: NLC prompt_tok_s=... decode_tok_s=... ttft_ms=... (medians over runs)
// The prompt is P copies of one token id taken from tokenizing a fixed text (the engine and
// llama-server get a text prompt whose token count is measured by their own tokenizer and
// reported in timings; the figure of merit is tok/s, not the exact content).
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
    return acc;
}, []));
const mod = await import(pathToFileURL(path.join(args.module, 'dist', 'index.js')).href);
const { getLlama, LlamaLogLevel } = mod;
const threads = Number(args.threads);
const promptTokens = Number(args['prompt-tokens'] ?? 128);
const nTokens = Number(args.tokens ?? 128);
const ctx = Number(args.ctx ?? 2048);
const runs = Number(args.runs ?? 3);
const deadline = Date.now() + Number(args['timeout-s'] ?? 300) * 1000;

const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error,
                               maxThreads: threads, usePrebuiltBinaries: true, progressLogs: false });
const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0 });
const context = await model.createContext({ contextSize: ctx, sequences: 1, threads,
                                            batchSize: Math.min(ctx, 2048), flashAttention: false });
const seq = context.getSequence();
const base = model.tokenize(args.text ?? 'The quick brown fox jumps over the lazy dog. ');
const prompt = [];
while (prompt.length < promptTokens) prompt.push(...base);
prompt.length = promptTokens;

const med = (a) => { const s = [...a].sort((x, y) => x - y); const n = s.length;
                     return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const pp = [], dec = [], ttft = [];
for (let r = 0; r < runs + 1 && Date.now() < deadline; r++) { // run 0 is a warm-up
    await seq.clearHistory();
    // prompt processing alone
    let t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    const ppMs = performance.now() - t0;
    await seq.clearHistory();
    // prompt + generation, greedy, EOS not special for a raw sequence (it yields every token)
    t0 = performance.now();
    let first = 0, n = 0;
    for await (const tok of seq.evaluate(prompt, { temperature: 0 })) {
        void tok;
        n++;
        if (n === 1) first = performance.now();
        if (n >= nTokens) break;
    }
    const end = performance.now();
    if (r === 0) continue;
    pp.push(promptTokens / (ppMs / 1000));
    ttft.push(first - t0);
    dec.push((n - 1) / ((end - first) / 1000));
}
console.log(`NLC prompt_tokens=${promptTokens} tokens=${nTokens} runs=${pp.length} ` +
    `prompt_tok_s=${med(pp).toFixed(2)} decode_tok_s=${med(dec).toFixed(2)} ttft_ms=${med(ttft).toFixed(1)} ` +
    `decode_runs="${dec.map((x) => x.toFixed(2)).join(',')}"`);
await context.dispose();
await model.dispose();
await llama.dispose();
