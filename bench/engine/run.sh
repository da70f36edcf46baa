#!/usr/bin/env bash
# Engine benchmark: infergate-engine vs llama-server (built from the same llama.cpp source)
# vs node-llama-cpp 3.22.1 (the same prebuilt libllama, from JS), on the same random-weight
# GGUF, with the same thread count, in the same run.
#
#   make bench                                   (quick: `small` preset, ~110 MB)
#   BENCH_ENGINE_MODEL=1b bench/engine/run.sh    (Llama-3.2-1B shape, 2.5 GB f16; minutes)
#   BENCH_ENGINE=0 make bench                    (skips this benchmark)
#
# Phases, every one bounded, all traffic on 127.0.0.1:
#   0. memory bandwidth of this machine (membw.c, same thread count): the physical limit
#   1. prompt processing: one request, ~BENCH_ENGINE_PP_WORDS words (n_predict 1), x rounds
#   2. single-stream decode: one stream of BENCH_ENGINE_TOKENS tokens (ignore_eos), x rounds
#   3. concurrency: 1/4/8/16 simultaneous SSE streams of BENCH_ENGINE_TOKENS tokens each
#   4. node-llama-cpp: prompt tok/s, decode tok/s and TTFT for the same prompt size and tokens
# Phases 1-3 interleave the two servers round by round (both stay up; an idle one uses no
# CPU) and drive them with the same load generator (load.mjs, POST /completion, SSE). Every
# prompt starts with a unique tag so no prefix cache helps. The servers run one after the
# other, never at once; the load generator shares the CPUs with them (2 cores here), which
# costs both servers alike.
#
# Knobs (environment): IG_BIN_DIR (build), BENCH_ENGINE (1; 0 skips), BENCH_ENGINE_MODEL
# (small | 1b | tiny | PATH.gguf), BENCH_ENGINE_TYPE (mkgguf --type: f32|f16|q8_0; default
# mkgguf's), BENCH_ENGINE_THREADS (nproc), BENCH_ENGINE_ROUNDS (3), BENCH_ENGINE_TOKENS (128),
# BENCH_ENGINE_PP_WORDS (150), BENCH_ENGINE_PROMPT_WORDS (32), BENCH_ENGINE_STREAMS
# ("1 4 8 16"), BENCH_ENGINE_CTX (per-slot context x 16 slots; 1024), BENCH_ENGINE_PEERS
# (1; 0 measures infergate-engine alone), BENCH_ENGINE_PROFILE (0; 1 records `perf record -g`
# of infergate-engine during the 8-stream phase and prints the top symbols), BENCH_ENGINE_ARGS
# (extra infergate-engine flags for A/B checks, e.g. "--poll 50").
#
# Output: human tables plus greppable lines, as bench/proxy/run.sh:
#   BENCH <phase> <target> round=N key=value ...   one per measurement
#   MEDIAN <phase> <target> key=value ...          median over the rounds
#   RESULT key=value                               derived figures
#   TARGET <name> value=... goal=... MET|NOT_MET
# Exit status: 0 when every phase ran without request errors, 1 otherwise. Missed targets do
# not fail the run; they are reported.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/bench/engine"
BIN_DIR=${IG_BIN_DIR:-$ROOT/build}
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac
if [[ "${BENCH_ENGINE:-1}" == 0 ]]; then echo "bench/engine: skipped (BENCH_ENGINE=0)"; exit 0; fi
MODEL_ARG=${BENCH_ENGINE_MODEL:-small}
MTYPE=${BENCH_ENGINE_TYPE:-}
THREADS=${BENCH_ENGINE_THREADS:-$(nproc)}
ROUNDS=${BENCH_ENGINE_ROUNDS:-3}
TOKENS=${BENCH_ENGINE_TOKENS:-128}
PP_WORDS=${BENCH_ENGINE_PP_WORDS:-150}
PROMPT_WORDS=${BENCH_ENGINE_PROMPT_WORDS:-32}
STREAM_LIST=${BENCH_ENGINE_STREAMS:-1 4 8 16}
SLOT_CTX=${BENCH_ENGINE_CTX:-1024}
PEERS=${BENCH_ENGINE_PEERS:-1}
PROFILE=${BENCH_ENGINE_PROFILE:-0}
read -r -a ENGINE_ARGS <<<"${BENCH_ENGINE_ARGS:-}"
NLC_VERSION=3.22.1
NLC_DIR="$ROOT/.cache/node-llama-cpp"
MODEL_DIR="$ROOT/.cache/bench-engine"

ENGINE="$BIN_DIR/infergate-engine"
MKGGUF="$BIN_DIR/mkgguf"
BENCH_NAME=bench/engine
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"  # die, cleanup on exit, start_bg, stop_pid, pick_port, wait_http
for tool in node npm curl awk cc; do
    command -v "$tool" >/dev/null || die "'$tool' is not installed"
done
[[ -x "$ENGINE" ]] || die "$ENGINE not found; build first (make release)"
(( ROUNDS >= 1 )) || die "BENCH_ENGINE_ROUNDS must be at least 1"
MAXS=1
for s in $STREAM_LIST; do (( s > MAXS )) && MAXS=$s; done
(( MAXS < 16 )) && MAXS=16
CTX=$(( SLOT_CTX * MAXS ))

TMP=$(mktemp -d "${TMPDIR:-/tmp}/infergate-bench-engine.XXXXXX")
median() { tr ' ' '\n' | grep -v '^$' | grep -v nan | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
met() { awk "BEGIN { exit !($1) }" 2>/dev/null && echo MET || echo NOT_MET; }
T_START=$(date +%s)

# ---- inputs: model, peers, probe -------------------------------------------------------
case "$MODEL_ARG" in
    *.gguf) MODEL=$MODEL_ARG; [[ -f "$MODEL" ]] || die "$MODEL not found" ;;
    tiny|small|1b)
        [[ -x "$MKGGUF" ]] || die "$MKGGUF not found; build first (make release)"
        mkdir -p "$MODEL_DIR"
        MODEL="$MODEL_DIR/$MODEL_ARG${MTYPE:+-$MTYPE}.gguf"
        if [[ ! -s "$MODEL" || "$MKGGUF" -nt "$MODEL" ]]; then
            echo "bench/engine: writing $MODEL (mkgguf --preset $MODEL_ARG${MTYPE:+ --type $MTYPE})" >&2
            "$MKGGUF" "$MODEL.tmp" --preset "$MODEL_ARG" ${MTYPE:+--type "$MTYPE"} >&2
            mv "$MODEL.tmp" "$MODEL"
        fi ;;
    *) die "BENCH_ENGINE_MODEL must be tiny, small, 1b or a .gguf path" ;;
esac
MODEL_BYTES=$(stat -c %s "$MODEL")

cc -O2 -march=native -pthread "$HERE/membw.c" -o "$TMP/membw" || die "cannot build membw.c"

LLAMA_SERVER=""
if [[ "$PEERS" != 0 ]]; then
    t0=$(date +%s)
    LLAMA_SERVER=$("$HERE/build-llama-server.sh" | tail -n 1) || die "building llama-server failed"
    (( $(date +%s) - t0 > 5 )) && echo "bench/engine: llama-server built in $(( $(date +%s) - t0 ))s (cached from now on)" >&2
    NLC_MOD="$NLC_DIR/node_modules/node-llama-cpp"
    if [[ ! -f "$NLC_MOD/package.json" ]] ||
       ! grep -q "\"version\": \"$NLC_VERSION\"" "$NLC_MOD/package.json"; then
        echo "bench/engine: installing node-llama-cpp@$NLC_VERSION into $NLC_DIR" >&2
        mkdir -p "$NLC_DIR"
        [[ -f "$NLC_DIR/package.json" ]] || echo '{"name":"infergate-bench-nlc","private":true}' >"$NLC_DIR/package.json"
        (cd "$NLC_DIR" && npm install --no-save --omit=optional --ignore-scripts --no-audit --no-fund \
            --loglevel=error "node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION" >&2) ||
            die "npm install node-llama-cpp failed"
    fi
fi

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "== infergate engine benchmark =="
echo "MACHINE nproc=$(nproc) cpu=\"$CPU\" mem_gib=$(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo) kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%M:%SZ) loadavg=$(loadavg)"
echo "MODEL path=$MODEL preset=$MODEL_ARG${MTYPE:+ type=$MTYPE} bytes=$MODEL_BYTES"
echo "VERSIONS node=$(node --version) llama_server_source=\"$(cut -c1-12 "$ROOT/third_party/llama-server/SOURCE" 2>/dev/null || echo none)\" node_llama_cpp=$NLC_VERSION"
echo "SETTINGS engine_args=\"${BENCH_ENGINE_ARGS:-}\" threads=$THREADS rounds=$ROUNDS tokens=$TOKENS pp_words=$PP_WORDS prompt_words=$PROMPT_WORDS streams=\"$STREAM_LIST\" slots=$MAXS ctx=$CTX peers=$PEERS"
echo "note: servers get -t $THREADS -np $MAXS -c $CTX; the load generator (node) shares the same $(nproc) CPU(s)"
echo

# ---- 0. memory bandwidth ---------------------------------------------------------------
MB_LINE=$("$TMP/membw" --threads "$THREADS" --mib 1024 --seconds 1)
MEMBW=$(kv read_gb_s "$MB_LINE")
echo "BENCH membw machine $MB_LINE"
echo

# ---- servers ---------------------------------------------------------------------------
TARGETS=(engine)
[[ -n "$LLAMA_SERVER" ]] && TARGETS+=(llama-server)
declare -A BASE SPID
pick_port; start_bg engine "$ENGINE" -m "$MODEL" --port "$PORT" -c "$CTX" -np "$MAXS" -t "$THREADS" \
    ${ENGINE_ARGS[@]+"${ENGINE_ARGS[@]}"}
BASE[engine]="http://127.0.0.1:$PORT"; SPID[engine]=$STARTED_PID
if [[ -n "$LLAMA_SERVER" ]]; then
    pick_port; start_bg llama-server "$LLAMA_SERVER" -m "$MODEL" --port "$PORT" -c "$CTX" -np "$MAXS" \
        -t "$THREADS" -tb "$THREADS" --no-webui
    BASE[llama-server]="http://127.0.0.1:$PORT"; SPID[llama-server]=$STARTED_PID
fi
LOAD_DEADLINE=$(( 60 + MODEL_BYTES / 20000000 ))
for t in "${TARGETS[@]}"; do wait_http "$t" "${BASE[$t]}/health" "${SPID[$t]}" "$LOAD_DEADLINE"; done
REQ_TIMEOUT=$(( 60 + MODEL_BYTES / 1000000 * TOKENS * MAXS / 20000 ))

ERRORS=0
declare -A VALS MED
# load TARGET PHASE ROUND STREAMS TOKENS WORDS: runs load.mjs; prints BENCH; sets LINE.
load() {
    local t=$1 phase=$2 round=$3 s=$4 n=$5 w=$6
    LINE=$(node "$HERE/load.mjs" --url "${BASE[$t]}" --streams "$s" --tokens "$n" --prompt-words "$w" \
        --label "$t" --tag "$phase-$round-$RANDOM" --timeout-s "$REQ_TIMEOUT" 2>"$TMP/load.err") ||
        { ERRORS=$(( ERRORS + 1 )); cat "$TMP/load.err" >&2; }
    [[ -n "$LINE" ]] || LINE="LOAD label=$t"
    echo "BENCH $phase $t round=$round ${LINE#LOAD label=$t } loadavg=$(loadavg)"
}
keep() { local k; for k in "${@:3}"; do VALS[$1/$2/$k]+="$(kv "$k" "$LINE") "; done; }

echo "-- warm-up: one request of 16 tokens per server"
for t in "${TARGETS[@]}"; do load "$t" warmup 1 1 16 "$PROMPT_WORDS" >/dev/null; done
echo

echo "-- 1. prompt processing: 1 request, $PP_WORDS-word prompt, n_predict 1, x $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        load "$t" pp "$round" 1 1 "$PP_WORDS"; keep pp "$t" server_prompt_tok_s ttft_p50_ms prompt_n
    done
done
medians pp server_prompt_tok_s ttft_p50_ms prompt_n
echo

echo "-- 2. single-stream decode: 1 stream x $TOKENS tokens, $PROMPT_WORDS-word prompt, x $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        load "$t" decode1 "$round" 1 "$TOKENS" "$PROMPT_WORDS"
        keep decode1 "$t" per_stream_tok_s_p50 server_decode_tok_s ttft_p50_ms itl_p50_ms itl_p99_ms
    done
done
medians decode1 per_stream_tok_s_p50 server_decode_tok_s ttft_p50_ms itl_p50_ms itl_p99_ms
echo

echo "-- 3. concurrency: N simultaneous streams x $TOKENS tokens, N in ($STREAM_LIST), x $ROUNDS rounds"
PERF_DONE=0
for round in $(seq "$ROUNDS"); do
    for s in $STREAM_LIST; do
        for t in "${TARGETS[@]}"; do
            perf_pid=""
            if [[ "$PROFILE" == 1 && "$t" == engine && "$s" == 8 && $PERF_DONE == 0 ]] && command -v perf >/dev/null; then
                perf record -g -o "$TMP/perf.data" -p "${SPID[engine]}" >"$TMP/perf.log" 2>&1 &
                perf_pid=$!; sleep 0.3
            fi
            load "$t" "c$s" "$round" "$s" "$TOKENS" "$PROMPT_WORDS"
            keep "c$s" "$t" agg_tok_s decode_agg_tok_s per_stream_tok_s_p50 ttft_p50_ms itl_p50_ms itl_p99_ms
            if [[ -n "$perf_pid" ]]; then
                kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; PERF_DONE=1
            fi
        done
    done
done
for s in $STREAM_LIST; do medians "c$s" agg_tok_s decode_agg_tok_s per_stream_tok_s_p50 ttft_p50_ms itl_p50_ms itl_p99_ms; done
echo

if [[ $PERF_DONE == 1 ]]; then
    echo "-- profile: infergate-engine during one 8-stream run (perf report --no-children, top 25)"
    perf report -i "$TMP/perf.data" --no-children --sort dso,symbol --stdio >"$TMP/perf.txt" 2>/dev/null || true
    grep -E '^ +[0-9.]+%' "$TMP/perf.txt" | awk 'NR <= 25 { sub(/ +- +- *$/, ""); print "PROFILE " $0 }' || true
    echo
fi

NLC_LINE=""
if [[ "$PEERS" != 0 ]]; then
    # Same prompt size as the servers saw (their tokenizer's count) and the same tokens.
    PP_N=$(printf '%.0f' "${MED[pp/engine/prompt_n]:-300}")
    echo "-- 4. node-llama-cpp $NLC_VERSION in-process: ${PP_N}-token prompt, $TOKENS tokens, $ROUNDS runs"
    NLC_LINE=$(timeout "$(( REQ_TIMEOUT * ROUNDS + 120 ))" node "$HERE/nlc.mjs" --module "$NLC_DIR/node_modules/node-llama-cpp" \
        --model "$MODEL" --threads "$THREADS" --prompt-tokens "$PP_N" --tokens "$TOKENS" \
        --ctx "$(( PP_N + TOKENS + 64 ))" --runs "$ROUNDS" 2>"$TMP/nlc.err" | grep '^NLC' | tail -n 1) ||
        { ERRORS=$(( ERRORS + 1 )); tail -n 20 "$TMP/nlc.err" >&2; }
    echo "BENCH nlc node-llama-cpp ${NLC_LINE#NLC } loadavg=$(loadavg)"
    echo
fi

# ---- summary ---------------------------------------------------------------------------
NLC_DEC=$(kv decode_tok_s "$NLC_LINE"); NLC_DEC=${NLC_DEC:-nan}
NLC_PP=$(kv prompt_tok_s "$NLC_LINE"); NLC_PP=${NLC_PP:-nan}
NLC_TTFT=$(kv ttft_ms "$NLC_LINE"); NLC_TTFT=${NLC_TTFT:-nan}
echo "== summary (median of $ROUNDS rounds; $MODEL_ARG, $(calc "$MODEL_BYTES / 1e6" 1) MB, -t $THREADS) =="
printf '%-40s %14s %14s %14s\n' "" infergate-engine llama-server node-llama-cpp
row() { printf '%-40s %14s %14s %14s\n' "$1" "$(m "$2/engine/$3")" "$(m "$2/llama-server/$3")" "${4:-}"; }
row "prompt tok/s (server timings)" pp server_prompt_tok_s "$NLC_PP"
row "TTFT ms, ${PP_WORDS}-word prompt" pp ttft_p50_ms "$NLC_TTFT"
row "single-stream decode tok/s (client)" decode1 per_stream_tok_s_p50 "$NLC_DEC"
row "single-stream decode tok/s (server)" decode1 server_decode_tok_s
row "TTFT ms, ${PROMPT_WORDS}-word prompt" decode1 ttft_p50_ms
for s in $STREAM_LIST; do
    row "c$s aggregate tok/s (incl. prompt)" "c$s" agg_tok_s
    row "c$s aggregate decode tok/s" "c$s" decode_agg_tok_s
    row "c$s ITL p50 / p99 ms" "c$s" itl_p50_ms
    row "" "c$s" itl_p99_ms
    row "c$s TTFT p50 ms" "c$s" ttft_p50_ms
done
echo
E1=$(m decode1/engine/per_stream_tok_s_p50)
L1=$(m decode1/llama-server/per_stream_tok_s_p50)
E8=$(m c8/engine/agg_tok_s); L8=$(m c8/llama-server/agg_tok_s)
r() { [[ "$1" == nan || "$2" == nan || -z "$1" || -z "$2" ]] && { echo nan; return; }; calc "$1 / $2"; }
BW_FRAC=$(r "$(calc "$E1 * $MODEL_BYTES / 1e9")" "$MEMBW")
echo "RESULT membw_read_gb_s=$MEMBW model_bytes=$MODEL_BYTES"
echo "RESULT engine_decode_gb_s=$(calc "$E1 * $MODEL_BYTES / 1e9" 2) engine_fraction_of_membw=$BW_FRAC (single-stream decode tok/s x model bytes / measured read bandwidth)"
[[ "$L1" != nan ]] && echo "RESULT llama_server_decode_gb_s=$(calc "$L1 * $MODEL_BYTES / 1e9" 2) llama_server_fraction_of_membw=$(r "$(calc "$L1 * $MODEL_BYTES / 1e9")" "$MEMBW")"
[[ "$NLC_DEC" != nan ]] && echo "RESULT nlc_decode_gb_s=$(calc "$NLC_DEC * $MODEL_BYTES / 1e9" 2) nlc_fraction_of_membw=$(r "$(calc "$NLC_DEC * $MODEL_BYTES / 1e9")" "$MEMBW")"
echo "RESULT prompt_ratio_engine_vs_llama_server=$(r "$(m pp/engine/server_prompt_tok_s)" "$(m pp/llama-server/server_prompt_tok_s)")"
echo "RESULT elapsed_s=$(( $(date +%s) - T_START ))"
V=$(r "$E1" "$L1"); echo "TARGET decode1_vs_llama_server value=$V goal=>=1.00 $(met "$V >= 1.0")"
V=$(r "$E1" "$NLC_DEC"); echo "TARGET decode1_vs_node_llama_cpp value=$V goal=>=1.00 $(met "$V >= 1.0")"
V=$(r "$E8" "$L8"); echo "TARGET agg8_vs_llama_server value=$V goal=>=1.00 $(met "$V >= 1.0")"
V=$(r "$E8" "$E1"); echo "TARGET agg8_vs_engine_single_stream value=$V goal=>=3.00 $(met "$V >= 3.0")"
if (( ERRORS > 0 )); then
    echo "bench/engine: $ERRORS measurement(s) had request errors; see the BENCH lines above" >&2
    exit 1
fi
