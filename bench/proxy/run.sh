#!/usr/bin/env bash
# Proxy benchmark: fake-llama-server direct vs through nginx vs through infergate.
#
#   make bench                       (builds release binaries into build/, then runs this)
#   BENCH_SECONDS=2 BENCH_ROUNDS=1 bench/proxy/run.sh      (quick look)
#
# Phases, every one bounded, all traffic on 127.0.0.1:
#   1. non-streaming throughput: wrk -t2 -c64 POST /v1/chat/completions (max_tokens 8)
#   2. non-streaming latency:    wrk -t1 -c1  (one connection: the proxy's added latency)
#   3. streaming:                256 concurrent SSE streams of 200 tokens (streams.mjs)
#   4. infergate idle RSS and start-up time (spawn -> GET /healthz 200, median of 5)
#
# Phases 1-3 run BENCH_ROUNDS rounds, each round measuring direct, nginx and infergate in
# turn, and report the median of the rounds: interleaving keeps a burst of load from
# elsewhere on the machine from landing on one target only. Each target is warmed up
# before its first measurement. The three paths of a phase hit the same fake process: one
# fake answers at once (phases 1-2), a second one paces its tokens (phase 3). nginx is the
# reverse-proxy peer: one worker (infergate has one event loop), upstream keep-alive,
# proxy_buffering off (as SSE needs). The proxies' CPU time per request is read from
# /proc/PID/stat around each measurement, as a figure that other load on the machine
# disturbs less than requests per second do.
#
# Knobs (environment): IG_BIN_DIR (default build), BENCH_ROUNDS (3), BENCH_SECONDS (5, per
# measurement), BENCH_LAT_SECONDS (3), BENCH_WARMUP_SECONDS (1), BENCH_THREADS (2),
# BENCH_CONNECTIONS (64), BENCH_STREAMS (256), BENCH_STREAM_TOKENS (200), BENCH_TOKEN_US
# (10000), BENCH_RAMP_MS (256), BENCH_STARTS (5).
#
# Output: human tables plus greppable lines:
#   BENCH <phase> <target> round=N key=value ...   one per measurement
#   MEDIAN <phase> <target> key=value ...          median over the rounds
#   RESULT key=value                               derived figures
#   TARGET <name> value=... goal=... MET|NOT_MET
# Exit status: 0 when every phase ran without request errors, 1 otherwise. Missed targets
# do not fail the run; they are reported.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/bench/proxy"
BIN_DIR=${IG_BIN_DIR:-$ROOT/build}
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac
ROUNDS=${BENCH_ROUNDS:-3}
RUN_S=${BENCH_SECONDS:-5}
LAT_S=${BENCH_LAT_SECONDS:-3}
WARM_S=${BENCH_WARMUP_SECONDS:-1}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
STREAMS=${BENCH_STREAMS:-256}
TOKENS=${BENCH_STREAM_TOKENS:-200}
TOKEN_US=${BENCH_TOKEN_US:-10000}
RAMP_MS=${BENCH_RAMP_MS:-256}
STARTS=${BENCH_STARTS:-5}

FAKE="$BIN_DIR/fake-llama-server"
IG="$BIN_DIR/infergate"
LUA="$HERE/post.lua"
PATH_CC=/v1/chat/completions
TARGETS=(direct nginx infergate)

BENCH_NAME=bench
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"  # die, cleanup, start_bg, ..., check_path, medians, m, met

for tool in wrk node curl awk; do
    command -v "$tool" >/dev/null || die "'$tool' is not installed (apt-get install $tool)"
done
NGINX=$(command -v nginx || true)
[[ -z "$NGINX" && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx
[[ -n "$NGINX" ]] || die "nginx is not installed (apt-get install nginx-light)"
[[ -x "$FAKE" ]] || die "$FAKE not found; build first (make release)"
[[ -x "$IG" ]] || die "$IG not found; build first (make release)"
(( ROUNDS >= 1 )) || die "BENCH_ROUNDS must be at least 1"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/infergate-bench.XXXXXX")


rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# ---- processes -------------------------------------------------------------------------
pick_port; FAST_PORT=$PORT
pick_port; SLOW_PORT=$PORT
pick_port; NGX_PORT=$PORT
pick_port; NGX_SLOW_PORT=$PORT
pick_port; IG_PORT=$PORT
pick_port; IG_AUTH_PORT=$PORT
BENCH_KEY="sk-bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

# EVENT_PRECISE_TIMER: libevent otherwise times its timers with CLOCK_MONOTONIC_COARSE,
# whose one-jiffy steps (4 ms here) would stretch the fake's token pacing.
start_bg fake env EVENT_PRECISE_TIMER=1 "$FAKE" --port "$FAST_PORT" --model bench --token-us 0
FAST_PID=$STARTED_PID
start_bg fake-stream env EVENT_PRECISE_TIMER=1 "$FAKE" --port "$SLOW_PORT" --model bench \
    --token-us "$TOKEN_US"
SLOW_PID=$STARTED_PID

mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    upstream fake { server 127.0.0.1:$FAST_PORT; keepalive 64; keepalive_requests 1000000; }
    upstream fake_stream { server 127.0.0.1:$SLOW_PORT; keepalive 64; keepalive_requests 1000000; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    server { listen 127.0.0.1:$NGX_PORT; location / { proxy_pass http://fake; } }
    server { listen 127.0.0.1:$NGX_SLOW_PORT; location / { proxy_pass http://fake_stream; } }
}
EOF
start_bg nginx "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf"
NGX_PID=$STARTED_PID

cat >"$TMP/infergate.yaml" <<EOF
logLevel: warn
models:
  bench:
    proxy: http://127.0.0.1:$FAST_PORT
    checkEndpoint: /health
  bench-stream:
    proxy: http://127.0.0.1:$SLOW_PORT
    checkEndpoint: /health
EOF
start_bg infergate env INFERGATE_STATE_DIR="$TMP/state" "$IG" serve -c "$TMP/infergate.yaml" \
    --listen "127.0.0.1:$IG_PORT"
IG_PID=$STARTED_PID
# The same gateway with tenants on: every request authenticated (HMAC + lookup), admitted
# against limits (set high enough never to refuse) and metered into the usage table.
{ cat "$TMP/infergate.yaml"; cat <<EOF
auth:
  keys:
    - {name: bench, key: $BENCH_KEY, rpm: 100000000, tpm: 2000000000, concurrency: 1000000}
EOF
} >"$TMP/infergate-auth.yaml"
start_bg infergate-auth env INFERGATE_STATE_DIR="$TMP/state-auth" "$IG" serve \
    -c "$TMP/infergate-auth.yaml" --listen "127.0.0.1:$IG_AUTH_PORT"
IG_AUTH_PID=$STARTED_PID

wait_http fake "http://127.0.0.1:$FAST_PORT/health" "$FAST_PID" 10
wait_http fake-stream "http://127.0.0.1:$SLOW_PORT/health" "$SLOW_PID" 10
wait_http nginx "http://127.0.0.1:$NGX_PORT/health" "$NGX_PID" 10
wait_http infergate "http://127.0.0.1:$IG_PORT/healthz" "$IG_PID" 10
wait_http infergate-auth "http://127.0.0.1:$IG_AUTH_PORT/healthz" "$IG_AUTH_PID" 10
IDLE_RSS=$(rss_kib "$IG_PID")

# `env` execs the fakes, so the PIDs are theirs; nginx's work happens in its worker.
mapfile -t NGX_WORKERS < <(pgrep -P "$NGX_PID" || true)
(( ${#NGX_WORKERS[@]} > 0 )) || die "nginx has no worker process"

declare -A BASE CPU_PIDS
BASE[direct]="http://127.0.0.1:$FAST_PORT"
BASE[nginx]="http://127.0.0.1:$NGX_PORT"
BASE[infergate]="http://127.0.0.1:$IG_PORT"
CPU_PIDS[direct]="$FAST_PID"
CPU_PIDS[nginx]="${NGX_WORKERS[*]}"
CPU_PIDS[infergate]="$IG_PID"
for t in "${TARGETS[@]}"; do check_path "$t" "${BASE[$t]}" bench; done

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "== infergate proxy benchmark =="
echo "MACHINE nproc=$(nproc) cpu=\"$CPU\" kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%M:%SZ) loadavg=$(loadavg)"
echo "VERSIONS wrk=\"$(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')\" nginx=\"$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')\" node=$(node --version) infergate=\"$(timeout 5 "$IG" version </dev/null 2>/dev/null | head -n 1 | awk '{ print $NF }')\""
echo "SETTINGS rounds=$ROUNDS seconds=$RUN_S latency_seconds=$LAT_S warmup_seconds=$WARM_S threads=$THREADS connections=$CONNS streams=$STREAMS stream_tokens=$TOKENS token_us=$TOKEN_US ramp_ms=$RAMP_MS starts=$STARTS"
echo "note: wrk, the proxy under test and the fake share this machine's $(nproc) CPU(s);" \
     "cpu_us_per_req counts the proxy process only (the fake's own for direct)"
echo

ERRORS=0
declare -A VALS # "phase/target/key" -> space-separated values, one per round

# run_wrk PHASE TARGET ROUND THREADS CONNS SECONDS: measures (wrk_measure in lib.sh) and
# prints a BENCH line; the figures go to VALS.
run_wrk() {
    wrk_measure "$@"
    echo "BENCH $1 $2 round=$3 rps=$W_RPS p50_ms=$W_P50 p90_ms=$W_P90 p99_ms=$W_P99" \
         "max_ms=$W_MAX requests=$W_REQS errors=$W_ERRS cpu_us_per_req=$W_CPU loadavg=$(loadavg)"
}

declare -A MED # "phase/target/key" -> median (medians() in lib.sh)

# ---- 1. non-streaming throughput -------------------------------------------------------
P1=nonstream_c$CONNS
echo "-- non-streaming throughput: wrk -t$THREADS -c$CONNS -d${RUN_S}s x $ROUNDS rounds," \
     "POST $PATH_CC max_tokens=8"
PAIRED=""
declare -A LAST
for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        run_wrk "$P1" "$t" "$round" "$THREADS" "$CONNS" "$RUN_S"
        LAST[$t]=$W_RPS
    done
    PAIRED+="$(calc "${LAST[infergate]} / ${LAST[nginx]}") "
done
medians "$P1" rps p50 p99 cpu
echo "PAIRED $P1 rps_ratio_infergate_vs_nginx_per_round=\"${PAIRED% }\" median=$(median <<<"$PAIRED")"
echo

# ---- 1b. tenants: auth + limits + usage on vs off --------------------------------------
P1B=tenants_c$CONNS
BASE[infergate_auth]="http://127.0.0.1:$IG_AUTH_PORT"
CPU_PIDS[infergate_auth]="$IG_AUTH_PID"
echo "-- tenants: the same load on infergate with auth, limits and usage metering on (a key, all" \
     "limits set) vs off, alternating, x $ROUNDS rounds"
TPAIRED=""
for round in $(seq "$ROUNDS"); do
    run_wrk "$P1B" infergate "$round" "$THREADS" "$CONNS" "$RUN_S"
    off=$W_RPS
    BENCH_KEY=$BENCH_KEY run_wrk "$P1B" infergate_auth "$round" "$THREADS" "$CONNS" "$RUN_S"
    TPAIRED+="$(calc "$W_RPS / $off") "
done
echo "PAIRED $P1B rps_ratio_auth_on_vs_off_per_round=\"${TPAIRED% }\" median=$(median <<<"$TPAIRED")"
echo

# ---- 2. non-streaming latency, one connection ------------------------------------------
P2=nonstream_c1
echo "-- non-streaming latency: wrk -t1 -c1 -d${LAT_S}s x $ROUNDS rounds (one connection, one request at a time)"
for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do run_wrk "$P2" "$t" "$round" 1 1 "$LAT_S"; done
done
medians "$P2" rps p50 p99 cpu
echo

# ---- 3. streaming ----------------------------------------------------------------------
P3=stream
STREAM_TIMEOUT=$(( 30 + 3 * TOKENS * TOKEN_US / 1000000 ))
echo "-- streaming: $STREAMS concurrent SSE streams x $TOKENS tokens, one token every ${TOKEN_US}us" \
     "(ideal stream time $(calc "$TOKENS * $TOKEN_US / 1000" 0) ms), starts spread over ${RAMP_MS} ms, x $ROUNDS rounds"
declare -A SBASE SMODEL SCPU
SBASE[direct]="http://127.0.0.1:$SLOW_PORT"; SMODEL[direct]=bench; SCPU[direct]=$SLOW_PID
SBASE[nginx]="http://127.0.0.1:$NGX_SLOW_PORT"; SMODEL[nginx]=bench; SCPU[nginx]="${NGX_WORKERS[*]}"
SBASE[infergate]="http://127.0.0.1:$IG_PORT"; SMODEL[infergate]=bench-stream; SCPU[infergate]=$IG_PID
for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        ticks0=$(cpu_ticks ${SCPU[$t]})
        line=$(node "$HERE/streams.mjs" --url "${SBASE[$t]}$PATH_CC" --model "${SMODEL[$t]}" \
            --label "$t" --streams "$STREAMS" --tokens "$TOKENS" --ramp-ms "$RAMP_MS" \
            --timeout-s "$STREAM_TIMEOUT") || ERRORS=$(( ERRORS + 1 ))
        cpu_ms=$(calc "($(cpu_ticks ${SCPU[$t]}) - $ticks0) * 1000 / $CLK_TCK" 0)
        rest=${line#STREAMS label=$t }
        echo "BENCH $P3 $t round=$round $rest proxy_cpu_ms=$cpu_ms loadavg=$(loadavg)"
        for k in ttfb_p50_ms ttfb_p99_ms total_p50_ms total_p99_ms; do
            VALS[$P3/$t/$k]+="$(kv "$k" "$line") "
        done
        VALS[$P3/$t/cpu_ms]+="$cpu_ms "
    done
done
medians "$P3" ttfb_p50_ms ttfb_p99_ms total_p50_ms total_p99_ms cpu_ms
LOADED_HWM=$(hwm_kib "$IG_PID")
echo

# ---- 4. start-up and memory ------------------------------------------------------------
ports=()
for _ in $(seq "$STARTS"); do pick_port; ports+=("$PORT"); done
line=$(node "$HERE/startup.mjs" --bin "$IG" --config "$TMP/infergate.yaml" \
    --ports "$(IFS=,; echo "${ports[*]}")" --timeout-s 10) || ERRORS=$(( ERRORS + 1 ))
STARTUP_MS=$(kv startup_p50_ms "$line")
EXEC_MS=$(kv exec_baseline_p50_ms "$line")
echo "-- infergate start-up (spawn -> /healthz 200, $STARTS starts) and memory"
echo "BENCH startup infergate startup_p50_ms=$STARTUP_MS startup_min_ms=$(kv startup_min_ms "$line")" \
     "startup_max_ms=$(kv startup_max_ms "$line") rss_at_ready_kib=$(kv rss_p50_kib "$line")" \
     "exec_baseline_p50_ms=$EXEC_MS"
echo "BENCH memory infergate idle_rss_kib=$IDLE_RSS peak_rss_after_load_kib=$LOADED_HWM"
echo

# ---- summary ---------------------------------------------------------------------------
row() { printf '%-36s %12s %12s %12s\n' "$1" "$(m "$2/direct/$3")" "$(m "$2/nginx/$3")" "$(m "$2/infergate/$3")"; }
echo "== summary (median of $ROUNDS rounds) =="
printf '%-36s %12s %12s %12s\n' "" direct nginx infergate
row "rps, -c$CONNS" "$P1" rps
row "p50 ms, -c$CONNS" "$P1" p50
row "p99 ms, -c$CONNS" "$P1" p99
row "CPU us per request, -c$CONNS" "$P1" cpu
row "rps, -c1" "$P2" rps
row "p50 ms, -c1" "$P2" p50
row "p99 ms, -c1" "$P2" p99
row "stream TTFB p50 ms ($STREAMS streams)" "$P3" ttfb_p50_ms
row "stream TTFB p99 ms" "$P3" ttfb_p99_ms
row "stream total p50 ms" "$P3" total_p50_ms
row "stream total p99 ms" "$P3" total_p99_ms
row "stream phase CPU ms (proxy/fake)" "$P3" cpu_ms
echo
d() { calc "$(m "$1") - $(m "$2")"; }
r() { calc "$(m "$1") / $(m "$2")"; }
ratio_ngx=$(median <<<"$PAIRED")
add50_c1=$(d "$P2/infergate/p50" "$P2/direct/p50")
echo "RESULT rps_ratio_infergate_vs_nginx=$ratio_ngx (c$CONNS; median of the per-round ratios ${PAIRED% }; ratio of the medians: $(r "$P1/infergate/rps" "$P1/nginx/rps"))"
echo "RESULT rps_ratio_infergate_vs_direct=$(r "$P1/infergate/rps" "$P1/direct/rps") (c$CONNS; nginx vs direct: $(r "$P1/nginx/rps" "$P1/direct/rps"))"
echo "RESULT cpu_per_req_ratio_infergate_vs_nginx=$(r "$P1/infergate/cpu" "$P1/nginx/cpu") (c$CONNS)"
echo "RESULT added_p50_ms_c1=$add50_c1 added_p99_ms_c1=$(d "$P2/infergate/p99" "$P2/direct/p99") (nginx: $(d "$P2/nginx/p50" "$P2/direct/p50") / $(d "$P2/nginx/p99" "$P2/direct/p99"))"
echo "RESULT added_p50_ms_c$CONNS=$(d "$P1/infergate/p50" "$P1/direct/p50") added_p99_ms_c$CONNS=$(d "$P1/infergate/p99" "$P1/direct/p99") (nginx: $(d "$P1/nginx/p50" "$P1/direct/p50") / $(d "$P1/nginx/p99" "$P1/direct/p99"))"
echo "RESULT added_ttfb_p50_ms=$(d "$P3/infergate/ttfb_p50_ms" "$P3/direct/ttfb_p50_ms") added_ttfb_p99_ms=$(d "$P3/infergate/ttfb_p99_ms" "$P3/direct/ttfb_p99_ms") (nginx: $(d "$P3/nginx/ttfb_p50_ms" "$P3/direct/ttfb_p50_ms") / $(d "$P3/nginx/ttfb_p99_ms" "$P3/direct/ttfb_p99_ms"))"
echo "RESULT idle_rss_kib=$IDLE_RSS startup_p50_ms=$STARTUP_MS (spawn+exit of 'infergate version': $EXEC_MS ms)"
echo "TARGET rps_vs_nginx value=$ratio_ngx goal=>=0.90 $(met "$ratio_ngx >= 0.9")"
ratio_auth=$(median <<<"$TPAIRED")
echo "RESULT rps_ratio_auth_on_vs_off=$ratio_auth (c$CONNS; cpu us/request on: $(median <<<"${VALS[$P1B/infergate_auth/cpu]}"), off: $(median <<<"${VALS[$P1B/infergate/cpu]}"))"
echo "TARGET auth_on_vs_off value=$ratio_auth goal=>=0.95 $(met "$ratio_auth >= 0.95")"
echo "TARGET added_p50_ms_c1 value=$add50_c1 goal=<=0.20 $(met "$add50_c1 <= 0.2")"
if (( ERRORS > 0 )); then
    echo "bench: $ERRORS measurement(s) had request errors; see the BENCH lines above" >&2
    exit 1
fi
