# Shared by the benchmark scripts (sourced): process and port helpers, small number tools.
# The caller sets BENCH_NAME (prefix of messages) and TMP (a directory removed on exit)
# before sourcing this file. Every process is started with start_bg and stopped by PID.

PIDS=()
AT_EXIT=() # commands cleanup runs after the processes are stopped (e.g. removing a cgroup)

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }

# Stops every process this script started, by PID (and their direct children, e.g. nginx
# workers), then removes $TMP.
cleanup() {
    local rc=$? pid deadline kids=() cmd
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || continue
        mapfile -t -O "${#kids[@]}" kids < <(pgrep -P "$pid" 2>/dev/null || true)
        kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$(( $(date +%s) + 5 ))
    for pid in "${PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && (( $(date +%s) < deadline )); do sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for pid in "${kids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for cmd in "${AT_EXIT[@]}"; do eval "$cmd" || true; done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts "$@" in the background with output to $TMP/NAME.log; sets STARTED_PID.
start_bg() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

# Stops one process started by start_bg: SIGTERM, SIGKILL after 5 s, reaped.
stop_pid() {
    local pid=$1 deadline
    kill -TERM "$pid" 2>/dev/null || return 0
    deadline=$(( $(date +%s) + 5 ))
    while kill -0 "$pid" 2>/dev/null && (( $(date +%s) < deadline )); do sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Picks a free TCP port below the ephemeral range (so client sockets cannot take it);
# sets PORT.
USED_PORTS=" "
pick_port() {
    local p
    for _ in $(seq 500); do
        p=$(( 20000 + RANDOM % 10000 ))
        [[ "$USED_PORTS" == *" $p "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            USED_PORTS+="$p "
            PORT=$p
            return 0
        fi
    done
    die "no free port found"
}

# Polls URL until it answers 200, the process PID dies or DEADLINE_S passes.
wait_http() {
    local name=$1 url=$2 pid=$3 deadline_s=$4 end code
    end=$(( $(date +%s%N) + deadline_s * 1000000000 ))
    while (( $(date +%s%N) < end )); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$BENCH_NAME: $name exited before it was ready; its log:" >&2
            tail -n 30 "$TMP/$name.log" >&2
            exit 1
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
        [[ "$code" == 200 ]] && return 0
        sleep 0.02
    done
    echo "$BENCH_NAME: $name not ready at $url after ${deadline_s}s; its log:" >&2
    tail -n 30 "$TMP/$name.log" >&2
    exit 1
}

calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }
kv() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p" <<<" $2" | head -n 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/'; }

# Median of the numbers on stdin (space- or newline-separated); "nan" when there are none.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

CLK_TCK=$(getconf CLK_TCK)
# CPU time (user+system, clock ticks) of the PIDs given.
cpu_ticks() {
    local total=0 pid t
    for pid in "$@"; do
        t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$(( total + t ))
    done
    echo "$total"
}

# Busy CPU time of the whole machine so far (clock ticks over all CPUs: everything but idle
# and iowait), from /proc/stat.
machine_busy_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# check_path LABEL BASE MODEL: one chat request through BASE (a gateway URL) must succeed
# before anything is measured. Needs PATH_CC and TMP.
check_path() {
    local label=$1 base=$2 model=$3 out code
    out="$TMP/check-$label.json"
    code=$(curl -s -o "$out" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
        -d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":8}" \
        "$base$PATH_CC" || true)
    if [[ "$code" != 200 ]] || ! grep -q '"choices"' "$out"; then
        echo "$BENCH_NAME: sanity request via $label (model $model) answered HTTP $code:" >&2
        head -c 500 "$out" >&2 || true
        echo >&2
        exit 1
    fi
}

# medians PHASE KEY...: prints the MEDIAN lines of PHASE for the targets in TARGETS from the
# per-round values in VALS["phase/target/key"], and fills MED the same way (both are the
# caller's associative arrays).
medians() {
    local phase=$1 t k line
    shift
    for t in "${TARGETS[@]}"; do
        line="MEDIAN $phase $t"
        for k in "$@"; do
            MED[$phase/$t/$k]=$(median <<<"${VALS[$phase/$t/$k]:-}")
            line+=" $k=${MED[$phase/$t/$k]}"
        done
        echo "$line"
    done
}

# m KEY: a median of MED ("nan" when missing); met EXPR: MET or NOT_MET.
m() { echo "${MED[$1]:-nan}"; }
met() { awk "BEGIN { exit !($1) }" && echo MET || echo NOT_MET; }

# wrk_measure PHASE TARGET ROUND THREADS CONNS SECONDS: one wrk run against
# ${BASE[TARGET]}$PATH_CC with the script $LUA (after a WARM_S warm-up in round 1), and the
# CPU the processes ${CPU_PIDS[TARGET]} spent on it. Sets W_RPS, W_P50, W_P90, W_P99, W_MAX
# (ms), W_REQS, W_ERRS, W_CPU (their CPU us per request, all together), W_SPLIT (clock
# ticks of each, "a/b/...") and W_MACHINE_CPU (the whole machine's busy CPU us per request,
# wrk included); appends rps, p50, p99 and cpu to VALS and counts a run with
# request errors in ERRORS (the caller's). Exits when wrk fails or prints no summary.
wrk_measure() {
    local phase=$1 target=$2 round=$3 t=$4 c=$5 d=$6 out line ticks now pid busy0 busy per0=()
    local url="${BASE[$target]}$PATH_CC"
    if (( round == 1 && WARM_S > 0 )); then
        wrk -t"$t" -c"$c" -d"${WARM_S}s" -s "$LUA" "$url" >/dev/null 2>&1 || true
    fi
    out="$TMP/wrk-$phase-$target-$round.txt"
    for pid in ${CPU_PIDS[$target]}; do per0+=("$(cpu_ticks "$pid")"); done
    busy0=$(machine_busy_ticks)
    wrk -t"$t" -c"$c" -d"${d}s" --latency -s "$LUA" "$url" >"$out" 2>&1 ||
        { echo "$BENCH_NAME: wrk failed:"; cat "$out"; exit 1; } >&2
    busy=$(( $(machine_busy_ticks) - busy0 ))
    ticks=0
    W_SPLIT=""
    for pid in ${CPU_PIDS[$target]}; do
        now=$(( $(cpu_ticks "$pid") - per0[0] ))
        W_SPLIT+="${W_SPLIT:+/}$now"
        ticks=$(( ticks + now ))
        per0=("${per0[@]:1}")
    done
    line=$(grep '^WRK ' "$out" | tail -n 1)
    [[ -n "$line" ]] || { echo "$BENCH_NAME: no summary from wrk:"; cat "$out"; exit 1; } >&2
    W_REQS=$(kv requests "$line")
    W_RPS=$(kv rps "$line")
    W_P50=$(calc "$(kv p50_us "$line") / 1000")
    W_P90=$(calc "$(kv p90_us "$line") / 1000")
    W_P99=$(calc "$(kv p99_us "$line") / 1000")
    W_MAX=$(calc "$(kv max_us "$line") / 1000")
    W_CPU=$(calc "$ticks * 1000000 / $CLK_TCK / ($W_REQS > 0 ? $W_REQS : 1)" 1)
    W_MACHINE_CPU=$(calc "$busy * 1000000 / $CLK_TCK / ($W_REQS > 0 ? $W_REQS : 1)" 1)
    W_ERRS=$(( $(kv err_connect "$line") + $(kv err_read "$line") + $(kv err_write "$line") +
               $(kv err_timeout "$line") + $(kv err_status "$line") ))
    (( W_ERRS == 0 )) || ERRORS=$(( ERRORS + 1 ))
    VALS[$phase/$target/rps]+="$W_RPS "
    VALS[$phase/$target/p50]+="$W_P50 "
    VALS[$phase/$target/p99]+="$W_P99 "
    VALS[$phase/$target/cpu]+="$W_CPU "
}

# ---- CPU caps (cgroups) ----------------------------------------------------------------
# A process in a capped cgroup gets at most a fixed share of one CPU, as if it ran alone on
# a smaller machine: the benchmarks use it to make one process (a gateway) the bottleneck
# while its peers share the rest of the machine. Needs root and a writable cgroup cpu
# controller (v2 cpu.max, or v1 cpu.cfs_quota_us). A capped process stays capped until it
# exits: a benchmark caps processes in its last phase only.

# cap_new NAME CPUS: makes the cgroup NAME (unique to this run) limited to CPUS (e.g. 0.3)
# of one CPU; sets CAP_PATH, or returns 1 with the reason in CAP_WHY. The cgroup is removed
# on exit (AT_EXIT), after the processes in it are stopped.
cap_new() {
    local name=$1-$$ cpus=$2 period=10000 quota root
    quota=$(calc "$cpus * $period" 0)
    if (( quota < 1000 )); then
        CAP_WHY="a cap below 0.1 CPU is not measured"
        return 1
    fi
    CAP_WHY="cannot write a cgroup cpu controller here (needs root)"
    root=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
    if [[ -n "$root" ]] && grep -qw cpu "$root/cgroup.controllers" 2>/dev/null; then
        if ! grep -qw cpu "$root/cgroup.subtree_control" 2>/dev/null &&
            { echo +cpu >"$root/cgroup.subtree_control"; } 2>/dev/null; then
            AT_EXIT+=("{ echo -cpu >'$root/cgroup.subtree_control'; } 2>/dev/null")
        fi
        if mkdir "$root/$name" 2>/dev/null; then
            AT_EXIT+=("rmdir '$root/$name' 2>/dev/null")
            if { echo "$quota $period" >"$root/$name/cpu.max"; } 2>/dev/null; then
                CAP_PATH="$root/$name"
                return 0
            fi
        fi
    fi
    root=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpu(,|$)/ { print $2; exit }' /proc/mounts)
    [[ -n "$root" ]] && mkdir "$root/$name" 2>/dev/null || return 1
    AT_EXIT+=("rmdir '$root/$name' 2>/dev/null")
    { echo "$period" >"$root/$name/cpu.cfs_period_us" &&
        echo "$quota" >"$root/$name/cpu.cfs_quota_us"; } 2>/dev/null || return 1
    CAP_PATH="$root/$name"
}

# cap_enter CAP_PATH PID: moves process PID (all its threads) into the capped cgroup for
# the rest of its life; returns 1 (CAP_WHY) when the cgroup refuses it.
cap_enter() {
    { echo "$2" >"$1/cgroup.procs"; } 2>/dev/null && return 0
    CAP_WHY="the cgroup refused the process (delegation or container limits)"
    return 1
}
