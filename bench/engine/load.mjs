// Load generator for bench/engine: N concurrent streaming POST /completion requests (llama-server
// shape: n_predict, ignore_eos, stream) against one server, all started at once. The same
// script drives infergate-engine and llama-server.
//
// node load.mjs --url http://127.0.0.1:P --streams N --tokens T --prompt-words W
//               [--label L] [--timeout-s S] [--tag X]
//
// Each request's prompt starts with a unique tag so no server can reuse a cached prefix.
// Tokens are counted from the final chunk's timings.predicted_n (else the SSE chunks);
// count_mismatch says how many streams sent fewer chunks than tokens; ITL is per chunk. Prints one line:
//   LOAD label=L streams=N tokens=T ok=.. errors=.. wall_ms=.. agg_tok_s=.. decode_agg_tok_s=..
//        per_stream_tok_s_p50=.. ttft_p50_ms=.. ttft_p99_ms=.. itl_p50_ms=.. itl_p99_ms=.. itl_max_ms=..
//        prompt_n=.. server_prompt_tok_s=.. server_decode_tok_s=..
// agg_tok_s: all generated tokens / (first request sent -> last stream done).
// decode_agg_tok_s: tokens after each stream's first / (first first-token -> last done);
// it leaves out prompt processing. server_* are medians of the servers' own timings.
import http from 'node:http';

const a = {};
for (let i = 2; i < process.argv.length; i += 2) a[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const url = new URL('/completion', a.url);
const streams = Number(a.streams ?? 1);
const tokens = Number(a.tokens ?? 128);
const words = Number(a['prompt-words'] ?? 32);
const label = a.label ?? 'server';
const timeoutMs = Number(a['timeout-s'] ?? 300) * 1000;
const tag = a.tag ?? String(Date.now());
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });

const vocab = ['the', 'quick', 'brown', 'fox', 'jumps', 'over', 'lazy', 'dog', 'and', 'runs',
               'far', 'away', 'from', 'home', 'into', 'night'];
function prompt(i) {
    const w = [`request ${tag}-${i}:`];
    for (let k = 0; k < words; k++) w.push(vocab[(k * 7 + i) % vocab.length]);
    return w.join(' ');
}

function one(i) {
    return new Promise((resolve) => {
        const r = { ok: false, times: [], t0: performance.now(), end: 0, err: '', predicted_n: 0,
                    timings: null };
        const body = JSON.stringify({ prompt: prompt(i), n_predict: tokens, ignore_eos: true,
                                      stream: true, temperature: 0, cache_prompt: false });
        const req = http.request(url, { method: 'POST', agent,
            headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } },
            (res) => {
                if (res.statusCode !== 200) { r.err = `HTTP ${res.statusCode}`; res.resume(); res.on('end', () => resolve(r)); return; }
                res.setEncoding('utf8');
                let buf = '';
                res.on('data', (chunk) => {
                    const now = performance.now();
                    buf += chunk;
                    let idx;
                    while ((idx = buf.indexOf('\n\n')) >= 0) {
                        const ev = buf.slice(0, idx);
                        buf = buf.slice(idx + 2);
                        for (const line of ev.split('\n')) {
                            if (!line.startsWith('data: ')) continue;
                            const d = line.slice(6);
                            if (d === '[DONE]') continue;
                            let j;
                            try { j = JSON.parse(d); } catch { r.err = 'bad JSON'; continue; }
                            if (j.error) { r.err = JSON.stringify(j.error).slice(0, 200); continue; }
                            if (j.stop) {
                                r.timings = j.timings ?? null;
                                r.predicted_n = j.timings?.predicted_n ?? j.tokens_predicted ?? 0;
                                // a final chunk that still carries text is a token too
                                if (j.content) r.times.push(now);
                            } else {
                                r.times.push(now);
                            }
                        }
                    }
                });
                res.on('end', () => { r.end = performance.now(); r.ok = !r.err && r.times.length > 0; resolve(r); });
                res.on('error', (e) => { r.err = e.message; resolve(r); });
            });
        req.setTimeout(timeoutMs, () => { r.err = 'timeout'; req.destroy(); });
        req.on('error', (e) => { r.err = e.message; resolve(r); });
        req.end(body);
    });
}

function pct(arr, p) {
    if (!arr.length) return NaN;
    const s = Float64Array.from(arr).sort();
    return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))];
}
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'nan');

const start = performance.now();
const res = await Promise.all(Array.from({ length: streams }, (_, i) => one(i)));
const ok = res.filter((r) => r.ok);
const errors = res.length - ok.length;
for (const r of res) if (!r.ok) console.error(`load: ${label}: request failed: ${r.err || 'no tokens'}`);
const last = Math.max(...res.map((r) => r.end || performance.now()));
// Token count: the server's predicted_n where it reports one (a server may merge tokens into
// one chunk, e.g. while it holds back a partial UTF-8 sequence or a possible stop string).
const ntok = (r) => r.predicted_n || r.times.length;
const total = ok.reduce((s, r) => s + ntok(r), 0);
const firstTok = Math.min(...ok.map((r) => r.times[0]));
const ttft = ok.map((r) => r.times[0] - r.t0);
const itl = [];
for (const r of ok) for (let k = 1; k < r.times.length; k++) itl.push(r.times[k] - r.times[k - 1]);
const perStream = ok.map((r) => (ntok(r) - 1) / ((r.times.at(-1) - r.times[0]) / 1000));
const srvPP = ok.map((r) => r.timings?.prompt_per_second).filter(Number.isFinite);
const srvTG = ok.map((r) => r.timings?.predicted_per_second).filter(Number.isFinite);
const promptN = ok.map((r) => r.timings?.prompt_n).filter(Number.isFinite);
const mismatch = ok.filter((r) => r.predicted_n && r.predicted_n !== r.times.length).length;
const wall = last - start;
console.log(`LOAD label=${label} streams=${streams} tokens=${tokens} ok=${ok.length} errors=${errors} ` +
    `tokens_total=${total} count_mismatch=${mismatch} wall_ms=${f(wall, 1)} ` +
    `agg_tok_s=${f(total / (wall / 1000))} ` +
    `decode_agg_tok_s=${f((total - ok.length) / ((last - firstTok) / 1000))} ` +
    `per_stream_tok_s_p50=${f(pct(perStream, 50))} ` +
    `ttft_p50_ms=${f(pct(ttft, 50), 1)} ttft_p99_ms=${f(pct(ttft, 99), 1)} ` +
    `itl_p50_ms=${f(pct(itl, 50))} itl_p99_ms=${f(pct(itl, 99))} itl_max_ms=${f(pct(itl, 100))} ` +
    `prompt_n=${f(pct(promptN, 50), 0)} server_prompt_tok_s=${f(pct(srvPP, 50))} ` +
    `server_decode_tok_s=${f(pct(srvTG, 50))}`);
agent.destroy();
process.exit(errors ? 1 : 0);
