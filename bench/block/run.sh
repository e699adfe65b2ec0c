#!/usr/bin/env bash
# bench/block/run.sh - block:// against its peers on one loop device, in one run: ext4 and
# XFS (mkfs on the same device) for small files, fio (ioengine=io_uring, direct=1) on the
# raw device for large sequential I/O and 4 KiB random reads. Prints the peer's figure,
# ours and the ratio (ours / peer; above 1 = block:// faster).
#
#   small   create N (20000) files of 4 KiB: `cp -r` of a source tree, and a python loop
#           (open, write, close); then read them all back (python loop, and `cat` of each
#           through find -exec). Files per second. ext4 and XFS as mounted by default
#           (their closes are not durable: the journal commits every 5 s or so), and the
#           same with a `sync` at the end counted in; tmpfs for the writes (no storage at
#           all: what the program itself costs, so the best ratio any store could show);
#           block:// with its default group commit (S3SHIM_BLOCK_COMMIT_MS=1000: durable
#           within 1 s, and at the end of each process), and with every close durable
#           (=0). Reads start cold: the filesystem is unmounted and mounted again, the
#           store's device cache dropped.
#   seq     a 1 GiB object written with `dd bs=1M` and read with `dd bs=1M` and `cat`
#           through the shim, against fio bs=1M iodepth 1 and 4 on the raw device; and
#           copied by `cp` within the store (1 GiB read and 1 GiB written: MB/s of the
#           object, no peer). The device's backing file is written through first.
#   rand    4 KiB random reads: fio ioengine=psync under the shim on the 1 GiB object
#           (JOBS jobs) against fio io_uring iodepth=JOBS on the raw device.
#
# Every arm runs ROUNDS times, the arms alternating (ABAB: the machine is shared); the
# summary takes medians. Needs root (losetup, mkfs, mount), fio, mkfs.ext4, mkfs.xfs.
#
#   BUILD=build bench/block/run.sh        (make bench-block)
#   PARTS="seq" ROUNDS=4 BEFORE=DIR bench/block/run.sh
#           PARTS: which of small, seq, rand run (all three by default); BEFORE: a build
#           directory of another version (its libs3shim.so and s3shim): the seq part runs
#           its block:// arms with it too (and rand its fio under the shim, small its
#           group-commit arm), alternated with this build's ("before:" arms).
set -u
export LC_ALL=C
# shellcheck source=../../tests/preamble.sh
. "$(dirname "$0")/../../tests/preamble.sh" # TOP, BUILD, LIB, TOOL; no S3SHIM_* or LD_PRELOAD
N=${FILES:-20000}
ROUNDS=${ROUNDS:-2}
JOBS=${JOBS:-1}
RUNTIME=${RUNTIME:-5}
PARTS=${PARTS:-small seq rand}
BEFORE=${BEFORE:-}
has() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }
[ -z "$BEFORE" ] || [ -f "$BEFORE/libs3shim.so" ] || { echo "bench-block: $BEFORE/libs3shim.so missing"; exit 1; }
DEV_MB=${DEV_MB:-4096}
BASE=${BENCH_DIR:-/var/tmp}
for c in fio mkfs.ext4 mkfs.xfs losetup; do
    command -v $c >/dev/null || { echo "bench-block: $c is not installed"; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "bench-block: needs root (loop devices, mkfs, mount)"; exit 1; }
[ -f "$LIB" ] || { echo "bench-block: $LIB missing (make)"; exit 1; }
[ "$(stat -f -c %T "$BASE")" != tmpfs ] || { echo "bench-block: $BASE is tmpfs; set BENCH_DIR"; exit 1; }

W=$(mktemp -d "$BASE/s3shim-bench-block.XXXXXX")
LOOP=""
MNT=$W/mnt
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
    [ -n "$LOOP" ] && losetup -d "$LOOP"
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
MP=/s3shim-bench-block-$$
RES=$W/results
: >"$RES"
# the interpreter itself, not a wrapper (pyenv's shim is a bash script that runs a dozen
# programs, under the shim in the block:// arms only)
PY=$(python3 -c 'import sys; print(sys.executable)')

truncate -s "${DEV_MB}M" "$W/dev.img"
# Written through once for the large-object tests: every arm then overwrites blocks the
# backing file has (a first write into a sparse file also pays for its allocation).
has seq && dd if=/dev/zero of="$W/dev.img" bs=1M count="$DEV_MB" conv=notrunc,fsync status=none
LOOP=$(losetup -f --show "$W/dev.img") || exit 1
mkdir -p "$MNT" "$W/src/tree"
echo "# block:// vs ext4, XFS and fio on $LOOP (${DEV_MB} MiB, backed by $BASE: $(stat -f -c %T "$BASE") on $(df --output=source "$BASE" | tail -1))"
echo "# $(nproc) CPUs, kernel $(uname -r), $(fio --version), $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
has small && $PY - "$W/src/tree" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(d, "d%03d" % (i // 1000))
    if i % 1000 == 0: os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%05d" % i), "wb") as f: f.write(os.urandom(4096))
PY

rec() { # LABEL ARM VALUE: one figure
    echo "$1 $2 $3" >>"$RES"
    printf '  %-26s %-22s %12s\n' "$1" "$2" "$3"
}
secs() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

WRITE_PY='
import os, sys
d, n, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(os.path.join(src, "d000", "f00000"), "rb").read()
for i in range(n):
    sub = os.path.join(d, "d%03d" % (i // 1000))
    if i % 1000 == 0: os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%05d" % i), "wb") as f: f.write(data)
'
READ_PY='
import os, sys
n = 0
for root, dirs, files in os.walk(sys.argv[1]):
    for name in files:
        with open(os.path.join(root, name), "rb") as f: n += len(f.read())
assert n == int(sys.argv[2]) * 4096, n
'

# Before an arm starts its clock: nothing dirty left in the system by the arm before
# (an unmount's 80 MB in the loop device's backing file would otherwise be written out
# during the next arm, and by its flushes). Caches are kept: "cold" stays each arm's own.
quiet_disk() { sync; }

# small_fs FS: the small-file tests on a filesystem made on the device
small_fs() {
    local fs=$1 t0 t1 t2
    if [ "$fs" = ext4 ]; then mkfs.ext4 -q -F "$LOOP" >/dev/null; else mkfs.xfs -q -f "$LOOP" >/dev/null; fi
    mount "$LOOP" "$MNT" || return 1
    quiet_disk
    t0=$(secs); cp -r "$W/src/tree" "$MNT/cp"; t1=$(secs); sync -f "$MNT"; t2=$(secs)
    rec small-cp-r "$fs" "$(rate "$N" "$t0" "$t1")"
    rec small-cp-r "$fs+sync" "$(rate "$N" "$t0" "$t2")"
    t0=$(secs); $PY -c "$WRITE_PY" "$MNT/py" "$N" "$W/src/tree"; t1=$(secs); sync -f "$MNT"; t2=$(secs)
    rec small-py-write "$fs" "$(rate "$N" "$t0" "$t1")"
    rec small-py-write "$fs+sync" "$(rate "$N" "$t0" "$t2")"
    umount "$MNT" && mount "$LOOP" "$MNT" # cold
    t0=$(secs); $PY -c "$READ_PY" "$MNT/py" "$N"; t1=$(secs)
    rec small-py-read "$fs" "$(rate "$N" "$t0" "$t1")"
    t0=$(secs); find "$MNT/cp" -type f -exec cat {} + | wc -c >/dev/null; t1=$(secs)
    rec small-cat "$fs" "$(rate "$N" "$t0" "$t1")"
    umount "$MNT"
}

# small_tmpfs: the write tests on tmpfs, no storage at all: the most any store can give
# these programs (what the program itself costs per file), so the ceiling of the ratio
small_tmpfs() {
    local t0 t1
    mount -t tmpfs -o size=1g tmpfs "$MNT" || return 1
    quiet_disk
    t0=$(secs); cp -r "$W/src/tree" "$MNT/cp"; t1=$(secs)
    rec small-cp-r tmpfs "$(rate "$N" "$t0" "$t1")"
    t0=$(secs); $PY -c "$WRITE_PY" "$MNT/py" "$N" "$W/src/tree"; t1=$(secs)
    rec small-py-write tmpfs "$(rate "$N" "$t0" "$t1")"
    umount "$MNT"
}

shim() { env S3SHIM_MOUNTS="$MP=block://$LOOP" LD_PRELOAD="${SLIB:-$LIB}" "$@"; }

# small_blk MS [BUILD-DIR PREFIX]: the same on a block:// store, S3SHIM_BLOCK_COMMIT_MS=MS,
# with that build's library (this one's by default)
small_blk() {
    local ms=$1 arm="${3:-}block://" t0 t1 SLIB=${2:-$BUILD}/libs3shim.so
    [ "$ms" = 0 ] && arm="${3:-}block://,durable-close"
    "${2:-$BUILD}/s3shim" blk format --force "$LOOP" >/dev/null || return 1
    quiet_disk
    t0=$(secs); S3SHIM_BLOCK_COMMIT_MS=$ms shim cp -r "$W/src/tree" "$MP/cp"; t1=$(secs)
    rec small-cp-r "$arm" "$(rate "$N" "$t0" "$t1")"
    t0=$(secs); S3SHIM_BLOCK_COMMIT_MS=$ms shim $PY -c "$WRITE_PY" "$MP/py" "$N" "$W/src/tree"; t1=$(secs)
    rec small-py-write "$arm" "$(rate "$N" "$t0" "$t1")"
    blockdev --flushbufs "$LOOP" # cold: the index comes from the device again
    t0=$(secs); shim $PY -c "$READ_PY" "$MP/py" "$N"; t1=$(secs)
    rec small-py-read "$arm" "$(rate "$N" "$t0" "$t1")"
    t0=$(secs); shim find "$MP/cp" -type f -exec cat {} + | wc -c >/dev/null; t1=$(secs)
    rec small-cat "$arm" "$(rate "$N" "$t0" "$t1")"
    "$TOOL" blk check "$LOOP" >"$W/check" 2>&1 || { echo "# check after the small-file test:"; cat "$W/check"; }
}

fio_common=(--output-format=json --group_reporting --norandommap --randrepeat=0 --invalidate=0)
fio_fig() { # JSON-FILE bw|iops
    $PY -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"]
rw = "write" if any(x["write"]["io_bytes"] for x in j) else "read"
print("%.1f" % (sum(x[rw]["iops"] for x in j) if sys.argv[2] == "iops" else sum(x[rw]["bw_bytes"] for x in j) / 1e6))' "$1" "$2"
}
dd_fig() { awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "copied,") s = $(i + 1); printf "%.1f\n", $1 / s / 1e6 }' "$1"; }

# Before each write arm: nothing left dirty by the arm before (the loop device's backing
# file goes through the host's page cache; its writeback would land on the next arm).
settle() { sync "$W/dev.img"; }

seq_fio() {
    settle
    fio --name=sw --filename="$LOOP" --rw=write --bs=1M --ioengine=io_uring --direct=1 --iodepth=1 --size=1G \
        "${fio_common[@]}" >"$W/fio.json" && rec seq-write-MB/s fio-qd1 "$(fio_fig "$W/fio.json" bw)"
    fio --name=sr --filename="$LOOP" --rw=read --bs=1M --ioengine=io_uring --direct=1 --iodepth=1 --size=1G \
        "${fio_common[@]}" >"$W/fio.json" && rec seq-read-MB/s fio-qd1 "$(fio_fig "$W/fio.json" bw)"
    fio --name=sr --filename="$LOOP" --rw=read --bs=1M --ioengine=io_uring --direct=1 --iodepth=4 --size=1G \
        "${fio_common[@]}" >"$W/fio.json" && rec seq-read-MB/s fio-qd4 "$(fio_fig "$W/fio.json" bw)"
}

# seq_blk BUILD-DIR PREFIX: a 1 GiB object written with dd bs=1M, read with dd bs=1M and
# cat (128 KiB reads), on a store formatted afresh, with that build's library
seq_blk() {
    local lib=$1/libs3shim.so tool=$1/s3shim p=$2 t0 t1
    "$tool" blk format --force "$LOOP" >/dev/null || return 1
    settle
    env S3SHIM_MOUNTS="$MP=block://$LOOP" LD_PRELOAD="$lib" dd if=/dev/zero of="$MP/big" bs=1M count=1024 2>"$W/dd" &&
        rec seq-write-MB/s "${p}block://dd" "$(dd_fig "$W/dd")"
    env S3SHIM_MOUNTS="$MP=block://$LOOP" LD_PRELOAD="$lib" dd if="$MP/big" of=/dev/null bs=1M 2>"$W/dd" &&
        rec seq-read-MB/s "${p}block://dd" "$(dd_fig "$W/dd")"
    t0=$(secs); env S3SHIM_MOUNTS="$MP=block://$LOOP" LD_PRELOAD="$lib" cat "$MP/big" >/dev/null; t1=$(secs)
    rec seq-read-MB/s "${p}block://cat" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", 1073741824 / (b - a) / 1e6 }')"
    t0=$(secs); env S3SHIM_MOUNTS="$MP=block://$LOOP" LD_PRELOAD="$lib" cp "$MP/big" "$MP/big2"; t1=$(secs)
    rec seq-copy-MB/s "${p}block://cp" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", 1073741824 / (b - a) / 1e6 }')"
    env S3SHIM_MOUNTS="$MP=block://$LOOP" LD_PRELOAD="$lib" rm -f "$MP/big2"
}

seq_all() { # fio, this build and BEFORE's, in an order that turns round by round
    if [ $(($1 % 2)) = 1 ]; then
        seq_fio; seq_blk "$BUILD" ""; [ -n "$BEFORE" ] && seq_blk "$BEFORE" before:
    else
        [ -n "$BEFORE" ] && seq_blk "$BEFORE" before:; seq_blk "$BUILD" ""; seq_fio
    fi
    return 0
}

# rand_blk BUILD-DIR PREFIX: fio psync under that build's shim on a 1 GiB object
rand_blk() {
    local lib=$1/libs3shim.so p=$2
    env S3SHIM_MOUNTS="$MP=block://$LOOP" LD_PRELOAD="$lib" fio --name=rr --filename="$MP/big" --rw=randread --bs=4k \
        --ioengine=psync --direct=0 --mem_align=4096 --numjobs="$JOBS" --size=1G --runtime="$RUNTIME" --time_based \
        "${fio_common[@]}" >"$W/fio.json" && rec rand-read-IOPS "${p}block://fio-psync-x$JOBS" "$(fio_fig "$W/fio.json" iops)"
}

rand() {
    fio --name=rr --filename="$LOOP" --rw=randread --bs=4k --ioengine=io_uring --direct=1 --iodepth="$JOBS" \
        --size=1G --runtime="$RUNTIME" --time_based "${fio_common[@]}" >"$W/fio.json" &&
        rec rand-read-IOPS "fio-uring-qd$JOBS" "$(fio_fig "$W/fio.json" iops)"
    "$TOOL" blk format --force "$LOOP" >/dev/null || return 1
    shim dd if=/dev/zero of="$MP/big" bs=1M count=1024 2>/dev/null || return 1
    if [ $(($1 % 2)) = 1 ]; then
        rand_blk "$BUILD" ""; [ -n "$BEFORE" ] && rand_blk "$BEFORE" before:
    else
        [ -n "$BEFORE" ] && rand_blk "$BEFORE" before:; rand_blk "$BUILD" ""
    fi
    return 0
}

for round in $(seq 1 "$ROUNDS"); do
    echo "# round $round of $ROUNDS (load $(cut -d' ' -f1-3 /proc/loadavg))"
    if ! has small; then
        :
    elif [ $((round % 2)) = 1 ]; then
        small_fs ext4; small_blk 1000; [ -n "$BEFORE" ] && small_blk 1000 "$BEFORE" before:
        small_fs xfs; small_blk 0; small_tmpfs
    else
        [ -n "$BEFORE" ] && small_blk 1000 "$BEFORE" before:
        small_tmpfs; small_blk 1000; small_fs ext4; small_blk 0; small_fs xfs
    fi
    has seq && seq_all "$round"
    has rand && rand "$round"
done

echo "# medians of $ROUNDS rounds; ratio = block:// / peer"
JOBS=$JOBS $PY - "$RES" <<'PY'
import sys, statistics
from collections import defaultdict
v = defaultdict(list)
for line in open(sys.argv[1]):
    t, arm, x = line.split()
    v[(t, arm)].append(float(x))
m = {k: statistics.median(x) for k, x in v.items()}
def row(test, peer, ours, goal=""):
    if (test, peer) in m and (test, ours) in m:
        p, o = m[(test, peer)], m[(test, ours)]
        print("%-16s %-16s %10.0f  %-24s %10.0f  ratio %5.2f %s" % (test, peer, p, ours, o, o / p if p else 0, goal))
for t in ("small-cp-r", "small-py-write"):
    row(t, "ext4", "block://", "(goal >= 1.5)")
    row(t, "ext4+sync", "block://")
    row(t, "xfs", "block://")
    row(t, "ext4", "block://,durable-close")
    row(t, "ext4", "tmpfs", "(no storage: the ceiling of the ratio)")
    row(t, "tmpfs", "block://")
for t in ("small-py-read", "small-cat"):
    row(t, "ext4", "block://", "(goal >= 1.5)")
    row(t, "xfs", "block://")
for t in ("small-cp-r", "small-py-write", "small-py-read", "small-cat"):
    row(t, "ext4", "before:block://")
    row(t, "before:block://", "block://", "(after / before)")
row("seq-write-MB/s", "fio-qd1", "block://dd", "(goal >= 0.95)")
row("seq-read-MB/s", "fio-qd1", "block://dd", "(goal >= 0.95)")
row("seq-read-MB/s", "fio-qd4", "block://dd")
row("seq-read-MB/s", "fio-qd1", "block://cat", "(goal >= 0.95)")
for t, a in (("seq-write-MB/s", "dd"), ("seq-read-MB/s", "dd"), ("seq-read-MB/s", "cat"), ("seq-copy-MB/s", "cp")):
    row(t, "fio-qd1", "before:block://" + a)
    row(t, "before:block://" + a, "block://" + a, "(after / before)")
import os
j = os.environ.get("JOBS", "1")
row("rand-read-IOPS", "fio-uring-qd" + j, "block://fio-psync-x" + j, "(goal >= 0.90)")
row("rand-read-IOPS", "fio-uring-qd" + j, "before:block://fio-psync-x" + j)
row("rand-read-IOPS", "before:block://fio-psync-x" + j, "block://fio-psync-x" + j, "(after / before)")
PY
