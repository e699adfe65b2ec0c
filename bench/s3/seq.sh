#!/usr/bin/env bash
# seq.sh - one sequential read of a large object on nginx, the shim against curl (issue 13,
# item 2), without the rest of bench-s3 (Swift, FUSE peers, aws): minutes less per try.
#
# The object (SIZE_MB, random bytes) sits in tmpfs behind nginx on loopback
# (tests/s3rig/start-nginx.sh, 2 workers). Three arms, alternated in every round (the
# order rotates each round) on a shared machine:
#   curl8   bench/s3/curl-ranges.sh: 8 curls, one equal range each, bodies to /dev/null
#   ours    `cat /s3/bkt/obj > /dev/null` under the shim (EXTRA=`VAR=VALUE ...` adds settings);
#           the bytes read are checked in the shim's stats file
#   curl1   one `curl URL -o /dev/null`
# Per arm: MiB/s of the best run and the median, CPU seconds (user+sys of the client
# processes) per GiB read (median), max RSS (8 ranges: the sum of the 8 curls), and
# ours/curl8 ratios of the best runs and of the CPU medians. The load average is printed
# at the start and the end.
#
# BEFORE=/path/to/libs3shim.so adds a fourth arm, `before`: the same `cat` under that
# library (e.g. a build of the previous commit), alternated with the others;
# BEFORE_EXTRA=`VAR=VALUE ...` gives that arm settings of its own (BEFORE=build/libs3shim.so
# BEFORE_EXTRA=S3SHIM_HTTP_RECV=curl: the same build with libcurl receiving every body).
#
# FAR=DELAY_MS:RATE puts tests/s3rig/faultproxy.py between every arm and nginx: each
# request waits DELAY_MS before it is forwarded and each connection gets at most RATE
# bytes/s (e.g. FAR=20:40M), a server far away, where parallel GETs pay and the shim's
# read-ahead ceiling should grow (its decisions are printed from the debug log). The
# proxy is Python: its own ceiling (a few hundred MB/s) is every arm's.
#
# PERF=1 also runs `perf stat` (page faults, context switches, task-clock) over one more
# `cat` under the shim and over one curl-ranges run.
#
# Environment: BUILD (build), SIZE_MB (1024), ROUNDS (5), EXTRA (""), PERF (0), BEFORE (""),
# BEFORE_EXTRA (""), FAR ("")
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RIG_WHO=bench-seq
. "$HERE/../preamble.sh" # REPO, RIG, the rig's lib.sh, BUILD, LIB
SIZE_MB=${SIZE_MB:-1024}
ROUNDS=${ROUNDS:-5}
EXTRA=${EXTRA:-}
PERF=${PERF:-0}
BEFORE=${BEFORE:-}
BEFORE_EXTRA=${BEFORE_EXTRA:-}
FAR=${FAR:-}
[ -e "$BUILD/libs3shim.so" ] || { echo "seq.sh: $BUILD/libs3shim.so is missing (run make)" >&2; exit 2; }
for v in $(compgen -e); do
    case "$v" in S3SHIM_*|AWS_*|LD_PRELOAD) unset "$v" ;; esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/s3shim-bench-seq.XXXXXX") || exit 2
SHM=$(mktemp -d /dev/shm/s3shim-bench-seq.XXXXXX) || exit 2
PROXY_PID=
cleanup() {
    [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
    "$RIG/stop-nginx.sh" --dir "$WORK/nginx" >/dev/null 2>&1
    rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# A snapshot of the library: a rebuild meanwhile cannot change it under a run.
cp "$BUILD/libs3shim.so" "$WORK/libs3shim.so" || exit 2
LIB=$WORK/libs3shim.so
if [ -n "$BEFORE" ]; then
    cp "$BEFORE" "$WORK/before.so" || exit 2
fi
mkdir -p "$SHM/root/bkt"
head -c $((SIZE_MB << 20)) /dev/urandom > "$SHM/root/bkt/obj" || exit 2
SIZE=$((SIZE_MB << 20))
port=$(s3rig_free_port 127.0.0.1 18280) || { echo "seq.sh: no free port" >&2; exit 1; }
"$RIG/start-nginx.sh" --root "$SHM/root" --dir "$WORK/nginx" --listen "127.0.0.1:$port" --no-access-log \
    >/dev/null || { echo "seq.sh: start-nginx.sh failed" >&2; exit 1; }
EP=http://127.0.0.1:$port
if [ -n "$FAR" ]; then
    python3 "$REPO/tests/s3rig/faultproxy.py" --listen 127.0.0.1:0 --target "127.0.0.1:$port" --quiet \
        --delay-ms "${FAR%%:*}" --rate "${FAR#*:}" --lifetime 3600 > "$WORK/proxy.ready" 2>&1 &
    PROXY_PID=$!
    for _ in $(seq 100); do grep -q READY "$WORK/proxy.ready" 2>/dev/null && break; sleep 0.05; done
    EP=http://$(sed -n 's/.*READY listen=\([^ ]*\).*/\1/p' "$WORK/proxy.ready")
    [ "$EP" != http:// ] || { echo "seq.sh: faultproxy did not start: $(cat "$WORK/proxy.ready")" >&2; exit 1; }
fi
: > "$WORK/aws-config"
: > "$WORK/aws-creds"
SHIM_ENV=(AWS_CONFIG_FILE="$WORK/aws-config" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-creds" AWS_REGION=us-east-1
          AWS_ENDPOINT_URL="$EP" S3SHIM_NO_SIGN=1 S3SHIM_ADDRESSING=path)
# shellcheck disable=SC2206
EXTRA_ENV=($EXTRA)
# shellcheck disable=SC2206
BEFORE_ENV=($BEFORE_EXTRA)

# run ARM: one run; prints "ARM wall_s cpu_s rss_kb" (or fails)
run() {
    local t0 t1 line out
    t0=$(date +%s%N)
    case $1 in
    curl8)
        out=$("$HERE/curl-ranges.sh" "$EP/bkt/obj" "$SIZE" 8) || return 1
        t1=$(date +%s%N)
        line="$(sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p' <<< "$out") $(sed -n 's/.*rss_kb_sum=\([0-9]*\).*/\1/p' <<< "$out")"
        ;;
    curl1)
        out=$(/usr/bin/time -o "$WORK/t" -f '%U %S %M' curl -sS -o /dev/null -w '%{http_code} %{size_download}' \
              "$EP/bkt/obj") || return 1
        t1=$(date +%s%N)
        [ "$out" = "200 $SIZE" ] || return 1
        line=$(awk '{ printf "%.2f %d", $1 + $2, $3 }' "$WORK/t")
        ;;
    ours|before)
        local lib=$LIB extra=("${EXTRA_ENV[@]}")
        [ "$1" = before ] && lib=$WORK/before.so extra=("${BEFORE_ENV[@]}")
        # to /dev/null as curl's bodies go: no pipe to a counter costing CPU beside ours;
        # the bytes are counted by the shim's own stats, summed over its processes
        rm -rf "$WORK/st" && mkdir -p "$WORK/st"
        t0=$(date +%s%N) # the clock runs for the program only, as for curl's arms
        env "${SHIM_ENV[@]}" "${extra[@]}" S3SHIM_STATS_FILE="$WORK/st/%p.json" LD_PRELOAD="$lib" \
            S3SHIM_LOG=debug S3SHIM_LOG_FILE="$WORK/st/log" \
            /usr/bin/time -o "$WORK/t" -f '%U %S %M' cat /s3/bkt/obj > /dev/null || return 1
        t1=$(date +%s%N)
        # the read-ahead ceiling's course (core/readahead.h), one line per run, and how
        # many read-ahead bodies waited for the reader's buffer (S3SHIM_READ_HOLD)
        echo "# $1: $(grep -o 'read-ahead ceiling.*' "$WORK/st/log" | sed 's/read-ahead ceiling //' | paste -sd'>' -); $(grep -c 'its body was held for it' "$WORK/st/log") held bodies" >&2
        out=$(python3 -c 'import glob, json, sys
print(sum(m.get("ops", {}).get("read", {}).get("bytes", 0) for f in glob.glob(sys.argv[1] + "/*.json")
          for m in json.load(open(f)).get("mounts", [])))' "$WORK/st")
        [ "$out" = "$SIZE" ] || { echo "# $1: the shim read $out bytes, not $SIZE" >&2; return 1; }
        line=$(awk '{ printf "%.2f %d", $1 + $2, $3 }' "$WORK/t")
        ;;
    esac
    echo "$1 $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }') $line"
}

echo "# seq.sh: $SIZE_MB MiB object, nginx on loopback (tmpfs), $ROUNDS rounds, EXTRA='$EXTRA' BEFORE_EXTRA='$BEFORE_EXTRA'"
echo "# machine: $(nproc) CPUs, $(uname -r); code $(git -C "$REPO" describe --always --dirty 2>/dev/null)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
arms=(curl8 ours curl1)
[ -n "$BEFORE" ] && arms=(curl8 ours curl1 before)
n=${#arms[@]}
for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
        a=${arms[$(((i + r) % n))]}
        run "$a" >> "$WORK/raw" || echo "# FAILED: $a (round $r)"
    done
done
echo "# load average at end:   $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK/raw" "$SIZE" <<'PY'
import statistics, sys
size = int(sys.argv[2])
runs = {}
for line in open(sys.argv[1]):
    arm, wall, cpu, rss = line.split()
    runs.setdefault(arm, []).append((float(wall), float(cpu), int(rss)))
gib = size / (1 << 30)
print("  arm      MiB/s best  (median)  CPU-s/GiB  RSS_MB  runs")
res = {}
for arm in ("curl8", "ours", "before", "curl1"):
    v = runs.get(arm)
    if not v:
        continue
    mbs = [size / (1 << 20) / w for w, _, _ in v]
    cpu = statistics.median(c for _, c, _ in v) / gib
    rss = max(r for _, _, r in v) / 1024
    res[arm] = (max(mbs), cpu)
    print("  %-6s   %10.1f  (%7.1f)  %9.2f  %6.1f  %4d" % (arm, max(mbs), statistics.median(mbs), cpu, rss, len(v)))
if "ours" in res:
    for peer in ("curl8", "curl1", "before"):
        if peer in res:
            print("  ours/%s: MiB/s %.2f, CPU per GiB %.2f" % (peer, res["ours"][0] / res[peer][0], res["ours"][1] / res[peer][1]))
PY
if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
    ev=task-clock,page-faults,context-switches,cpu-migrations
    for a in ours before; do
        lib=$LIB extra=("${EXTRA_ENV[@]}")
        [ $a = before ] && { [ -n "$BEFORE" ] || continue; lib=$WORK/before.so extra=("${BEFORE_ENV[@]}"); }
        echo "# perf stat -e $ev, $a (cat under the shim):"
        env "${SHIM_ENV[@]}" "${extra[@]}" LD_PRELOAD="$lib" perf stat -x, -e "$ev" -o "$WORK/perf" \
            cat /s3/bkt/obj > /dev/null
        grep -v '^#' "$WORK/perf" | awk -F, 'NF > 2 { printf "    %-18s %s\n", $3, $1 }'
    done
    echo "# perf stat -e $ev, curl8 (the 8 curls and their driver):"
    perf stat -x, -e "$ev" -o "$WORK/perf" "$HERE/curl-ranges.sh" "$EP/bkt/obj" "$SIZE" 8 > /dev/null
    grep -v '^#' "$WORK/perf" | awk -F, 'NF > 2 { printf "    %-18s %s\n", $3, $1 }'
fi
