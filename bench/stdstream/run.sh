#!/usr/bin/env bash
# bench/stdstream/run.sh - a shim file on fd 0 or fd 1 (shell redirections, dd's if= and
# of=) against the same program given the path as an argument, and against fio, on
# file://, direct:// (a file on BENCH_DIR; a loop device too when root) and S3 (the rig's
# Swift, or AWS_ENDPOINT_URL). One run, arms alternated in each round (ABAB), medians.
#
#   read   dd if=PATH of=/dev/null bs=1M   dd puts if= on fd 0 itself; against cat PATH
#          sh: cat < PATH                  the shell's redirection: fd 0; against
#          sh: cat PATH                    the path as an argument (fd 3), from the same
#                                          shell (bash -c 'exec ...': the shell's start
#                                          and the exec are in both arms)
#          fio io_uring direct=1 bs=1M qd1 (local backends only)
#   write  dd if=SRC of=PATH bs=1M         dd puts of= on fd 1 itself; against cp
#          sh: cat SRC > PATH              fd 1 from the shell; against
#          sh: cp SRC PATH                 the path as an argument, from the same shell
#          fio io_uring direct=1 bs=1M qd1 write (local backends only)
# Each figure is MB/s over the whole process (wall clock; fio's own figure for fio) and
# CPU seconds (user+sys of the whole process) per GB. BASE_LIB=path/to/an/older/libs3shim.so adds the same shim arms with that library
# (before/after in one run). Environment: BUILD (build), BENCH_DIR (/var/tmp; not tmpfs),
# SIZE_MB (1024; S3 uses S3_SIZE_MB, 256), ROUNDS (3), BENCH_S3 (1; 0 skips S3),
# LOOP_TMPFS (0; 1 puts the loop device's image in /dev/shm: a device whose speed does
# not depend on the VM host's cache, which on some machines doubles fio's figure from
# one run to the next), ONLY_LOOP (0; 1 runs the loop device's arms only).
set -u
export LC_ALL=C
# shellcheck source=../../tests/preamble.sh
. "$(dirname "$0")/../../tests/preamble.sh"
SIZE_MB=${SIZE_MB:-1024}
S3_SIZE_MB=${S3_SIZE_MB:-256}
ROUNDS=${ROUNDS:-3}
BASE=${BENCH_DIR:-/var/tmp}
[ -f "$LIB" ] || { echo "bench-stdstream: $LIB missing (make)"; exit 1; }
[ "$(stat -f -c %T "$BASE")" != tmpfs ] || { echo "bench-stdstream: $BASE is tmpfs; set BENCH_DIR"; exit 1; }
command -v fio >/dev/null || { echo "bench-stdstream: fio is not installed (make deps)"; exit 1; }
W=$(mktemp -d "$BASE/s3shim-bench-std.XXXXXX")
LOOP=""
cleanup() {
    [ -n "$LOOP" ] && losetup -d "$LOOP"
    rm -rf "$W" "/dev/shm/s3shim-bench-std-$$.img"
    declare -F s3rig_env_cleanup >/dev/null && s3rig_env_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cp "$LIB" "$W/new.so" # a snapshot: a rebuild meanwhile changes nothing
LIBS=(new)
if [ -n "${BASE_LIB:-}" ]; then
    cp "$BASE_LIB" "$W/base.so" && LIBS=(base new)
fi
RES=$W/results
: >"$RES"
MP=/s3shim-bench-std-$$

# one BACKEND ARM BYTES CMD...: time CMD, append "backend arm MB/s cpu-s/GB" to RES
one() {
    local be=$1 arm=$2 bytes=$3
    shift 3
    sync # the previous arm's dirty pages are written back now, not during this arm
    # Wall time in nanoseconds (time's %e has 10 ms steps: a 1 GiB read from the page
    # cache takes 70-130 ms, so MB/s moved in steps of 10-15%); CPU from time's %U %S.
    local t0 t1
    t0=$(date +%s%N)
    if ! /usr/bin/time -f "%e %U %S" -o "$W/time" "$@" >/dev/null 2>"$W/err"; then
        echo "# $be $arm failed:" >&2
        head -5 "$W/err" >&2
        return
    fi
    t1=$(date +%s%N)
    local wall usr sys
    read -r wall usr sys <"$W/time"
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
    if [ "$1" = fio ]; then # fio's own figure: its start-up is not part of the transfer
        wall=$(python3 -c 'import json, sys; j = json.load(open(sys.argv[1]))["jobs"][0]
x = j["read"] if j["read"]["io_bytes"] else j["write"]
print(x["io_bytes"] / x["bw_bytes"])' "$W/fio.json")
    fi
    awk -v be="$be" -v arm="$arm" -v b="$bytes" -v w="$wall" -v u="$usr" -v s="$sys" \
        'BEGIN { printf "%s %s %.1f %.3f\n", be, arm, b / w / 1e6, (u + s) / (b / 1e9) }' | tee -a "$RES"
}

# arms NAME...: run the arms named (functions arm_NAME) in an order turned by the round
# number RN, so that a stall of the machine that recurs every few runs (see the summary)
# does not land on the same arm in every round.
arms() {
    local n=$# i
    local a=("$@")
    for ((i = 0; i < n; i++)); do "arm_${a[$(((i + RN) % n))]}"; done
}

# round BACKEND MOUNTS PATH(under the shim) OUT(under the shim) SRC(real) BYTES [FIO-READ FIO-WRITE]
round() {
    local be=$1 mounts=$2 p=$3 out=$4 src=$5 bytes=$6 fr=${7:-} fw=${8:-} l sh
    arm_ddin() { one "$be" "$l:dd-if(fd0)" "$bytes" "${sh[@]}" dd if="$p" of=/dev/null bs=1M; }
    arm_cat() { one "$be" "$l:cat-path" "$bytes" "${sh[@]}" cat "$p"; }
    arm_shin() { one "$be" "$l:sh:cat<path(fd0)" "$bytes" "${sh[@]}" bash -c 'exec cat < "$0"' "$p"; }
    arm_shcat() { one "$be" "$l:sh:cat-path" "$bytes" "${sh[@]}" bash -c 'exec cat "$0"' "$p"; }
    arm_ddout() { one "$be" "$l:dd-of(fd1)" "$bytes" "${sh[@]}" dd if="$src" of="$out" bs=1M; }
    arm_cp() { one "$be" "$l:cp-path" "$bytes" "${sh[@]}" cp "$src" "$out"; }
    arm_shout() { one "$be" "$l:sh:cat>path(fd1)" "$bytes" "${sh[@]}" bash -c 'exec cat "$1" > "$0"' "$out" "$src"; }
    arm_shcp() { one "$be" "$l:sh:cp-path" "$bytes" "${sh[@]}" bash -c 'exec cp "$1" "$0"' "$out" "$src"; }
    for l in "${LIBS[@]}"; do
        sh=(env S3SHIM_MOUNTS="$mounts" LD_PRELOAD="$W/$l.so")
        arms ddin cat shin shcat
    done
    [ -n "$fr" ] && one "$be" "fio-read-qd1" "$bytes" fio --name=r --filename="$fr" --rw=read --bs=1M \
        --ioengine=io_uring --direct=1 --iodepth=1 --size="$bytes" --invalidate=0 --output-format=json --output="$W/fio.json"
    for l in "${LIBS[@]}"; do
        sh=(env S3SHIM_MOUNTS="$mounts" LD_PRELOAD="$W/$l.so")
        arms ddout cp shout shcp
    done
    [ -n "$fw" ] && one "$be" "fio-write-qd1" "$bytes" fio --name=w --filename="$fw" --rw=write --bs=1M \
        --ioengine=io_uring --direct=1 --iodepth=1 --size="$bytes" --output-format=json --output="$W/fio.json"
    return 0
}

echo "# stdstream bench: $(nproc) CPUs, kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# libraries: ${LIBS[*]} (base: ${BASE_LIB:-none}); $BASE is $(stat -f -c %T "$BASE")"
mkdir -p "$W/d"
dd if=/dev/urandom of="$W/d/in.bin" bs=1M count="$SIZE_MB" status=none oflag=direct
head -c $((SIZE_MB << 20)) "$W/d/in.bin" >"$W/src.bin"
BYTES=$((SIZE_MB << 20))
for r in $(seq 1 "$ROUNDS"); do
    [ "${ONLY_LOOP:-0}" = 1 ] && break
    RN=$r
    echo "# round $r of $ROUNDS"
    round file "$MP=file://$W/d" "$MP/in.bin" "$MP/out.bin" "$W/src.bin" "$BYTES"
    round direct "$MP=direct://$W/d" "$MP/in.bin" "$MP/out.bin" "$W/src.bin" "$BYTES" "$W/d/in.bin" "$W/d/fio-w.bin"
done
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
    img=$W/dev.img dio=(--direct-io=on)
    if [ "${LOOP_TMPFS:-0}" = 1 ]; then img=/dev/shm/s3shim-bench-std-$$.img dio=(); fi
    cp "$W/d/in.bin" "$img"
    if LOOP=$(losetup -f --show "${dio[@]}" "$img"); then
        echo "# loop device $LOOP (reads only: writing it would need a second device)"
        # (order turned every round as for the other backends: fio always last read
        # 2.2-6.5 GB/s against our 1.7-2.6 in one run, the device's host cache warm)
        arm_lfio() {
            one loop "fio-read-qd1" "$BYTES" fio --name=r --filename="$LOOP" --rw=read --bs=1M --ioengine=io_uring \
                --direct=1 --iodepth=1 --size="$BYTES" --output-format=json --output="$W/fio.json"
        }
        for r in $(seq 1 "$ROUNDS"); do
            RN=$r
            for l in "${LIBS[@]}"; do
                sh=(env S3SHIM_MOUNTS="$MP=direct:///dev" LD_PRELOAD="$W/$l.so")
                arm_lddin() { one loop "$l:dd-if(fd0)" "$BYTES" "${sh[@]}" dd if="$MP/${LOOP#/dev/}" of=/dev/null bs=1M; }
                arm_lcat() { one loop "$l:cat-path" "$BYTES" "${sh[@]}" cat "$MP/${LOOP#/dev/}"; }
                arms lddin lcat lfio
            done
        done
    fi
fi
if [ "${BENCH_S3:-1}" != 0 ]; then
    # shellcheck source=../../tests/s3rig/s3env.sh
    if . "$TOP/tests/s3rig/s3env.sh"; then
        SB=$((S3_SIZE_MB << 20))
        head -c "$SB" "$W/src.bin" >"$W/s3src.bin"
        s3_put "$W/s3src.bin" std/in.bin >/dev/null || echo "# S3: upload failed"
        for r in $(seq 1 "$ROUNDS"); do
            RN=$r
            round s3 "" "/s3/$S3_BUCKET/std/in.bin" "/s3/$S3_BUCKET/std/out.bin" "$W/s3src.bin" "$SB"
        done
    else
        echo "# S3 section skipped: no server"
    fi
fi
echo "# load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "== medians of $ROUNDS rounds: MB/s (CPU s/GB); ratio = the arm / the reference; then the best"
echo "   round of each arm (highest MB/s) and the ratio of the best rounds: a kernel stall that"
echo "   hits one run at random (a buffered 1 GiB write on /var/tmp sometimes costs 2.3-2.7 s of"
echo "   system time instead of 0.4 s, with or without the shim) moves a median of 3, not a best"
python3 - "$RES" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    be, arm, mbs, cpu = line.split()
    rows.setdefault((be, arm), []).append((float(mbs), float(cpu)))
med = {k: (statistics.median(x for x, _ in v), statistics.median(c for _, c in v)) for k, v in rows.items()}
best = {k: max(x for x, _ in v) for k, v in rows.items()}
ref = {"dd-if(fd0)": "cat-path", "sh:cat<path(fd0)": "sh:cat-path", "dd-of(fd1)": "cp-path",
       "sh:cat>path(fd1)": "sh:cp-path"}
print("%-7s %-22s %9s %8s  %-28s %-10s %9s %6s %6s" % ("backend", "arm", "MB/s", "CPU s/GB", "vs the path as argument",
                                                      "vs fio qd1", "best MB/s", "vs arg", "vs fio"))
for (be, arm), (mbs, cpu) in sorted(med.items()):
    lib, _, what = arm.partition(":") if ":" in arm and not arm.startswith("fio") else ("", "", arm)
    r1 = r2 = b1 = b2 = ""
    if what in ref and (be, lib + ":" + ref[what]) in med:
        r1 = "%.2fx %s" % (mbs / med[(be, lib + ":" + ref[what])][0], ref[what])
        b1 = "%.2fx" % (best[(be, arm)] / best[(be, lib + ":" + ref[what])])
    fio = "fio-read-qd1" if "(fd0)" in what or "cat-path" in what else "fio-write-qd1"
    if what and (be, fio) in med:
        r2 = "%.2fx" % (mbs / med[(be, fio)][0])
        b2 = "%.2fx" % (best[(be, arm)] / best[(be, fio)])
    print("%-7s %-22s %9.1f %8.3f  %-28s %-10s %9.1f %6s %6s" % (be, arm, mbs, cpu, r1, r2, best[(be, arm)], b1, b2))
PY
