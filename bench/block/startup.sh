#!/usr/bin/env bash
# bench/block/startup.sh - what a block:// store with many objects costs a new process:
# a store of N objects (default 1M, 40-byte keys) made by bench/block/populate.c in a
# sparse file, then: the time of a new process that stats one key (against the same
# process stating a path outside the mount), its private memory against a process with
# no block:// mount, warm stat of keys in one process, listing a 1000-entry directory, and
# the metadata the objects take on disk.
#
#   BUILD=build bench/block/startup.sh [N]        (make bench-block-startup)
set -u
N=${1:-1000000}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
LIB=$BUILD/libs3shim.so
IMG=$(mktemp "${TMPDIR:-/var/tmp}/s3shim-bench-block.XXXXXX")
trap 'rm -f "$IMG"' EXIT
truncate -s 16G "$IMG"
"$BUILD/s3shim" blk format "$IMG" >/dev/null || exit 1
t0=$(date +%s%N)
"$BUILD/blk_populate" "$IMG" "$N" 40 || exit 1
t1=$(date +%s%N)
echo "populated $N objects in $(( (t1 - t0) / 1000000 )) ms (20000 per commit)"
"$BUILD/s3shim" blk df "$IMG" | grep -E "metadata|objects|height"
echo "metadata on disk: $(( $("$BUILD/s3shim" blk df "$IMG" | awk '/^metadata/ {print $2}') * 4096 / 1048576 )) MiB"
export S3SHIM_MOUNTS="/big=block://$IMG"
key() { printf "/big/d%03d/%035d" $(($1 % 1000)) "$1"; }
runs=100
t0=$(date +%s%N)
for i in $(seq $runs); do LD_PRELOAD=$LIB stat -c %s "$(key $((i * 9973 % N)))" >/dev/null || echo "missing $i"; done
t1=$(date +%s%N)
for i in $(seq $runs); do LD_PRELOAD=$LIB stat -c %s /etc/hostname >/dev/null; done
t2=$(date +%s%N)
echo "new process + stat of a key: $(( (t1 - t0) / runs / 1000 )) us; the same stating a path outside the mount: $(( (t2 - t1) / runs / 1000 )) us; difference = opening the store and the lookup"
mem() { grep -E '^Private_(Clean|Dirty)' /proc/$1/smaps_rollup | awk '{s += $2} END {print s}'; }
with=$(LD_PRELOAD=$LIB bash -c "stat $(key 123) >/dev/null; grep -E '^Private_(Clean|Dirty)' /proc/\$\$/smaps_rollup" | awk '{s += $2} END {print s}')
without=$(S3SHIM_MOUNTS= LD_PRELOAD=$LIB bash -c "grep -E '^Private_(Clean|Dirty)' /proc/\$\$/smaps_rollup" | awk '{s += $2} END {print s}')
echo "private memory of bash after a stat in the store: $with kB; with no block:// mount: $without kB"
LD_PRELOAD=$LIB python3 - "$N" <<'PY'
import os, sys, time
n = int(sys.argv[1])
t = time.perf_counter()
for i in range(20000):
    k = i * 37 % n
    os.stat('/big/d%03d/%035d' % (k % 1000, k))
print('warm stat of a key: %.1f us' % ((time.perf_counter() - t) / 20000 * 1e6))
t = time.perf_counter()
m = len(os.listdir('/big/d042'))
print('listdir of %d entries: %.1f ms' % (m, (time.perf_counter() - t) * 1e3))
PY
