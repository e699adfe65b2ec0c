#!/usr/bin/env bash
# bench/oplog.sh - what S3SHIM_OPLOG costs (make bench-oplog; about 1 minute):
#   1. instructions per pread of 4 KiB on a file:// mount, without and with the op log
#      (callgrind, N = 20000 and 40000 preads: the difference over 20000);
#   2. the same loop, 10^6 preads, under `s3shim ab` (CPU and wall, with a verdict);
#   3. `cat` of a 1 GiB file:// file to /dev/null under `s3shim ab`;
#   4. the calling thread's own CPU per pread (user and system, getrusage RUSAGE_THREAD),
#      10^6 preads, without and with the op log alternated, 8 runs each: the medians. The
#      op log's helper thread (segments readied ahead) is not the calling thread.
#   5. `cat` of a 1 GiB S3 object to /dev/null under `s3shim ab`, the op log off and on (with
#      its S3 request records), and how many request records a run wrote; on the rig's Swift
#      (tests/s3rig/s3env.sh: AWS_ENDPOINT_URL when set, else a Swift of its own).
# ONLY=s3 runs step 5 alone; ONLY=local steps 1-4.
# OPS=... (an oplog_ops that prints thread CPU) lets another BUILD's library be measured.
# Figures go to docs/oplog.md ("Cost") by hand.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
OPS=${OPS:-$BUILD/tests/oplog_ops}
W=$(mktemp -d /var/tmp/s3shim-bench-oplog.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/b" "$W/log"
export S3SHIM_MOUNTS="/bm=file://$W/b"
unset S3SHIM_OPLOG S3SHIM_ROOT_PID

if [ "${ONLY:-}" != s3 ]; then
if command -v valgrind > /dev/null; then
    declare -A IR
    for mode in off on; do
        for n in 20000 40000; do
            rm -rf "$W/log"/*
            set_log=()
            [ $mode = on ] && set_log=(S3SHIM_OPLOG="$W/log/")
            env "${set_log[@]}" LD_PRELOAD="$BUILD/libs3shim.so" \
                valgrind --tool=callgrind --callgrind-out-file="$W/cg" "$OPS" /bm loop $n > /dev/null 2>&1
            IR[$mode$n]=$(sed -n 's/^totals: //p' "$W/cg")
        done
    done
    off=$(( (IR[off40000] - IR[off20000]) / 20000 )) on=$(( (IR[on40000] - IR[on20000]) / 20000 ))
    echo "instructions per 4 KiB pread: without the op log $off, with it $on (+$((on - off)))"
fi

echo; echo "10^6 preads of 4 KiB, page cache:"
TMPDIR=$W "$BUILD/s3shim" ab --runs 8 --warmup 1 --arm off=/bm=file://$W/b --env off=S3SHIM_OPLOG= --arm on=/bm=file://$W/b \
    -- "$OPS" /bm loop 1000000 2> /dev/null
head -c 1073741824 /dev/zero > "$W/b/g1"
echo; echo "cat of 1 GiB to /dev/null:"
TMPDIR=$W "$BUILD/s3shim" ab --runs 8 --warmup 1 --arm off=/bm=file://$W/b --env off=S3SHIM_OPLOG= --arm on=/bm=file://$W/b \
    -- sh -c 'cat /bm/g1 > /dev/null' 2> /dev/null

echo; echo "CPU of the calling thread per 4 KiB pread (10^6 preads, off/on alternated, 8 runs each; median ns):"
for i in 1 2 3 4 5 6 7 8; do
    for mode in off on; do
        rm -rf "$W/log"/*
        L=; [ $mode = on ] && L="$W/log/"
        echo "$mode $(S3SHIM_OPLOG=$L LD_PRELOAD="$BUILD/libs3shim.so" "$OPS" /bm loop 1000000 2>&1 | tail -1)"
    done
done | python3 -c '
import re, statistics, sys
v = {}
for line in sys.stdin:
    m = re.match(r"(\w+) .*thread CPU ([\d.]+) ns/op \(user ([\d.]+), system ([\d.]+)\)", line)
    if m: v.setdefault(m[1], []).append([float(x) for x in m.groups()[1:]])
med = {k: [statistics.median(c) for c in zip(*r)] for k, r in v.items()}
for k in ("off", "on"):
    if k in med: print("  %-4s thread CPU %.0f ns (user %.0f, system %.0f), %d runs" % (k, *med[k], len(v[k])))
if "off" in med and "on" in med:
    d = [b - a for a, b in zip(med["off"], med["on"])]
    print("  op log: %+.0f ns per pread on the calling thread (user %+.0f, system %+.0f)" % tuple(d))'
fi

if [ "${ONLY:-}" != local ]; then
    echo; echo "cat of a 1 GiB S3 object to /dev/null (the op log with its S3 request records):"
    export S3SHIM_MOUNTS=
    if . "$ROOT/tests/s3rig/s3env.sh" > "$W/s3env.log" 2>&1; then
        head -c 1073741824 /dev/urandom > "$W/g1s"
        s3_put "$W/g1s" bench-oplog-g1 && rm -f "$W/g1s"
        TMPDIR=$W "$BUILD/s3shim" ab --runs 8 --warmup 1 --arm off=/bs=s3://$S3_BUCKET --env off=S3SHIM_OPLOG= \
            --arm on=/bs=s3://$S3_BUCKET -- sh -c 'cat /bs/bench-oplog-g1 > /dev/null' 2> /dev/null
        rm -rf "$W/log"/*
        S3SHIM_OPLOG="$W/log/" "$BUILD/s3shim" run --mount /bs=s3://$S3_BUCKET -- sh -c 'cat /bs/bench-oplog-g1 > /dev/null'
        "$BUILD/s3shim" oplog "$W/log" --summary | sed -n '1p;/^  S3 requests:/,/^$/p'
        s3_rm bench-oplog-g1
    else
        echo "  no S3 server: $(tail -1 "$W/s3env.log")"
    fi
fi
