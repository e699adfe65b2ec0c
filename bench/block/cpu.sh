#!/usr/bin/env bash
# bench/block/cpu.sh - CPU per GiB of block://'s large-object path against fio, as the
# issue asks it ("CPU per GB <= 1.1x fio"): perf stat's task-clock of the whole process
# and its threads (the loop device's own copying runs in a kernel worker and counts for
# neither), for fio io_uring qd1 direct=1 on the raw loop device and for `dd bs=1M` (write,
# read), `cat`, and fio itself (psync, direct=1, bs=1M: the same program and buffers as the peer)
# on an object under the shim. Each arm runs at two sizes, SMALL and BIG
# MiB; (CPU(BIG) - CPU(SMALL)) / (BIG - SMALL) is the CPU per GiB moved, with every
# start-up cost (fio's job set-up, the shim's engine) taken out of both; fio-job is fio's
# own account of its job thread's CPU (usr + sys over the job's run, from its JSON), also
# as the difference of the two sizes, a stricter peer figure; raw-dd and raw-fio are the
# shim's programs themselves (dd oflag/iflag=direct, fio psync direct=1) on the raw
# device: what the shim adds to the same program. `dd if=/dev/zero` pays the kernel's
# zeroing (about 27 ms per GiB here) that fio does not. Arms alternated
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
fio_arm() { # fio_arm RW MIB: task-clock of the whole fio; fio's own CPU for its job (usr +
    # sys of the job thread over its run, from its JSON) goes to $D/fio.job
    perf stat -x, -o "$D/fio.perf" -e task-clock fio --name=f --filename="$L" --rw="$1" --bs=1M \
        --ioengine=io_uring --direct=1 --iodepth=1 --size="$2M" --offset="$((BIG + 128))M" --invalidate=0 \
        --output-format=json >"$D/fio.json" 2>/dev/null
    python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
print("%.1f" % ((j["usr_cpu"] + j["sys_cpu"]) * j["job_runtime"] / 100))' "$D/fio.json" >"$D/fio.job"
    awk -F, '/task-clock/ { printf "%.1f", $1 }' "$D/fio.perf"
}
declare -A res c0
add() { res[$1]+=" $(awk -v a="$2" -v b="$3" -v s="$SMALL" -v g="$BIG" 'BEGIN { printf "%.0f", (b - a) * 1024 / (g - s) }')"; }
arms="now"
[ -n "$BEFORE" ] && arms="now before"
for r in $(seq "$R"); do
    sync "$D/dev.img"
    # the programs of the shim's arms on the raw device: what they cost without the shim
    for n in "$SMALL" "$BIG"; do
        c0[w$n]=$(pc dd if=/dev/zero of="$L" bs=1M count="$n" seek=$((BIG + 128)) oflag=direct)
        c0[r$n]=$(pc dd if="$L" of=/dev/null bs=1M count="$n" skip=$((BIG + 128)) iflag=direct)
        for rw in write read; do
            c0[f$rw$n]=$(pc fio --name=f --filename="$L" --rw=$rw --bs=1M --ioengine=psync --direct=1 \
                --size="$n"M --offset="$((BIG + 128))M" --invalidate=0 --output-format=terse)
        done
    done
    add raw-dd-write "${c0[w$SMALL]}" "${c0[w$BIG]}"
    add raw-dd-read "${c0[r$SMALL]}" "${c0[r$BIG]}"
    add raw-fio-write "${c0[fwrite$SMALL]}" "${c0[fwrite$BIG]}"
    add raw-fio-read "${c0[fread$SMALL]}" "${c0[fread$BIG]}"
    for rw in write read; do
        a=$(fio_arm $rw "$SMALL") aj=$(cat "$D/fio.job")
        b=$(fio_arm $rw "$BIG") bj=$(cat "$D/fio.job")
        add fio-$rw "$a" "$b"
        add fio-job-$rw "$aj" "$bj"
    done
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
            "${shim[@]}" rm "$MP/o$n" # room for fio's object: the device holds one BIG object at a time
            for rw in write read; do # the same program on both sides: fio's own buffers, no dd
                c[f$rw$n]=$(pc "${shim[@]}" fio --name=f --filename="$MP/f$n" --rw=$rw --bs=1M --ioengine=psync --direct=1 \
                    --size="$n"M --output-format=terse)
            done
            "${shim[@]}" rm "$MP/f$n"
        done
        add "$arm-fio-write" "${c[fwrite$SMALL]}" "${c[fwrite$BIG]}"
        add "$arm-fio-read" "${c[fread$SMALL]}" "${c[fread$BIG]}"
        add "$arm-dd-write" "${c[w$SMALL]}" "${c[w$BIG]}"
        add "$arm-dd-read" "${c[r$SMALL]}" "${c[r$BIG]}"
        add "$arm-cat" "${c[c$SMALL]}" "${c[c$BIG]}"
    done
    arms=$(echo "$arms" | awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "") }') # ABBA
done
med() { echo "${res[$1]}" | tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for k in "${!res[@]}"; do echo "$k ms/GiB:${res[$k]}  median $(med "$k")"; done | sort
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "n/a (peer <= 0: noise, more ROUNDS)" }'; }
line() { echo "$1: $2 $(med "$2") ms/GiB, $3 $(med "$3") ms/GiB, ratio $(ratio "$(med "$3")" "$(med "$2")")$4"; }
for rw in read write; do
    for o in dd fio; do
        line "$rw" fio-$rw now-$o-$rw " (goal <= 1.1x)"
        line "$rw" fio-job-$rw now-$o-$rw " (fio's job thread only)"
        line "$rw" raw-$o-$rw now-$o-$rw " (the same program on the raw device, O_DIRECT)"
    done
done
echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"
