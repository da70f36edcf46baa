#!/usr/bin/env bash
# Where infergate's time goes on the non-streaming proxy path, next to nginx.
#
#   bench/proxy/profile.sh            (after make release; IG_BIN_DIR picks another build)
#
# Starts one fake-llama-server, nginx (same settings as run.sh) and infergate, then under
# wrk -t2 -c64 load:
#   1. system calls per request of the infergate process and of the nginx worker (strace -c)
#   2. a CPU profile of infergate (perf record -e cpu-clock --call-graph dwarf), printed as
#      self time per library and the heaviest inclusive entries
# strace and perf slow the traced process, so only the ratios of this output mean anything;
# run.sh has the real figures. Bounded (about 30 s); kills what it started by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN_DIR=${IG_BIN_DIR:-$ROOT/build}
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac
LUA="$ROOT/bench/proxy/post.lua"
SECS=${PROFILE_SECONDS:-4}

for tool in wrk strace nginx; do
    command -v "$tool" >/dev/null || { echo "profile: '$tool' is not installed" >&2; exit 1; }
done
HAVE_PERF=0
if command -v perf >/dev/null && perf record -e cpu-clock -o /dev/null -- true >/dev/null 2>&1; then
    HAVE_PERF=1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/infergate-profile.XXXXXX")
PIDS=()
cleanup() {
    local rc=$? pid kids=()
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        mapfile -t -O "${#kids[@]}" kids < <(pgrep -P "$pid" 2>/dev/null || true)
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for pid in "${kids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

USED=" "
port() {
    local p
    while :; do
        p=$(( 20000 + RANDOM % 10000 ))
        [[ "$USED" == *" $p "* ]] && continue
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
        USED+="$p "
        PORT=$p
        return
    done
}
wait_up() {
    for _ in $(seq 250); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)" == 200 ]] && return
        sleep 0.02
    done
    echo "profile: $1 not ready" >&2
    exit 1
}

port; FAKE_PORT=$PORT; port; NGX_PORT=$PORT; port; IG_PORT=$PORT
env EVENT_PRECISE_TIMER=1 "$BIN_DIR/fake-llama-server" --port "$FAKE_PORT" --model bench >"$TMP/fake.log" 2>&1 &
PIDS+=("$!")
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off; master_process on; worker_processes 1;
pid $TMP/nginx/nginx.pid; error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off; keepalive_requests 1000000;
    client_body_temp_path $TMP/nginx/body; proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi; uwsgi_temp_path $TMP/nginx/uwsgi; scgi_temp_path $TMP/nginx/scgi;
    upstream fake { server 127.0.0.1:$FAKE_PORT; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / { proxy_pass http://fake; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
    }
}
EOF
nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" &
NGX_PID=$!
PIDS+=("$NGX_PID")
cat >"$TMP/ig.yaml" <<EOF
logLevel: warn
models:
  bench:
    proxy: http://127.0.0.1:$FAKE_PORT
    checkEndpoint: /health
EOF
"$BIN_DIR/infergate" serve -c "$TMP/ig.yaml" --listen "127.0.0.1:$IG_PORT" >"$TMP/ig.log" 2>&1 &
IG_PID=$!
PIDS+=("$IG_PID")
wait_up "http://127.0.0.1:$FAKE_PORT/health"
wait_up "http://127.0.0.1:$NGX_PORT/health"
wait_up "http://127.0.0.1:$IG_PORT/healthz"
NGX_WORKER=$(pgrep -P "$NGX_PID" | head -n 1)

load() { wrk -t2 -c64 -d"${1}s" -s "$LUA" "http://127.0.0.1:$2/v1/chat/completions" | grep '^WRK'; }
load 1 "$IG_PORT" >/dev/null
load 1 "$NGX_PORT" >/dev/null

# strace_per_req NAME PID PORT: system calls per request under load.
strace_per_req() {
    local name=$1 pid=$2 port=$3 st line reqs
    strace -c -f -p "$pid" -o "$TMP/strace-$name.txt" &
    st=$!
    sleep 0.5
    line=$(load "$SECS" "$port")
    kill -INT "$st"
    wait "$st" 2>/dev/null || true
    reqs=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
    echo "-- $name: system calls per request ($reqs requests under strace)"
    awk -v n="$reqs" -v name="$name" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
            printf "SYSCALL %s %s %.2f\n", name, $NF, $4 / n }' "$TMP/strace-$name.txt" |
        sort -k4 -g -r
    awk -v n="$reqs" -v name="$name" '$NF == "total" { printf "SYSCALL %s total %.2f\n", name, $4 / n }' \
        "$TMP/strace-$name.txt"
}
strace_per_req infergate "$IG_PID" "$IG_PORT"
strace_per_req nginx "$NGX_WORKER" "$NGX_PORT"

if (( HAVE_PERF )); then
    perf record -F 999 -e cpu-clock --call-graph dwarf,16384 -p "$IG_PID" -o "$TMP/perf.data" \
        -- sleep "$SECS" >/dev/null 2>&1 &
    pr=$!
    load "$SECS" "$IG_PORT" >/dev/null
    wait "$pr" || true
    echo "-- infergate: self time per library (perf, cpu-clock)"
    perf report -i "$TMP/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -n 8
    echo "-- infergate: heaviest inclusive entries (user space)"
    perf report -i "$TMP/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9.]+%' | grep -v '\[k\]' | grep -v ' 0x0000' | head -n 40
else
    echo "-- perf is not usable here (perf_event_paranoid or no PMU); strace figures only"
fi
