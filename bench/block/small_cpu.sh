#!/usr/bin/env bash
# bench/block/small_cpu.sh - CPU time and metadata reads of small-file work on block://
# against ext4 on one loop device: `cp -r` of N (2000) files of 4 KiB into the mount, then
# a python loop reading them all back. CPU time is `perf stat -e task-clock` over every
# process of the command (kernel time included), steadier than files/s on a shared
# machine (and this VM has no PMU for instruction counts). The block:// arms also print
# the stats line's metadata blocks read and lookups served on kept roots. Arms alternate
# in each round: ext4, then BEFORE (if given), then this build.
#
#   BUILD=build bench/block/small_cpu.sh            (make bench-block-small-cpu)
#   ROUNDS=3 FILES=2000 BEFORE=DIR bench/block/small_cpu.sh
#           BEFORE: a build directory of another version (libs3shim.so and s3shim)
set -u
export LC_ALL=C
# shellcheck source=../../tests/preamble.sh
. "$(dirname "$0")/../../tests/preamble.sh" # TOP, BUILD, LIB, TOOL
N=${FILES:-2000}
ROUNDS=${ROUNDS:-3}
BEFORE=${BEFORE:-}
BASE=${BENCH_DIR:-/var/tmp}
for c in perf mkfs.ext4 losetup; do
    command -v $c >/dev/null || { echo "bench-block-small-cpu: $c is not installed"; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench-block-small-cpu: needs root (a loop device, mkfs, mount)"; exit 1; }
[ -z "$BEFORE" ] || [ -f "$BEFORE/libs3shim.so" ] || { echo "bench-block-small-cpu: $BEFORE/libs3shim.so missing"; exit 1; }
W=$(mktemp -d "$BASE/s3shim-bench-cpu.XXXXXX")
LOOP=""
MNT=$W/mnt
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
    [ -n "$LOOP" ] && losetup -d "$LOOP"
    rm -rf "$W"
}
trap cleanup EXIT
truncate -s 512M "$W/dev.img" && LOOP=$(losetup -f --show -b 4096 "$W/dev.img") || { echo "no loop device"; exit 1; }
mkdir -p "$W/src/a" "$MNT"
for i in $(seq "$N"); do head -c 4096 /dev/urandom >"$W/src/a/f$i"; done
# the interpreter itself, not a wrapper (pyenv's shim is a bash script that runs a dozen
# programs, under the shim in the block:// arms only: it measured them, not the reads)
PY=$(python3 -c 'import sys; print(sys.executable)')
READ='import os, sys
d = sys.argv[1]
for f in os.listdir(d):
    p = os.path.join(d, f)
    if os.path.isfile(p): open(p, "rb").read()'
echo "# $N files of 4 KiB on $LOOP; $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
# run ARM WHAT CMD...: one measured command; prints CPU ms, wall s and the stats figures
run() {
    local arm=$1 what=$2 out
    shift 2
    out=$({ /usr/bin/time -f "wall %e" perf stat -x, -e task-clock "$@"; } 2>&1)
    printf '%-8s %-6s cpu_ms %8s  %s  metadata_reads %s  kept_root_lookups %s  load %s\n' "$arm" "$what" \
        "$(echo "$out" | grep task-clock | cut -d, -f1)" "$(echo "$out" | grep '^wall' | tail -1)" \
        "$(echo "$out" | sed -n 's/.*), \([0-9]*\) metadata blocks read.*/\1/p' | tail -1)" \
        "$(echo "$out" | sed -n 's/.*, \([0-9]*\) lookups on kept roots.*/\1/p' | tail -1)" "$(cut -d' ' -f1 /proc/loadavg)"
}
arms="ext4 ${BEFORE:+before} after"
for r in $(seq "$ROUNDS"); do
    echo "# round $r of $ROUNDS"
    for arm in $arms; do
        if [ "$arm" = ext4 ]; then
            wipefs -a -q "$LOOP" && mkfs.ext4 -q -F "$LOOP" && mount "$LOOP" "$MNT" || { echo "mkfs/mount failed"; exit 1; }
            run ext4 cp cp -r "$W/src/a" "$MNT/t"
            run ext4 read "$PY" -c "$READ" "$MNT/t"
            umount "$MNT"
            continue
        fi
        local_b=$BUILD
        [ "$arm" = before ] && local_b=$BEFORE
        "$local_b/s3shim" blk format --force "$LOOP" >/dev/null 2>&1 || { echo "format failed"; exit 1; }
        sh_env=(env S3SHIM_STATS=1 S3SHIM_MOUNTS="/cpubench=block://$LOOP" LD_PRELOAD="$local_b/libs3shim.so")
        run "$arm" cp "${sh_env[@]}" cp -r "$W/src/a" /cpubench/t
        run "$arm" read "${sh_env[@]}" "$PY" -c "$READ" /cpubench/t
    done
done
