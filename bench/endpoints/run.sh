#!/usr/bin/env bash
# run.sh - the multi-endpoint benchmarks of issue 4 (`make bench-endpoints`, ~4 min).
#
# One nginx serves a 256 MiB object from tmpfs (anonymous, path style); four
# tests/s3rig/faultproxy.py instances in front of it are the endpoints, each on its own
# 127.0.1.x address with its own added latency (+10% jitter). bench/endpoints/mix.c runs
# under the shim: THREADS readers, each READS preads at seeded random offsets (80% 64 KiB,
# 20% 1 MiB), timed as the program sees them. The shim's stats (S3SHIM_STATS_FILE) give
# each endpoint's share of requests and the hedges.
#
#   latency   endpoints of 5, 10, 50 and 100 ms: rr, least, sewt, sewt + hedging, and the
#             5 ms endpoint alone (its own p99 at the same load). Goal: sewt mean <= 50%
#             of rr's, p99 <= 1.5x the fastest endpoint's own.
#   equal     four 5 ms endpoints: least vs sewt (goal: sewt within 5%).
#   slowdown  four 5 ms endpoints; 3 s into the run one becomes 200 ms (control file):
#             requests it still got after the change, p99 in the 2 s after it, rr vs sewt.
#   select    CPU ns per endpoint selection, 4 and 32 endpoints, 1 and 8 threads
#             (bench/endpoints/select.c, the engine's balance.c). Goal < 100 ns.
#
# Environment: BUILD (build), THREADS (4), READS (150 per thread), SLOW_READS (1000), OUT
# ($BUILD/bench/endpoints-results.txt; raw CSVs and stats in $OUT.d).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RIG_WHO=bench-endpoints
. "$HERE/../preamble.sh" # REPO, RIG, the rig's lib.sh, BUILD, LIB
MIX=$BUILD/bench/mix
SELECT=$BUILD/bench/select
THREADS=${THREADS:-4}
READS=${READS:-150}
SLOW_READS=${SLOW_READS:-1000} # per thread in the slowdown runs: long enough to see the change
OUT=${OUT:-$BUILD/bench/endpoints-results.txt}
D=$OUT.d
for f in "$LIB" "$MIX" "$SELECT"; do [ -x "$f" ] || [ -f "$f" ] || { echo "run.sh: $f missing (make bench-endpoints)" >&2; exit 2; }; done
for v in $(compgen -e); do case $v in S3SHIM_* | AWS_*) unset "$v" ;; esac; done

WORK=$(mktemp -d /tmp/s3shim-bench-ep.XXXXXX)
SHM=$(mktemp -d /dev/shm/s3shim-bench-ep.XXXXXX)
rm -rf "$D" && mkdir -p "$D"
FP_PIDS=()
cleanup() {
    local p
    for p in "${FP_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [ -f "$WORK/nginx/run/pids" ] && "$RIG/stop-nginx.sh" --dir "$WORK/nginx" >/dev/null 2>&1
    rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT
log() { echo "# $*" >&2; }
die() { echo "run.sh: $*" >&2; exit 1; }

log "256 MiB object in tmpfs, nginx"
mkdir -p "$SHM/root/bench"
head -c $((256 << 20)) /dev/urandom >"$SHM/root/bench/obj" || die "cannot write $SHM"
NG_PORT=$(s3rig_free_port 127.0.0.1 18300) || die "no free port for nginx"
"$RIG/start-nginx.sh" --root "$SHM/root" --dir "$WORK/nginx" --listen "127.0.0.1:$NG_PORT" --no-access-log \
    --workers 2 >/dev/null || die "start-nginx.sh failed"

# proxy NAME DELAY_MS: an endpoint with that latency (+10% jitter), controllable.
FP_N=0
proxy() {
    local name=$1 delay=$2
    FP_N=$((FP_N + 1))
    python3 "$RIG/faultproxy.py" --listen "127.0.1.$FP_N:0" --target "127.0.0.1:$NG_PORT" --lifetime 1800 --quiet \
        --delay-ms "$delay" --jitter-ms $((delay / 10)) --control "$WORK/$name.ctl" --log "$D/$name.log" \
        >"$WORK/$name.ready" 2>&1 &
    FP_PIDS+=($!)
    for _ in $(seq 100); do grep -q READY "$WORK/$name.ready" 2>/dev/null && break; sleep 0.05; done
    local a
    a=$(sed -n 's/.*READY listen=\([^ ]*\).*/\1/p' "$WORK/$name.ready")
    [ -n "$a" ] || die "faultproxy $name did not start: $(cat "$WORK/$name.ready")"
    eval "URL_$name=http://$a"
    echo "$name http://$a" >>"$D/urls.txt"
}
proxy p5 5
proxy p10 10
proxy p50 50
proxy p100 100
proxy e1 5
proxy e2 5
proxy e3 5
proxy e4 5
LAT="$URL_p5,$URL_p10,$URL_p50,$URL_p100"
EQ="$URL_e1,$URL_e2,$URL_e3,$URL_e4"

# run NAME ENDPOINTS VAR=VALUE...: the mix under the shim.
run() {
    local name=$1 eps=$2
    shift 2
    log "run $name"
    timeout 600 env LD_PRELOAD="$LIB" S3SHIM_NO_SIGN=1 AWS_REGION=us-east-1 S3SHIM_ENDPOINTS="$eps" \
        S3SHIM_STATS_FILE="$D/$name.stats.json" "$@" \
        "$MIX" /s3/bench/obj "$THREADS" "${RUN_READS:-$READS}" 42 "$D/$name.csv" 2>"$D/$name.err" ||
        { log "run $name failed: $(head -c 300 "$D/$name.err")"; return 1; }
}
run alone "$URL_p5" S3SHIM_HEDGE=off
run rr "$LAT" S3SHIM_BALANCE=rr S3SHIM_HEDGE=off
run least "$LAT" S3SHIM_BALANCE=least S3SHIM_HEDGE=off
run sewt "$LAT" S3SHIM_BALANCE=sewt S3SHIM_HEDGE=off
run sewt_hedge "$LAT" S3SHIM_BALANCE=sewt S3SHIM_HEDGE=auto
run eq_least "$EQ" S3SHIM_BALANCE=least S3SHIM_HEDGE=off
run eq_sewt "$EQ" S3SHIM_BALANCE=sewt S3SHIM_HEDGE=off

# slowdown: e2 goes from 5 to 200 ms three seconds into the run.
slowdown() {
    local pol=$1
    rm -f "$WORK/e2.ctl"
    sleep 0.3
    (sleep 3 && echo '{"delay_ms": 200, "jitter_ms": 20}' >"$WORK/e2.tmp" && mv "$WORK/e2.tmp" "$WORK/e2.ctl" &&
        date +%s.%N >"$D/slow_$pol.t") &
    local changer=$! t0
    t0=$(date +%s.%N)
    echo "$t0" >"$D/slow_$pol.t0"
    wc -l <"$D/e2.log" >"$D/slow_$pol.e2start"
    RUN_READS=$SLOW_READS run "slow_$pol" "$EQ" S3SHIM_BALANCE="$pol" S3SHIM_HEDGE=off
    wait "$changer"
    wc -l <"$D/e2.log" >"$D/slow_$pol.e2end"
    rm -f "$WORK/e2.ctl"
}
slowdown rr
slowdown sewt

log "selection cost"
"$SELECT" 1 >"$D/select.txt"

python3 "$HERE/report.py" "$D" "$THREADS" "$READS" | tee "$OUT"
echo "# raw: $D" >&2
