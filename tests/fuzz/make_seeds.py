#!/usr/bin/env python3
"""Writes the hand-made seed inputs of tests/fuzz/corpus/<name>/seed-*.

Run from anywhere: python3 tests/fuzz/make_seeds.py. It rewrites the seed-* files only;
regress-* files (minimised crashes, see docs/FUZZING.md) are never touched. Seeds are small
valid inputs that show the fuzzers the shape of what each parser reads; libFuzzer mutates
them from there.
"""
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(harness, name, data):
    if isinstance(data, str):
        data = data.encode()
    path = os.path.join(ROOT, harness, "seed-" + name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- config (YAML text)

CONFIGS = {
    # docs/CONFIGURATION.md, "A complete example".
    "docs-example.yaml": """\
listen: 127.0.0.1:8080
healthCheckTimeout: 60
logLevel: info
startPort: 5800
globalTTL: 600
includeAliasesInList: false
limits:
  max_body_bytes: 16MiB
  max_header_bytes: 64KiB
  request_timeout_s: 600
  idle_timeout_s: 60
  queue_length: 64
  queue_timeout_s: 60
  shutdown_grace_s: 10
  watchdog_s: 120
  swap_wait_s: 2.5
macros:
  server: build/fake-llama-server --port ${PORT}
  ctx: 4096
  common: "--ctx-size ${ctx}"
models:
  chat:
    name: Chat model
    description: started on the first request, unloaded after 5 idle minutes
    cmd: |
      # comment lines are removed; lines are joined with spaces
      ${server}
      --model ${MODEL_ID}
      ${common}
    aliases: [gpt-4o-mini]
    ttl: 300
    env:
      - "OMP_NUM_THREADS=4"
    filters:
      stripParams: "top_k, min_p"
      setParams:
        temperature: 0.7
    metadata:
      port: ${PORT}
      family: demo
  embed:
    macros:
      ctx: 512
    cmd: ${server} --model ${MODEL_ID} --embedding-dim 64 ${common}
    aliases: [text-embedding-3-small]
    concurrencyLimit: 8
  hosted:
    proxy: http://127.0.0.1:9999
    checkEndpoint: none
    unlisted: true
groups:
  always-on:
    swap: false
    exclusive: false
    persistent: true
    members: [embed]
""",
    # examples/demo.yaml: multi-line cmd, engine flags.
    "demo.yaml": """\
listen: 127.0.0.1:8080
healthCheckTimeout: 60
logLevel: info
models:
  demo-chat:
    name: Demo chat model
    cmd: |
      build/infergate-engine --port ${PORT}
      # llama-server flags work the same way:
      -m build/demo/demo-chat.gguf --alias demo-chat --ctx-size 4096 --parallel 4
    aliases: [gpt-4o-mini, demo]
    ttl: 300
  demo-embed:
    cmd: build/infergate-engine --port ${PORT} -m build/demo/demo-embed.gguf --embeddings
    aliases: [text-embedding-3-small]
  demo-fake:
    cmd: build/fake-llama-server --port ${PORT} --model demo-fake
    cmdStop: kill -TERM ${PID}
    unloadTimeout: 3
    unlisted: true
""",
    # tests/unit/test_cfg_compat.c: llama-swap's keys, profiles, selectors, peers, routing.
    "llama-swap.yaml": """\
healthCheckTimeout: 300
logLevel: info
logTimeFormat: ""
logToStdout: "proxy"
metricsMaxInMemory: 500
captureBuffer: 10
performance:
  disabled: false
  every: 1m30s
startPort: 12000
sendLoadingState: true
globalTTL: 0
unloadTimeout: 10
macros:
  "server-bin": >
    /opt/llama.cpp/llama-server --port ${PORT}
  "ctx": 8192
  "common": "--ctx-size ${ctx}"
  "home": "${env.HOME}/weights"
apiKeys:
  - "sk-first-key-0123456789"
upstream:
  ignorePaths:
    - '.*\\.(js|css|png)$'
profiles:
  "writing":
    description: "Writing-focused routing"
    pins:
      "llm-write": "big-model"
      "llm-draft": "fast"
      "images": ~
selectors:
  "fast":
    strategy: warm
    targets: ["small-model", "big-model"]
  "spill":
    strategy: spillover
    targets: ["small-model", "external"]
    settings:
      spillover: 2
models:
  "big-model":
    macros:
      "ctx": 32768
      "temp": 0.6
    cmd: |
      ${server-bin}
      --model ${home}/big.gguf
      ${common}
      --temp ${temp}
    name: "Big model"
    checkEndpoint: /health
    ttl: 120
    useModelName: "org/big-model"
    filters:
      stripParams: "temperature, top_p"
      setParams:
        temperature: 0.6
      setParamsByID:
        "${MODEL_ID}:deep":
          chat_template_kwargs: {reasoning_effort: high}
    aliases: ["gpt-4o"]
    metadata:
      port: ${PORT}
      note: "${MODEL_ID} on ${PORT}"
    concurrencyLimit: 4
    timeouts: {connect: 30, responseHeader: 120}
    capabilities: {in: [text, image], out: [text], tools: true, context: 32768}
  "small-model":
    unlisted: true
    cmd: ${server-bin} --model ${home}/small.gguf
  "external":
    proxy: http://192.168.1.50:8080
    checkEndpoint: none
hooks:
  on_startup:
    preload: ["small-model"]
routing:
  router:
    use: group
    settings:
      groups:
        "solo": {swap: true, exclusive: true, members: ["big-model"]}
        "always": {persistent: true, swap: false, exclusive: false, members: ["external"]}
  scheduler:
    use: fifo
    settings:
      fifo:
        priority: {big-model: 10, gpt-4o: 5}
peers:
  remote:
    proxy: http://192.168.1.23
    models: [llama-3-8b, embeddings/e5]
""",
    # Matrix sets, evict costs, anchors and merge keys.
    "matrix-anchors.yaml": """\
x-base: &base
  checkEndpoint: none
  ttl: 60
models:
  gemma:
    <<: *base
    cmd: 's --port ${PORT}'
  qwen:
    <<: *base
    cmd: "s --port ${PORT} --flag 'quoted arg' \\\\"
    ttl: 0
  tts:
    cmd: s --port ${PORT}
matrix:
  vars: {g: gemma, q: qwen, t: tts}
  evict_costs: {t: 50}
  sets:
    llms: "g | q"
    voice: "(+llms) & t"
    all: "g & q & t"
""",
    # infergate's own control-plane and tenant sections.
    "models-dir-budget-auth.yaml": """\
listen: "[::1]:9090"
models_dir: [/srv/models, /opt/models]
engine:
  ctx_size: 8192
  parallel: 4
  threads: 0
  n_gpu_layers: 99
  args: "--jinja"
budget:
  ram: 24GiB
  vram: 8000MB
auth:
  enabled: true
  admin_token: admin-token-0123456789abcdef
  keys:
    - name: alice
      key: sk-alice-0123456789abcdef
      models: [chat]
      rpm: 60
      tpm: 100000
      concurrency: 2
      max_tokens: 4096
      budget_tokens: 1000000
      expires: 2030-01-31
    - name: bob
      key: sk-bob-0123456789abcdef
      expires: "2030-01-31T12:00:00Z"
storage:
  path: /var/lib/infergate/infergate.db
models:
  chat:
    cmd: llama-server --port ${PORT} -m /srv/models/chat.gguf -c 4096 -np 2 -ngl 20
    memory: 6GiB
    vram: 4GiB
""",
    "minimal.yaml": "models: {}\n",
}

for name, text in CONFIGS.items():
    write("config", name, text)

# ---------------------------------------------------------------- gguf (GGUF v2/v3 files)

T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_I64, T_F64 = range(13)
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0 = 0, 1, 2, 8
BLOCK = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q4_0: (32, 18), GGML_Q8_0: (32, 34)}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def value(t, v):
    fmt = {T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I", T_I32: "<i",
           T_F32: "<f", T_BOOL: "<B", T_U64: "<Q", T_I64: "<q", T_F64: "<d"}
    if t == T_STR:
        return gstr(v)
    if t == T_ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(value(et, i) for i in items)
    return struct.pack(fmt[t], v)


def gguf(kvs, tensors, version=3, alignment=32):
    """kvs: [(key, type, value)]; tensors: [(name, [ne...], ggml_type)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, t, v in kvs:
        out += gstr(key) + struct.pack("<I", t) + value(t, v)
    offset = 0
    for name, ne, gt in tensors:
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", gt, offset)
        elems, size = BLOCK[gt]
        n_bytes = ne[0] // elems * size
        for n in ne[1:]:
            n_bytes *= n
        offset += (n_bytes + alignment - 1) // alignment * alignment
    out += b"\0" * ((-len(out)) % alignment)
    return out + b"\0" * offset


def llama_kvs(arch="llama", extra=()):
    return [
        ("general.architecture", T_STR, arch),
        ("general.name", T_STR, "Fuzz Seed"),
        ("general.file_type", T_U32, 7),
        (arch + ".context_length", T_U32, 2048),
        (arch + ".embedding_length", T_U32, 64),
        (arch + ".block_count", T_U32, 2),
        (arch + ".feed_forward_length", T_U32, 128),
        (arch + ".attention.head_count", T_U32, 4),
        (arch + ".attention.head_count_kv", T_ARR, (T_I32, [2, 4])),
        ("tokenizer.ggml.model", T_STR, "gpt2"),
        ("tokenizer.ggml.tokens", T_ARR, (T_STR, ["<s>", "</s>", "a", "b"])),
        ("tokenizer.ggml.scores", T_ARR, (T_F32, [0.0, 0.0, -1.0, -2.0])),
    ] + list(extra)


LLAMA_TENSORS = [
    ("token_embd.weight", [64, 4], GGML_Q8_0),
    ("blk.0.attn_q.weight", [64, 64], GGML_Q4_0),
    ("blk.0.attn_norm.weight", [64], GGML_F32),
    ("blk.1.ffn_up.weight", [64, 8], GGML_F16),
    ("output_norm.weight", [64], GGML_F32),
    ("output.weight", [64, 4], GGML_Q8_0),
]

write("gguf", "llama-v3", gguf(llama_kvs(extra=[
    ("tokenizer.chat_template", T_STR,
     "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
     "{% if tools %}<tools>{{ tools }}</tools>{% endif %}<think>"),
]), LLAMA_TENSORS))
write("gguf", "llama-v2-aligned64", gguf(llama_kvs(extra=[
    ("general.alignment", T_U32, 64),
    ("llama.attention.key_length", T_U32, 16),
    ("llama.attention.value_length", T_U32, 16),
    ("llama.vocab_size", T_U64, 4),
]), LLAMA_TENSORS[:3], version=2, alignment=64))
write("gguf", "bert-embedding", gguf(llama_kvs("bert", extra=[
    ("bert.pooling_type", T_I32, 1),
    ("tokenizer.ggml.add_bos_token", T_BOOL, 1),
]), [("token_embd.weight", [64, 4], GGML_F16), ("blk.0.attn_q.weight", [64, 64], GGML_F16)]))
write("gguf", "rerank", gguf(llama_kvs("qwen3", extra=[("qwen3.pooling_type", T_I32, 4)]),
                             LLAMA_TENSORS[:2]))
write("gguf", "split-part", gguf([
    ("split.no", T_U16, 1), ("split.count", T_U16, 2), ("split.tensors.count", T_I32, 2),
], [("blk.1.ffn_down.weight", [64, 8], GGML_Q8_0), ("blk.1.ffn_norm.weight", [64], GGML_F32)]))
write("gguf", "all-value-types", gguf([
    ("t.u8", T_U8, 200), ("t.i8", T_I8, -5), ("t.u16", T_U16, 60000), ("t.i16", T_I16, -300),
    ("t.u32", T_U32, 4000000000), ("t.i32", T_I32, -7), ("t.f32", T_F32, 1.5),
    ("t.bool", T_BOOL, 0), ("t.str", T_STR, "x"), ("t.u64", T_U64, 1 << 40),
    ("t.i64", T_I64, -(1 << 40)), ("t.f64", T_F64, 2.25),
    ("t.arr.u8", T_ARR, (T_U8, [1, 2, 3])), ("t.arr.arr", T_ARR, (T_ARR, [])),
    ("t.arr.u64", T_ARR, (T_U64, [9, 1 << 33])),
], []))

# ---------------------------------------------------------------- http_request
# Byte 0 picks where the input is split into two reads; the rest is what the client sends.


def http(split, text):
    return bytes([split]) + text.encode()


write("http_request", "chat-post", http(40,
    "POST /v1/chat/completions?stream=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    "Content-Type: application/json\r\nAuthorization: Bearer sk-test\r\n"
    "Accept: text/event-stream\r\nContent-Length: 17\r\n\r\n{\"model\":\"chat\"}\n"))
write("http_request", "get-http10", http(3,
    "GET /v1/models HTTP/1.0\r\nUser-Agent: curl/8.5.0\r\nConnection: keep-alive\r\n\r\n"))
write("http_request", "pipelined", http(90,
    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
write("http_request", "chunked-expect", http(0,
    "PUT /api/profiles/active HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    "Expect: 100-continue\r\nX-Session-ID: \tabc \r\n\r\n"))
write("http_request", "bad-header", http(20,
    "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n folded\r\n\r\n"))

# ---------------------------------------------------------------- request_json
# Byte 0: endpoint (bits 0-3: 0 chat, 1 completions, 2 embeddings, 3 rerank, 4 /completion,
# 5 /infill, 6 /embedding, 7 PUT /api/profiles/active, 8 /models/load, 9 /models/unload),
# bit 4: activate the "coding" profile first, bit 5: chunked body. The rest is the body.


def body(ctrl, text):
    return bytes([ctrl]) + text.encode()


write("request_json", "chat-filters", body(0,
    '{"model":"chat","messages":[{"role":"system","content":"be brief"},'
    '{"role":"user","content":"hi \\u00e9\\ud83d\\ude00"}],"temperature":1.2,"top_k":40,'
    '"min_p":0.05,"stream":true,"stream_options":{"include_usage":true},"max_tokens":null}'))
write("request_json", "alias-completions", body(1,
    '{"model":"gpt-4o-mini","prompt":["a","b"],"n":2,"logprobs":5,"echo":false,"seed":-1}'))
write("request_json", "embeddings-use-model-name", body(2,
    '{"model":"text-embedding-3-small","input":["one","two"],"encoding_format":"float"}'))
write("request_json", "embed-on-chat-model", body(6, '{"model":"chat","content":"x"}'))
write("request_json", "rerank-plain", body(3,
    '{"model":"plain","query":"q","documents":["a","b"],"top_n":1}'))
write("request_json", "infill-chunked", body(0x25,
    '{"model":"plain","input_prefix":"def f(","input_suffix":")","input_extra":[]}'))
write("request_json", "pinned-profile", body(0x10,
    '{"model":"code","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function",'
    '"function":{"name":"f","parameters":{"type":"object","properties":{}}}}]}'))
write("request_json", "pinned-disabled", body(0x14, '{"model":"images","prompt":"cat"}'))
write("request_json", "profile-activate", body(7, '{"name":"coding"}'))
write("request_json", "models-load", body(8, '{"model":"embed"}'))
write("request_json", "models-unload", body(9, '{"model":"chat-alias"}'))
write("request_json", "unknown-model", body(0, '{"model":"ghost","messages":[]}'))
write("request_json", "not-object", body(0, '[{"model":"chat"}]'))
write("request_json", "deep", body(0, '{"model":"chat","x":' + "[" * 70 + "]" * 70 + "}"))

# ---------------------------------------------------------------- sse
# Byte 0: pieces - 1 (bits 0-2), HEAD (bit 3), cancel at data callback N (bits 4-7);
# byte 1: pause after every data callback (bit 0). The rest is the upstream's response.


def sse(ctrl0, ctrl1, text):
    return bytes([ctrl0, ctrl1]) + text.encode()


def chunked(parts):
    return "".join("%x\r\n%s\r\n" % (len(p.encode()), p) for p in parts) + "0\r\n\r\n"


EVENTS = [
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
    '"delta":{"role":"assistant","content":"Hel"}}]}\n\n',
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
    '"delta":{"content":"lo"},"finish_reason":null}]}\n\n',
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[],'
    '"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n',
    "data: [DONE]\n\n",
]

write("sse", "llama-server-chunked", sse(3, 0,
    "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Type: text/event-stream\r\n"
    "Server: llama.cpp\r\nTransfer-Encoding: chunked\r\nAccess-Control-Allow-Origin: \r\n\r\n"
    + chunked(EVENTS)))
write("sse", "until-eof-paused", sse(7, 1,
    "HTTP/1.0 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    "Cache-Control: no-cache\r\n\r\n" + "".join(EVENTS)))
JSON_BODY = '{"choices":[],"usage":{}}\n'
ERROR_BODY = '{"error":{"code":500,"message":"boom","type":"x"}}\n'
write("sse", "content-length-json", sse(1, 0,
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    "Connection: keep-alive\r\n\r\n%s" % (len(JSON_BODY), JSON_BODY)))
write("sse", "error-event", sse(2, 0,
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    + chunked(['event: error\ndata: {"error":{"message":"slot unavailable","type":'
               '"server_error","code":503}}\n\n'])))
write("sse", "continue-then-500", sse(0, 0,
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Internal Server Error\r\n"
    "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
    % (len(ERROR_BODY), ERROR_BODY)))
write("sse", "head-204", sse(8, 0, "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"))
write("sse", "chunk-extensions-trailer", sse(0x24, 1,
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: gzip, chunked\r\n"
    "\r\n5;name=value\r\ndata:\r\n7\r\n [DONE]\r\n0\r\nX-Trailer: 1\r\n\r\n"))
write("sse", "cancel-early", sse(0x17, 0,
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + "".join(EVENTS)))
