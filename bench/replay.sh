#!/usr/bin/env bash
# bench/replay.sh - `s3shim replay` against fio replaying the same trace (make bench-replay;
# about 1 minute). A run of `tar xf` (600 files of 4 to 64 KiB, flat) + `sha256sum` of
# them is recorded on a file:// mount, then replayed as fast as possible:
#   fio:    fio --read_iolog of `s3shim oplog --fio` (paths rewritten to a real directory),
#           --replay_no_stall=1, psync: one job, reads, writes, opens and closes only;
#   replay: s3shim replay --asap on file://: every op (stat, mkdir, utimens too), one
#           worker per recorded thread, the order across threads kept, under the shim.
# Both under `s3shim ab` (alternated in random order, 10 runs each, the outputs of the
# second arm's `tar` tree removed before each run); the peer is the first arm, so the ratio
# is replay / fio. Then the replay at --speed 1: how late its ops were issued.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
S3SHIM=$BUILD/s3shim
command -v fio > /dev/null || { echo "bench/replay.sh: fio is not installed (make deps)"; exit 1; }
W=$(mktemp -d /var/tmp/s3shim-bench-replay.XXXXXX)
trap 'rm -rf "$W"' EXIT
unset S3SHIM_OPLOG S3SHIM_ROOT_PID S3SHIM_MOUNTS
MP=/s3shim-bench-replay/m
mkdir -p "$W/src" "$W/rec/out" "$W/log" "$W/f/out" "$W/r"
for i in $(seq 1 600); do head -c $(( (i * 7919 % 61 + 4) * 1024 )) /dev/urandom > "$W/src/f$i.dat"; done
tar cf "$W/rec/src.tar" -C "$W/src" .
S3SHIM_OPLOG="$W/log/" "$S3SHIM" run --mount "$MP=file://$W/rec" -- \
    sh -c "tar xf $MP/src.tar -C $MP/out && cd $MP/out && sha256sum *.dat > /dev/null" || exit 1
"$S3SHIM" oplog "$W/log" --summary | head -1
"$S3SHIM" oplog "$W/log" --fio - | sed "s#$MP/#$W/f/#" > "$W/trace.iolog"
cp "$W/rec/src.tar" "$W/f/src.tar"
echo "fio trace: $(grep -c ' read \| write ' "$W/trace.iolog") reads and writes"

echo; echo "replay as fast as possible: fio (the peer) against s3shim replay --asap"
# The arm decides the command (AB_ARM); the second arm's tree is put back by its set-up.
TMPDIR=$W "$S3SHIM" ab --runs 10 --warmup 1 --seed 11 \
    --arm fio="/s3shim-bench-unused=file://$W/f" --arm replay="$MP=file://$W/r" --env fio=S3SHIM_OPLOG= --env replay=S3SHIM_OPLOG= \
    --setup "rm -rf $W/f/out && mkdir $W/f/out && if [ \"\$AB_ARM\" = replay ]; then $S3SHIM replay $W/log --prepare-only 2>/dev/null; fi" \
    -- sh -c "if [ \"\$AB_ARM\" = fio ]; then fio --name=r --read_iolog=$W/trace.iolog --replay_no_stall=1 --ioengine=psync > /dev/null; \
              else $S3SHIM replay $W/log --asap > /dev/null 2>&1; fi" 2> "$W/ab.err"
grep -i "differ\|error" "$W/ab.err"

echo; echo "the replay at --speed 1 (3 runs): how late its ops were issued"
for i in 1 2 3; do
    "$S3SHIM" replay "$W/log" --mount "$MP=file://$W/r" --prepare 2>&1 > /dev/null | grep -v prepare
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
