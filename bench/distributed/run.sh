#!/usr/bin/env bash
# Distributed-mode benchmark: the cost of the NATS bus, and scaling over workers.
#
#   make bench                       (builds release binaries into build/, then runs this)
#   BENCH_SECONDS=2 BENCH_ROUNDS=1 bench/distributed/run.sh      (quick look)
#
# Processes, all on 127.0.0.1: one nats-server; a gateway "direct" whose config proxies
# model bench to a fake-llama-server (no bus); a gateway "bus" with nats: and no models of
# its own; worker w0 serving bench from the SAME fake (proxy-only model); workers w1, w2, w3,
# each with its own fake pacing one token every BENCH_TOKEN_US, serving model trio, w1 also
# serving model solo. So the bus gateway reaches solo on one worker and trio on three.
#
# Phases, every one bounded:
#   1. bus overhead, non-streaming: wrk POST /v1/chat/completions (max_tokens 8, as the proxy
#      benchmark), gateway->HTTP->fake vs gateway->NATS->worker->HTTP->fake, same fake:
#      a. throughput, wrk -t2 -c64: requests/s ratio bus/direct
#      b. latency, wrk -t1 -c1: added p50/p99
#   2. scaling: every worker has --capacity BENCH_CAPACITY (its slots, like llama-server's
#      -np); BENCH_CAPACITY closed-loop streaming clients per worker keep every slot busy
#      (tokens.mjs), against solo (1 worker) and trio (3 workers): aggregate completion
#      tokens/s ratio 3w/1w. The ideal is capacity x workers x 1e6 / token_us tokens/s.
#   3. gateway-bound throughput (last: the gateways stay capped), wrk -t2 -c64 with each
#      gateway capped (cgroup) at BENCH_GATEWAY_CPU of one CPU while the worker, nats-server,
#      the fake and wrk share the rest: the deployment distributed mode is for, where
#      workers run on other machines and the gateway's CPU bounds its throughput. A round
#      counts only if both gateways used at least 90% of their cap. Skipped where cgroups
#      cannot be written (needs root).
#
# Each phase runs BENCH_ROUNDS rounds of its targets in turn (interleaved, so a burst of
# load from elsewhere does not land on one target only) and reports medians; every target
# is warmed up before its first measurement. CPU time per request of each path (the direct
# gateway; the bus gateway + w0 + nats-server) is read from /proc/PID/stat, and the
# gateway's own share gives the gateway-bound rps ratio: what the bus costs the gateway
# when its workers run on other machines, as they do in use (here all share the CPUs).
#
# Knobs (environment): IG_BIN_DIR (default build), BENCH_ROUNDS (3), BENCH_SECONDS (5, per
# wrk measurement), BENCH_LAT_SECONDS (3), BENCH_WARMUP_SECONDS (1), BENCH_THREADS (2),
# BENCH_CONNECTIONS (64), BENCH_CAPACITY (16), BENCH_SCALE_SECONDS (6), BENCH_SCALE_TOKENS
# (50), BENCH_TOKEN_US (10000), BENCH_GATEWAY_CPU (0.3, the cap of phase 3).
#
# Output: human tables plus greppable lines:
#   BENCH <phase> <target> round=N key=value ...   one per measurement
#   MEDIAN <phase> <target> key=value ...          median over the rounds
#   PAIRED <phase> ...                             per-round ratios and their median
#   GWBOUND <target> round=N gateway_cpu_use_of_cap=F   phase 3: the capped gateway's use
#   RESULT key=value                               derived figures
#   TARGET <name> value=... goal=... MET|NOT_MET|NOT_MEASURED
# Exit status: 0 when every phase ran without request errors, 1 otherwise. Missed targets
# do not fail the run; they are reported.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/bench/distributed"
BIN_DIR=${IG_BIN_DIR:-$ROOT/build}
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac
ROUNDS=${BENCH_ROUNDS:-3}
RUN_S=${BENCH_SECONDS:-5}
LAT_S=${BENCH_LAT_SECONDS:-3}
WARM_S=${BENCH_WARMUP_SECONDS:-1}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
CAP=${BENCH_CAPACITY:-16}
SCALE_S=${BENCH_SCALE_SECONDS:-6}
SCALE_TOKENS=${BENCH_SCALE_TOKENS:-50}
TOKEN_US=${BENCH_TOKEN_US:-10000}
GW_CPU=${BENCH_GATEWAY_CPU:-0.3}

FAKE="$BIN_DIR/fake-llama-server"
IG="$BIN_DIR/infergate"
LUA="$ROOT/bench/proxy/post.lua"
PATH_CC=/v1/chat/completions
TARGETS=(direct bus)
TARGETS_RPS=(direct bus)
NWORKERS=3

BENCH_NAME=bench-dist
# shellcheck source=../lib.sh
source "$ROOT/bench/lib.sh"  # die, cleanup, start_bg, ..., check_path, medians, m, met

for tool in wrk node curl awk jq; do
    command -v "$tool" >/dev/null || die "'$tool' is not installed (apt-get install $tool)"
done
NATS=$(command -v nats-server || true)
[[ -z "$NATS" && -x /usr/sbin/nats-server ]] && NATS=/usr/sbin/nats-server
[[ -n "$NATS" ]] || die "nats-server is not installed (apt-get install nats-server)"
[[ -x "$FAKE" ]] || die "$FAKE not found; build first (make release)"
[[ -x "$IG" ]] || die "$IG not found; build first (make release)"
(( ROUNDS >= 1 )) || die "BENCH_ROUNDS must be at least 1"
(( CAP >= 1 )) || die "BENCH_CAPACITY must be at least 1"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/infergate-bench-dist.XXXXXX")


# Polls the bus gateway's /v1/models until MODEL is served by N workers (heartbeats arrive
# once a second), or DEADLINE_S passes.
wait_workers() {
    local model=$1 n=$2 deadline_s=$3 end got
    end=$(( $(date +%s) + deadline_s ))
    while (( $(date +%s) < end )); do
        got=$(curl -s --max-time 1 "http://127.0.0.1:$GW_BUS_PORT/v1/models" |
              jq -r --arg m "$model" '[.data[] | select(.id == $m) | .workers[]?] | length' \
              2>/dev/null || echo 0)
        [[ "$got" == "$n" ]] && return 0
        sleep 0.1
    done
    echo "$BENCH_NAME: model $model not on $n worker(s) after ${deadline_s}s (saw ${got:-0})" >&2
    for f in "$TMP"/w*.log "$TMP/gw-bus.log"; do echo "== $f" >&2; tail -n 10 "$f" >&2; done
    exit 1
}

# ---- processes -------------------------------------------------------------------------
pick_port; NATS_PORT=$PORT
pick_port; FAST_PORT=$PORT
pick_port; GW_DIRECT_PORT=$PORT
pick_port; GW_BUS_PORT=$PORT
NATS_URL="nats://127.0.0.1:$NATS_PORT"

start_bg nats "$NATS" -a 127.0.0.1 -p "$NATS_PORT"
NATS_PID=$STARTED_PID
# EVENT_PRECISE_TIMER: libevent otherwise times its timers with CLOCK_MONOTONIC_COARSE,
# whose one-jiffy steps (4 ms here) would stretch the fakes' token pacing.
start_bg fake env EVENT_PRECISE_TIMER=1 "$FAKE" --port "$FAST_PORT" --model bench --token-us 0
FAST_PID=$STARTED_PID
declare -a SLOW_PORTS SLOW_PIDS
for i in $(seq "$NWORKERS"); do
    pick_port; SLOW_PORTS[i]=$PORT
    start_bg "fake$i" env EVENT_PRECISE_TIMER=1 "$FAKE" --port "$PORT" --model "fake$i" \
        --token-us "$TOKEN_US"
    SLOW_PIDS[i]=$STARTED_PID
done
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break; sleep 0.1; done
wait_http fake "http://127.0.0.1:$FAST_PORT/health" "$FAST_PID" 10
for i in $(seq "$NWORKERS"); do
    wait_http "fake$i" "http://127.0.0.1:${SLOW_PORTS[i]}/health" "${SLOW_PIDS[i]}" 10
done

cat >"$TMP/gw-direct.yaml" <<EOF
logLevel: warn
models:
  bench:
    proxy: http://127.0.0.1:$FAST_PORT
    checkEndpoint: /health
EOF
cat >"$TMP/gw-bus.yaml" <<EOF
logLevel: warn
nats:
  url: $NATS_URL
EOF
cp "$TMP/gw-direct.yaml" "$TMP/w0.yaml" # w0 serves bench from the same fake, as direct does
for i in $(seq "$NWORKERS"); do
    {
        echo "logLevel: warn"
        echo "models:"
        (( i == 1 )) && printf '  solo:\n    proxy: http://127.0.0.1:%s\n    checkEndpoint: /health\n' \
            "${SLOW_PORTS[i]}"
        printf '  trio:\n    proxy: http://127.0.0.1:%s\n    checkEndpoint: /health\n' \
            "${SLOW_PORTS[i]}"
    } >"$TMP/w$i.yaml"
done

start_bg gw-direct env INFERGATE_STATE_DIR="$TMP/state-direct" "$IG" serve \
    -c "$TMP/gw-direct.yaml" --listen "127.0.0.1:$GW_DIRECT_PORT"
GW_DIRECT_PID=$STARTED_PID
start_bg gw-bus env INFERGATE_STATE_DIR="$TMP/state-bus" "$IG" serve -c "$TMP/gw-bus.yaml" \
    --listen "127.0.0.1:$GW_BUS_PORT"
GW_BUS_PID=$STARTED_PID
# w0 takes the whole -c$CONNS load of phase 1 without refusing ("busy") any of it.
start_bg w0 env INFERGATE_STATE_DIR="$TMP/state-w0" "$IG" worker --nats "$NATS_URL" \
    -c "$TMP/w0.yaml" --name w0 --capacity $(( CONNS * 4 ))
W0_PID=$STARTED_PID
for i in $(seq "$NWORKERS"); do
    start_bg "w$i" env INFERGATE_STATE_DIR="$TMP/state-w$i" "$IG" worker --nats "$NATS_URL" \
        -c "$TMP/w$i.yaml" --name "w$i" --capacity "$CAP"
done
wait_http gw-direct "http://127.0.0.1:$GW_DIRECT_PORT/healthz" "$GW_DIRECT_PID" 10
wait_http gw-bus "http://127.0.0.1:$GW_BUS_PORT/healthz" "$GW_BUS_PID" 10
wait_workers bench 1 15
wait_workers solo 1 15
wait_workers trio "$NWORKERS" 15

declare -A BASE CPU_PIDS GW_PID
GW_PID[direct]=$GW_DIRECT_PID
GW_PID[bus]=$GW_BUS_PID
BASE[direct]="http://127.0.0.1:$GW_DIRECT_PORT"
BASE[bus]="http://127.0.0.1:$GW_BUS_PORT"
CPU_PIDS[direct]="$GW_DIRECT_PID"
CPU_PIDS[bus]="$GW_BUS_PID $W0_PID $NATS_PID"
for t in "${TARGETS[@]}"; do check_path "$t" "${BASE[$t]}" bench; done
check_path solo "${BASE[bus]}" solo
check_path trio "${BASE[bus]}" trio

CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "== infergate distributed-mode benchmark =="
echo "MACHINE nproc=$(nproc) cpu=\"$CPU\" kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%M:%SZ) loadavg=$(loadavg)"
echo "VERSIONS wrk=\"$(wrk -v 2>&1 | head -n 1 | awk '{ print $2 }')\" nats-server=\"$("$NATS" --version 2>&1 | awk '{ print $NF }')\" node=$(node --version) infergate=\"$(timeout 5 "$IG" version </dev/null 2>/dev/null | head -n 1 | awk '{ print $NF }')\""
echo "SETTINGS rounds=$ROUNDS seconds=$RUN_S latency_seconds=$LAT_S warmup_seconds=$WARM_S threads=$THREADS connections=$CONNS capacity=$CAP scale_seconds=$SCALE_S scale_tokens=$SCALE_TOKENS token_us=$TOKEN_US gateway_cpu=$GW_CPU"
echo "note: wrk/node, nats-server, the gateways, the workers and the fakes share this" \
     "machine's $(nproc) CPU(s); cpu_us_per_req counts the path's own processes (direct:" \
     "the gateway; bus: gateway + worker + nats-server, each one's clock ticks in" \
     "cpu_ticks_split=gateway/worker/nats)"
echo

ERRORS=0
declare -A VALS # "phase/target/key" -> space-separated values, one per round

# run_wrk PHASE TARGET ROUND THREADS CONNS SECONDS: measures (wrk_measure in lib.sh),
# prints a BENCH line and adds to VALS the gateway's own CPU per request (the first of
# CPU_PIDS) and nats-server's (the last, bus path only). Sets W_GW_TICKS.
run_wrk() {
    local gwcpu natscpu=0 # the direct path has no nats-server
    wrk_measure "$@"
    W_GW_TICKS=${W_SPLIT%%/*}
    gwcpu=$(calc "$W_GW_TICKS * 1000000 / $CLK_TCK / ($W_REQS > 0 ? $W_REQS : 1)" 1)
    [[ "$W_SPLIT" == */* ]] &&
        natscpu=$(calc "${W_SPLIT##*/} * 1000000 / $CLK_TCK / ($W_REQS > 0 ? $W_REQS : 1)" 1)
    echo "BENCH $1 $2 round=$3 rps=$W_RPS p50_ms=$W_P50 p99_ms=$W_P99 max_ms=$W_MAX" \
         "requests=$W_REQS errors=$W_ERRS cpu_us_per_req=$W_CPU gateway_cpu_us_per_req=$gwcpu" \
         "cpu_ticks_split=$W_SPLIT loadavg=$(loadavg)"
    VALS[$1/$2/gwcpu]+="$gwcpu "
    VALS[$1/$2/natscpu]+="$natscpu "
    VALS[$1/$2/machcpu]+="$W_MACHINE_CPU "
}

declare -A MED # "phase/target/key" -> median (medians() in lib.sh)

# ---- 1a. bus overhead, throughput ------------------------------------------------------
P1=nonstream_c$CONNS
echo "-- bus overhead, throughput: wrk -t$THREADS -c$CONNS -d${RUN_S}s x $ROUNDS rounds," \
     "POST $PATH_CC max_tokens=8, direct gateway vs gateway->NATS->worker, same fake"
PAIRED=""
declare -A LAST
for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        run_wrk "$P1" "$t" "$round" "$THREADS" "$CONNS" "$RUN_S"
        LAST[$t]=$W_RPS
    done
    PAIRED+="$(calc "${LAST[bus]} / ${LAST[direct]}") "
done
medians "$P1" rps p50 p99 cpu gwcpu natscpu machcpu
echo "PAIRED $P1 rps_ratio_bus_vs_direct_per_round=\"${PAIRED% }\" median=$(median <<<"$PAIRED")"
echo

# ---- 1b. bus overhead, latency ---------------------------------------------------------
P2=nonstream_c1
echo "-- bus overhead, latency: wrk -t1 -c1 -d${LAT_S}s x $ROUNDS rounds (one request at a time)"
PAIRED1=""
for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        run_wrk "$P2" "$t" "$round" 1 1 "$LAT_S"
        LAST[$t]=$W_RPS
    done
    PAIRED1+="$(calc "${LAST[bus]} / ${LAST[direct]}") "
done
medians "$P2" rps p50 p99 cpu
echo

# ---- 2. scaling over workers -----------------------------------------------------------
P3=scale
TARGETS=(w1 w3)
declare -A SMODEL SN
SMODEL[w1]=solo; SN[w1]=1
SMODEL[w3]=trio; SN[w3]=$NWORKERS
SCALE_WARM=2
SCALE_TIMEOUT=$(( 30 + SCALE_WARM + SCALE_S + 3 * SCALE_TOKENS * TOKEN_US / 1000000 ))
echo "-- scaling: $CAP closed-loop streaming clients per worker (= its --capacity), $SCALE_TOKENS" \
     "tokens each, one token every ${TOKEN_US}us, ${SCALE_WARM}s warm-up + ${SCALE_S}s measured," \
     "1 worker (model solo) vs $NWORKERS workers (model trio), x $ROUNDS rounds"
SPAIRED=""
for round in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        clients=$(( CAP * SN[$t] ))
        ticks0=$(cpu_ticks "$GW_BUS_PID" "$NATS_PID")
        line=$(node "$HERE/tokens.mjs" --url "${BASE[bus]}$PATH_CC" --model "${SMODEL[$t]}" \
            --label "$t" --clients "$clients" --tokens "$SCALE_TOKENS" --seconds "$SCALE_S" \
            --warmup-s "$SCALE_WARM" --timeout-s "$SCALE_TIMEOUT") || ERRORS=$(( ERRORS + 1 ))
        cpu_ms=$(calc "($(cpu_ticks "$GW_BUS_PID" "$NATS_PID") - $ticks0) * 1000 / $CLK_TCK" 0)
        ideal=$(calc "$clients * 1000000 / $TOKEN_US" 0)
        tok_s=$(kv tok_s "$line")
        rest=${line#"TOKENS label=$t "}
        echo "BENCH $P3 $t round=$round $rest ideal_tok_s=$ideal gateway_nats_cpu_ms=$cpu_ms" \
             "loadavg=$(loadavg)"
        LAST[$t]=${tok_s:-0}
        VALS[$P3/$t/tok_s]+="${tok_s:-nan} "
        VALS[$P3/$t/efficiency]+="$(calc "${tok_s:-0} / $ideal") "
        for k in ttft_p50_ms ttft_p99_ms total_p50_ms total_p99_ms; do
            VALS[$P3/$t/$k]+="$(kv "$k" "$line") "
        done
    done
    SPAIRED+="$(calc "${LAST[w3]} / (${LAST[w1]} > 0 ? ${LAST[w1]} : 1)") "
done
medians "$P3" tok_s efficiency ttft_p50_ms ttft_p99_ms total_p50_ms total_p99_ms
echo "PAIRED $P3 tok_s_ratio_3w_vs_1w_per_round=\"${SPAIRED% }\" median=$(median <<<"$SPAIRED")"
echo

# ---- 3. bus overhead, gateway-bound throughput ------------------------------------------
# Each gateway in its own cgroup capped at GW_CPU of a CPU; everything else (wrk, the fake,
# w0, nats-server) shares the rest, as workers and upstreams on other machines would. A
# round counts only if both gateways used (nearly) their whole cap: else something else
# bounded the throughput, and the ratio would not be the gateway's. Last phase: a capped
# gateway stays capped until it exits.
P4=gwbound_c$CONNS
GB_RATIO=nan
GB_NOTE=""
for t in "${TARGETS_RPS[@]}"; do
    if [[ -z "$GB_NOTE" ]] &&
        ! { cap_new "infergate-bench-$t" "$GW_CPU" && cap_enter "$CAP_PATH" "${GW_PID[$t]}"; }; then
        GB_NOTE="not measured: $CAP_WHY"
    fi
done
TARGETS=("${TARGETS_RPS[@]}")
if [[ -n "$GB_NOTE" ]]; then
    echo "-- gateway-bound throughput: $GB_NOTE"
else
    echo "-- gateway-bound throughput: each gateway capped at $GW_CPU CPU (cgroup), the rest" \
         "of the machine for wrk, the fake, w0 and nats-server; wrk -t$THREADS -c$CONNS" \
         "-d${RUN_S}s x $ROUNDS rounds"
    GPAIRED=""
    GSKIPPED=0
    cap_ticks=$(calc "$GW_CPU * $RUN_S * $CLK_TCK" 0)
    for round in $(seq "$ROUNDS"); do
        saturated=1
        for t in "${TARGETS[@]}"; do
            run_wrk "$P4" "$t" "$round" "$THREADS" "$CONNS" "$RUN_S"
            LAST[$t]=$W_RPS
            use=$(calc "$W_GW_TICKS / $cap_ticks" 2)
            echo "GWBOUND $t round=$round gateway_cpu_use_of_cap=$use"
            VALS[$P4/$t/use]+="$use "
            awk "BEGIN { exit !($use < 0.9) }" && saturated=0
        done
        if (( saturated )); then
            GPAIRED+="$(calc "${LAST[bus]} / ${LAST[direct]}") "
        else
            GSKIPPED=$(( GSKIPPED + 1 ))
            echo "GWBOUND round=$round left out: a gateway used less than 90% of its cap"
        fi
    done
    medians "$P4" rps p50 p99 gwcpu use
    if [[ -n "$GPAIRED" ]]; then
        GB_RATIO=$(median <<<"$GPAIRED")
        echo "PAIRED $P4 rps_ratio_bus_vs_direct_per_round=\"${GPAIRED% }\" median=$GB_RATIO" \
             "rounds_left_out=$GSKIPPED"
    else
        GB_NOTE="not measured: in no round were both gateways bound by their cap"
    fi
fi
echo

# ---- summary ---------------------------------------------------------------------------
row() { printf '%-34s %12s %12s\n' "$1" "$(m "$2/$4/$3")" "$(m "$2/$5/$3")"; }
echo "== summary (median of $ROUNDS rounds) =="
printf '%-34s %12s %12s\n' "" direct bus
row "rps, -c$CONNS" "$P1" rps direct bus
row "p50 ms, -c$CONNS" "$P1" p50 direct bus
row "p99 ms, -c$CONNS" "$P1" p99 direct bus
row "CPU us per request, -c$CONNS" "$P1" cpu direct bus
row "gateway CPU us per request, -c$CONNS" "$P1" gwcpu direct bus
row "rps, -c1" "$P2" rps direct bus
row "p50 ms, -c1" "$P2" p50 direct bus
row "p99 ms, -c1" "$P2" p99 direct bus
row "CPU us per request, -c1" "$P2" cpu direct bus
if [[ "$GB_RATIO" != nan ]]; then
    row "rps, gateway capped at $GW_CPU CPU" "$P4" rps direct bus
    row "p50 ms, gateway capped" "$P4" p50 direct bus
    row "gateway CPU us/request, capped" "$P4" gwcpu direct bus
fi
printf '%-34s %12s %12s\n' "" "1 worker" "$NWORKERS workers"
row "completion tok/s" "$P3" tok_s w1 w3
row "fraction of ideal tok/s" "$P3" efficiency w1 w3
row "TTFT p50 ms" "$P3" ttft_p50_ms w1 w3
row "TTFT p99 ms" "$P3" ttft_p99_ms w1 w3
row "stream time p99 ms (ideal $(calc "$SCALE_TOKENS * $TOKEN_US / 1000" 0))" "$P3" total_p99_ms w1 w3
echo
d() { calc "$(m "$1") - $(m "$2")"; }
ratio=$(median <<<"$PAIRED")
add50=$(d "$P2/bus/p50" "$P2/direct/p50")
scale=$(median <<<"$SPAIRED")
echo "RESULT rps_ratio_bus_vs_direct=$ratio (c$CONNS; median of the per-round ratios ${PAIRED% }; c1: $(median <<<"$PAIRED1"))"
echo "RESULT added_p50_ms_c1=$add50 added_p99_ms_c1=$(d "$P2/bus/p99" "$P2/direct/p99")"
echo "RESULT added_p50_ms_c$CONNS=$(d "$P1/bus/p50" "$P1/direct/p50") added_p99_ms_c$CONNS=$(d "$P1/bus/p99" "$P1/direct/p99")"
echo "RESULT cpu_us_per_req_bus_vs_direct=$(m "$P1/bus/cpu")/$(m "$P1/direct/cpu") (c$CONNS)"
# With its workers on other machines (what distributed mode is for), the gateway's own CPU
# bounds its throughput: this ratio is the rps it reaches over the bus relative to direct.
gwratio=$(calc "$(m "$P1/direct/gwcpu") / $(m "$P1/bus/gwcpu")")
echo "RESULT gateway_cpu_us_per_req_bus_vs_direct=$(m "$P1/bus/gwcpu")/$(m "$P1/direct/gwcpu")" \
     "gateway_bound_rps_ratio=$gwratio (c$CONNS)"
echo "RESULT tok_s_ratio_3w_vs_1w=$scale (median of the per-round ratios ${SPAIRED% }; ideal $NWORKERS)"
# All on one machine, with this message pattern, the bus path cannot beat this even if its
# gateway cost what the direct one does and its worker cost nothing: the bus path needs at
# least the CPU the whole machine spent per direct request (wrk and the fake included) plus
# nats-server's per bus request (routing the request and the answer), out of the nproc CPUs
# that the direct run's rps is measured against.
direct_machine_us=$(calc "$(nproc) * 1000000 / $(m "$P1/direct/rps")" 1)
ceiling=$(calc "$direct_machine_us / ($(m "$P1/direct/machcpu") + $(m "$P1/bus/natscpu"))")
echo "RESULT all_on_one_machine_ceiling=$ceiling ($(nproc) CPUs / direct rps = $direct_machine_us us;" \
     "machine busy per direct request $(m "$P1/direct/machcpu") us + nats-server's" \
     "$(m "$P1/bus/natscpu") us per bus request; a free worker and no gateway overhead)"
if [[ -n "$GB_NOTE" ]]; then
    echo "RESULT gateway_bound_measured_rps_ratio=$GB_RATIO ($GB_NOTE)"
else
    echo "RESULT gateway_bound_measured_rps_ratio=$GB_RATIO (c$CONNS, each gateway capped at" \
         "$GW_CPU CPU; median of the rounds in which both used at least 90% of their cap;" \
         "$GSKIPPED of $ROUNDS left out)"
fi
if [[ -n "$GB_NOTE" ]]; then
    echo "TARGET bus_rps_vs_direct_gateway_bound value=nan goal=>=0.90 NOT_MEASURED ($GB_NOTE)"
else
    echo "TARGET bus_rps_vs_direct_gateway_bound value=$GB_RATIO goal=>=0.90 $(met "$GB_RATIO >= 0.9")"
fi
echo "TARGET bus_rps_vs_direct_all_on_one_machine value=$ratio goal=>=0.90 $(met "$ratio >= 0.9")"
echo "TARGET bus_added_p50_ms_c1 value=$add50 goal=<=0.50 $(met "$add50 <= 0.5")"
echo "TARGET tok_s_scaling_3w_vs_1w value=$scale goal=>=2.80 $(met "$scale >= 2.8")"
if (( ERRORS > 0 )); then
    echo "$BENCH_NAME: $ERRORS measurement(s) had request errors; see the BENCH lines above" >&2
    exit 1
fi
