#!/usr/bin/env bash
# bench/direct/run.sh - direct:// against fio (ioengine=io_uring, direct=1) on the same
# 2 GiB file and on a loop device, in one run. Prints fio's figure, ours, the ratio and
# CPU seconds per GB (user+sys of the whole process, /usr/bin/time) for each test:
#
#   seqread   1 MiB sequential read: `cat FILE >/dev/null` through the shim (it reads
#             1 MiB at a time: st_blksize; DEPTH chunks in flight) vs fio io_uring bs=1M
#             at iodepth 1 and 4; `dd bs=1M` through the shim is shown too (its if= is
#             fd 0, which the shim serves through a pipe, see docs/semantics.md "Standard streams");
#   randread  4 KiB random reads: fio itself under the shim (ioengine=psync, JOBS jobs, on
#             the mount path) vs fio io_uring at iodepth JOBS (same total concurrency);
#             fio io_uring at iodepth 1 in JOBS jobs (one ring per thread, one
#             io_uring_enter per read) and fio psync direct=1 without the shim (one
#             pread per read: what the shim does for a program that waits for each read)
#             are shown as references;
#             fio's own io_uring engine (iodepth JOBS, direct=1) under the shim is the
#             last row: its requests reach the file without the engine (docs/semantics.md,
#             "Asynchronous I/O");
#   seqwrite  1 MiB sequential overwrite: fio under the shim (psync, bs=1M, one job) vs
#             fio io_uring bs=1M iodepth 1; `dd bs=1M conv=notrunc` through the shim is
#             shown too (its of= is fd 1: a pipe again).
#
# Needs root for the loop device (its section is skipped otherwise). Environment:
# BUILD (build), BENCH_DIR (where the file and the loop image live; default /var/tmp,
# must not be tmpfs), SIZE_MB (2048), RUNTIME (random-read seconds, 5), JOBS (4), ROUNDS (3:
# every test runs ROUNDS times, fio and ours alternating; the summary takes medians, since
# a VM's disk varies a lot from one second to the next).
#
# fio under the shim runs with direct=0 (the shim does the O_DIRECT) and --mem_align=4096:
# fio aligns its buffers to pages by itself only with direct=1, and a program's aligned
# buffer is what lets the shim read and write it in place.
set -u
export LC_ALL=C
# shellcheck source=../../tests/preamble.sh
. "$(dirname "$0")/../../tests/preamble.sh" # TOP, BUILD, LIB, TOOL; no S3SHIM_* or LD_PRELOAD
SIZE_MB=${SIZE_MB:-2048}
RUNTIME=${RUNTIME:-5}
ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-4}
BASE=${BENCH_DIR:-/var/tmp}
command -v fio >/dev/null || { echo "bench-direct: fio is not installed (make deps)"; exit 1; }
[ -f "$LIB" ] || { echo "bench-direct: $LIB missing (make)"; exit 1; }
[ "$(stat -f -c %T "$BASE")" != tmpfs ] || { echo "bench-direct: $BASE is tmpfs; set BENCH_DIR"; exit 1; }

W=$(mktemp -d "$BASE/s3shim-bench-direct.XXXXXX")
LOOP=""
cleanup() {
    [ -n "$LOOP" ] && losetup -d "$LOOP"
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MP=/s3shim-bench-$$
T=$W/time
RES=$W/results

# run LABEL TARGET KIND(fio|dd) METRIC(bw|iops|-) CMD...: time CMD, record wall/user/sys
# and the figure (MB/s or IOPS) it reports.
run() {
    local label=$1 target=$2 kind=$3 metric=$4
    shift 4
    /usr/bin/time -f "%e %U %S" -o "$T" "$@" >"$W/out" 2>"$W/err"
    local rc=$?
    read -r wall usr sys <"$T"
    local fig bytes
    if [ $rc != 0 ]; then
        echo "# $label on $target failed (exit $rc):" >&2
        head -5 "$W/err" "$W/out" >&2
        fig=0 bytes=1
    elif [ "$kind" = fio ]; then
        read -r fig bytes < <(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"]
rw = "write" if any(x["write"]["io_bytes"] for x in j) else "read"
b = sum(x[rw]["io_bytes"] for x in j)
iops = sum(x[rw]["iops"] for x in j)
bw = sum(x[rw]["bw_bytes"] for x in j)
print("%.1f" % (iops if sys.argv[2] == "iops" else bw / 1e6), b)' "$W/out" "$metric")
    elif [ "$kind" = cat ]; then # a whole file or device read: its size over the wall time
        bytes=$metric
        fig=$(awk -v b="$bytes" -v w="$wall" 'BEGIN { printf "%.1f", b / w / 1e6 }')
    else # dd: "N bytes (...) copied, S s, ..." on stderr
        read -r fig bytes < <(awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "copied,") s = $(i + 1); printf "%.1f %d\n", $1 / s / 1e6, $1 }' "$W/err")
    fi
    local cpu
    cpu=$(awk -v u="$usr" -v s="$sys" -v b="$bytes" 'BEGIN { printf "%.3f", (u + s) / (b / 1e9) }')
    printf '%s %s %s %s %s %s %s\n' "$label" "$target" "$fig" "$cpu" "$wall" "$usr" "$sys" >>"$RES"
    printf '  %-28s %-6s %12s  cpu %6s s/GB  (wall %s s, user %s s, sys %s s)\n' "$label" "$target" "$fig" "$cpu" "$wall" "$usr" "$sys"
}

fio_common=(--output-format=json --group_reporting --norandommap --randrepeat=0 --invalidate=0)

bench_target() { # TARGET-NAME REAL-PATH SHIM-MOUNTS SHIM-PATH
    local tn=$1 real=$2 mounts=$3 sp=$4
    echo "== $tn: $real (through the shim: $sp)"
    run "fio-seqread-qd1" "$tn" fio bw fio --name=sr --filename="$real" --rw=read --bs=1M --ioengine=io_uring --direct=1 \
        --iodepth=1 --size="${SIZE_MB}M" "${fio_common[@]}"
    run "fio-seqread-qd4" "$tn" fio bw fio --name=sr --filename="$real" --rw=read --bs=1M --ioengine=io_uring --direct=1 \
        --iodepth=4 --size="${SIZE_MB}M" "${fio_common[@]}"
    run "shim-cat-seqread" "$tn" cat $((SIZE_MB << 20)) env S3SHIM_MOUNTS="$mounts" LD_PRELOAD="$LIB" \
        bash -c 'exec cat "$0" >/dev/null' "$sp"
    run "shim-dd-seqread" "$tn" dd - env S3SHIM_MOUNTS="$mounts" LD_PRELOAD="$LIB" dd if="$sp" of=/dev/null bs=1M \
        count="$SIZE_MB" iflag=fullblock
    run "fio-randread-uring-qd$JOBS" "$tn" fio iops fio --name=rr --filename="$real" --rw=randread --bs=4k \
        --ioengine=io_uring --direct=1 --iodepth="$JOBS" --size="${SIZE_MB}M" --runtime="$RUNTIME" --time_based \
        "${fio_common[@]}"
    run "fio-randread-uring-qd1-x$JOBS" "$tn" fio iops fio --name=rr --filename="$real" --rw=randread --bs=4k \
        --ioengine=io_uring --direct=1 --iodepth=1 --numjobs="$JOBS" --size="${SIZE_MB}M" --runtime="$RUNTIME" \
        --time_based "${fio_common[@]}"
    run "fio-randread-psync-x$JOBS" "$tn" fio iops fio --name=rr --filename="$real" --rw=randread --bs=4k \
        --ioengine=psync --direct=1 --numjobs="$JOBS" --size="${SIZE_MB}M" --runtime="$RUNTIME" --time_based \
        "${fio_common[@]}"
    run "shim-fio-psync-x$JOBS" "$tn" fio iops env S3SHIM_MOUNTS="$mounts" LD_PRELOAD="$LIB" fio --name=rr \
        --filename="$sp" --rw=randread --bs=4k --ioengine=psync --direct=0 --mem_align=4096 --numjobs="$JOBS" --size="${SIZE_MB}M" \
        --runtime="$RUNTIME" --time_based "${fio_common[@]}"
    run "shim-fio-uring-qd$JOBS" "$tn" fio iops env S3SHIM_MOUNTS="$mounts" LD_PRELOAD="$LIB" fio --name=rr \
        --filename="$sp" --rw=randread --bs=4k --ioengine=io_uring --direct=1 --iodepth="$JOBS" --size="${SIZE_MB}M" \
        --runtime="$RUNTIME" --time_based "${fio_common[@]}"
    run "fio-seqwrite-qd1" "$tn" fio bw fio --name=sw --filename="$real" --rw=write --bs=1M --ioengine=io_uring \
        --direct=1 --iodepth=1 --size="${SIZE_MB}M" "${fio_common[@]}"
    run "shim-fio-psync-seqwrite" "$tn" fio bw env S3SHIM_MOUNTS="$mounts" LD_PRELOAD="$LIB" fio --name=sw \
        --filename="$sp" --rw=write --bs=1M --ioengine=psync --direct=0 --mem_align=4096 --size="${SIZE_MB}M" "${fio_common[@]}"
    run "shim-dd-seqwrite" "$tn" dd - env S3SHIM_MOUNTS="$mounts" LD_PRELOAD="$LIB" dd if=/dev/zero of="$sp" bs=1M \
        count="$SIZE_MB" conv=notrunc
}

echo "# direct:// vs fio $(fio --version), $(nproc) CPUs, kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# backing: $BASE is $(stat -f -c %T "$BASE") on $(df --output=source "$BASE" | tail -1); load $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$RES"
echo "# writing the ${SIZE_MB} MiB file"
dd if=/dev/urandom of="$W/data.bin" bs=1M count="$SIZE_MB" status=none oflag=direct
mkdir -p "$W/d" && mv "$W/data.bin" "$W/d/data.bin"
for round in $(seq 1 "$ROUNDS"); do
    echo "# round $round of $ROUNDS"
    bench_target file "$W/d/data.bin" "$MP=direct://$W/d" "$MP/data.bin"
done

if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
    cp --sparse=never "$W/d/data.bin" "$W/dev.img"
    rm -f "$W/d/data.bin"
    if LOOP=$(losetup -f --show --direct-io=on "$W/dev.img"); then
        echo "# loop device $LOOP over $W/dev.img, direct I/O to the backing file, $(blockdev --getss "$LOOP")-byte sectors"
        for round in $(seq 1 "$ROUNDS"); do
            echo "# round $round of $ROUNDS"
            bench_target loop "$LOOP" "$MP=direct:///dev" "$MP/${LOOP#/dev/}"
        done
    fi
else
    echo "# loop device section skipped (needs root and losetup)"
fi

echo
echo "== summary: medians of $ROUNDS rounds (ratio = ours / fio; cpu x = ours / fio CPU s/GB)"
python3 - "$RES" "$JOBS" <<'PY'
import sys
import statistics
runs = {}
for line in open(sys.argv[1]):
    label, target, fig, cpu, *_ = line.split()
    runs.setdefault((label, target), []).append((float(fig), float(cpu)))
rows = {k: (statistics.median(f for f, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
jobs = sys.argv[2]
tests = [("1 MiB seq read (MB/s): cat vs fio qd4", "fio-seqread-qd4", "shim-cat-seqread", 0.95),
         ("1 MiB seq read (MB/s): cat vs fio qd1", "fio-seqread-qd1", "shim-cat-seqread", 0.95),
         ("1 MiB seq read (MB/s): dd (fd 0 pipe) vs fio qd4", "fio-seqread-qd4", "shim-dd-seqread", 0.95),
         ("4 KiB rand read (IOPS), vs fio io_uring qd%s" % jobs, "fio-randread-uring-qd%s" % jobs, "shim-fio-psync-x%s" % jobs, 0.90),
         ("4 KiB rand read (IOPS), vs fio io_uring qd1 x%s" % jobs, "fio-randread-uring-qd1-x%s" % jobs, "shim-fio-psync-x%s" % jobs, 0.90),
         ("4 KiB rand read (IOPS), vs fio psync x%s direct=1" % jobs, "fio-randread-psync-x%s" % jobs, "shim-fio-psync-x%s" % jobs, 0.90),
         ("4 KiB rand read (IOPS), fio io_uring qd%s itself under the shim" % jobs, "fio-randread-uring-qd%s" % jobs, "shim-fio-uring-qd%s" % jobs, 0.90),
         ("1 MiB seq write (MB/s): fio psync vs fio qd1", "fio-seqwrite-qd1", "shim-fio-psync-seqwrite", 0.95),
         ("1 MiB seq write (MB/s): dd (fd 1 pipe) vs fio qd1", "fio-seqwrite-qd1", "shim-dd-seqwrite", 0.95)]
print("%-52s %-5s %10s %10s %6s %5s %9s %9s %6s" % ("test", "on", "fio", "ours", "ratio", "goal", "fio s/GB", "our s/GB", "cpu x"))
for target in ("file", "loop"):
    for name, f, o, goal in tests:
        if (f, target) not in rows or (o, target) not in rows: continue
        (ff, fc), (of, oc) = rows[(f, target)], rows[(o, target)]
        r = of / ff if ff else 0
        cr = oc / fc if fc else 0
        print("%-52s %-5s %10.1f %10.1f %6.2f %5s %9.3f %9.3f %6.2f %s" % (name, target, ff, of, r, ">=%.2f" % goal, fc, oc, cr,
              "" if r >= goal and cr <= 1.1 else "(goal not met)"))
PY
