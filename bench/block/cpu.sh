#!/usr/bin/env bash
# bench/block/cpu.sh - CPU per GiB of block://'s large-object path against fio, as the
# issue asks it ("CPU per GB <= 1.1x fio"): perf stat's task-clock of the whole process
# and its threads (the loop device's own copying runs in a kernel worker and counts for
# neither), for fio io_uring qd1 direct=1 on the raw loop device and for `dd bs=1M` (write,
# read) and `cat` of an object under the shim. Each arm runs at two sizes, SMALL and BIG
# MiB; (CPU(BIG) - CPU(SMALL)) / (BIG - SMALL) is the CPU per GiB moved, with every
# start-up cost (fio's job set-up, the shim's engine) taken out of both. Arms alternated
# (ABBA with BEFORE=DIR, a build to compare with), ROUNDS rounds, medians; CPU time moves
# far less than wall time on a shared machine.
#
#   BUILD=build [BEFORE=DIR] ROUNDS=5 bench/block/cpu.sh   (make bench-block-cpu; root:
#   losetup; perf, fio)
set -u
# shellcheck source=../../tests/preamble.sh
. "$(dirname "$0")/../../tests/preamble.sh"
R=${ROUNDS:-5}
BEFORE=${BEFORE:-}
SMALL=${SMALL:-256}
BIG=${BIG:-1280}
for c in perf fio losetup; do command -v $c >/dev/null || { echo "cpu.sh: $c is not installed"; exit 1; }; done
D=$(mktemp -d "${BENCH_DIR:-/var/tmp}/s3shim-blkcpu.XXXXXX")
L=""
trap '[ -n "$L" ] && losetup -d "$L"; rm -rf "$D"' EXIT
# Room for the BIG object and fio's region after it; written through once, so no arm
# pays a sparse file's allocation.
dev_mib=$((2 * BIG + 256))
dd if=/dev/zero of="$D/dev.img" bs=1M count=$dev_mib conv=fsync status=none
L=$(losetup -f --show "$D/dev.img") || exit 1
MP=/s3shim-blkcpu-$$
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg), $L, sizes $SMALL and $BIG MiB"
pc() { perf stat -x, -e task-clock "$@" 2>&1 >/dev/null | awk -F, '/task-clock/ { printf "%.1f", $1 }'; }
fio_arm() { # fio_arm RW MIB
    pc fio --name=f --filename="$L" --rw="$1" --bs=1M --ioengine=io_uring --direct=1 --iodepth=1 \
        --size="$2M" --offset="$((BIG + 128))M" --invalidate=0 --output-format=terse
}
declare -A res
add() { res[$1]+=" $(awk -v a="$2" -v b="$3" -v s="$SMALL" -v g="$BIG" 'BEGIN { printf "%.0f", (b - a) * 1024 / (g - s) }')"; }
arms="now"
[ -n "$BEFORE" ] && arms="now before"
for r in $(seq "$R"); do
    sync "$D/dev.img"
    add fio-write "$(fio_arm write "$SMALL")" "$(fio_arm write "$BIG")"
    add fio-read "$(fio_arm read "$SMALL")" "$(fio_arm read "$BIG")"
    for arm in $arms; do
        d=$BUILD
        [ "$arm" = before ] && d=$BEFORE
        "$d/s3shim" blk format --force "$L" >/dev/null
        sync "$D/dev.img"
        shim=(env "S3SHIM_MOUNTS=$MP=block://$L" "LD_PRELOAD=$d/libs3shim.so")
        declare -A c=()
        for n in "$SMALL" "$BIG"; do
            c[w$n]=$(pc "${shim[@]}" dd if=/dev/zero of="$MP/o$n" bs=1M count="$n")
            c[r$n]=$(pc "${shim[@]}" dd if="$MP/o$n" of=/dev/null bs=1M)
            c[c$n]=$(pc "${shim[@]}" cat "$MP/o$n")
        done
        add "$arm-dd-write" "${c[w$SMALL]}" "${c[w$BIG]}"
        add "$arm-dd-read" "${c[r$SMALL]}" "${c[r$BIG]}"
        add "$arm-cat" "${c[c$SMALL]}" "${c[c$BIG]}"
    done
    arms=$(echo "$arms" | awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "") }') # ABBA
done
med() { echo "${res[$1]}" | tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for k in "${!res[@]}"; do echo "$k ms/GiB:${res[$k]}  median $(med "$k")"; done | sort
for rw in read write; do
    f=$(med "fio-$rw")
    echo "dd $rw: fio $f ms/GiB, s3shim $(med "now-dd-$rw") ms/GiB, ratio $(awk -v a="$(med "now-dd-$rw")" -v b="$f" 'BEGIN { printf "%.2f", b > 0 ? a / b : 0 }')x (goal <= 1.1x)"
done
echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"
