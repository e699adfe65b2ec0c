#!/usr/bin/env bash
# bench/oplog.sh - what S3SHIM_OPLOG costs (make bench-oplog; about 1 minute):
#   1. instructions per pread of 4 KiB on a file:// mount, without and with the op log
#      (callgrind, N = 20000 and 40000 preads: the difference over 20000);
#   2. the same loop, 10^6 preads, under `s3shim ab` (CPU and wall, with a verdict);
#   3. `cat` of a 1 GiB file:// file to /dev/null under `s3shim ab`.
# Figures go to docs/oplog.md ("Cost") by hand.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
OPS=$BUILD/tests/oplog_ops
W=$(mktemp -d /var/tmp/s3shim-bench-oplog.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/b" "$W/log"
export S3SHIM_MOUNTS="/bm=file://$W/b"
unset S3SHIM_OPLOG S3SHIM_ROOT_PID

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
