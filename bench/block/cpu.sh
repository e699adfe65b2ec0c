#!/usr/bin/env bash
# bench/block/cpu.sh - CPU per GiB of block://'s large-object path: perf stat's task-clock
# (the process and all its threads; the loop device's own copying runs in a kernel worker
# and is not counted) of fio io_uring qd1 direct=1 on the raw loop device (its whole
# process, start included) and of `dd bs=1M` (write, read) and `cat` of a 1 GiB object
# under the shim, with this build and with BEFORE's; arms alternated, ROUNDS rounds,
# medians. CPU time moves far less than wall time on a shared machine.
#
#   BUILD=build BEFORE=DIR ROUNDS=5 bench/block/cpu.sh     (root: losetup; perf, fio)
set -u
# shellcheck source=../../tests/preamble.sh
. "$(dirname "$0")/../../tests/preamble.sh"
R=${ROUNDS:-5}
BEFORE=${BEFORE:-}
for c in perf fio losetup; do command -v $c >/dev/null || { echo "cpu.sh: $c is not installed"; exit 1; }; done
D=$(mktemp -d "${BENCH_DIR:-/var/tmp}/s3shim-blkcpu.XXXXXX")
L=""
trap '[ -n "$L" ] && losetup -d "$L"; rm -rf "$D"' EXIT
truncate -s 2G "$D/dev.img"
dd if=/dev/zero of="$D/dev.img" bs=1M count=2048 conv=notrunc,fsync status=none
L=$(losetup -f --show "$D/dev.img") || exit 1
MP=/s3shim-blkcpu-$$
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg), $L"
pc() { perf stat -x, -e task-clock "$@" 2>&1 >/dev/null | awk -F, '/task-clock/ { printf "%.0f", $1 }'; }
declare -A res
arms="now"
[ -n "$BEFORE" ] && arms="now before"
for r in $(seq "$R"); do
    sync "$D/dev.img"
    res[fio-write]+=" $(pc fio --name=w --filename="$L" --rw=write --bs=1M --ioengine=io_uring --direct=1 --iodepth=1 \
        --size=1G --offset=1G --invalidate=0 --output-format=terse)"
    res[fio-read]+=" $(pc fio --name=r --filename="$L" --rw=read --bs=1M --ioengine=io_uring --direct=1 --iodepth=1 \
        --size=1G --offset=1G --invalidate=0 --output-format=terse)"
    for arm in $arms; do
        d=$BUILD
        [ "$arm" = before ] && d=$BEFORE
        "$d/s3shim" blk format --force "$L" >/dev/null
        sync "$D/dev.img"
        shim=(env "S3SHIM_MOUNTS=$MP=block://$L" "LD_PRELOAD=$d/libs3shim.so")
        res[$arm-dd-write]+=" $(pc "${shim[@]}" dd if=/dev/zero of="$MP/big" bs=1M count=1024)"
        res[$arm-dd-read]+=" $(pc "${shim[@]}" dd if="$MP/big" of=/dev/null bs=1M)"
        res[$arm-cat]+=" $(pc "${shim[@]}" cat "$MP/big")"
    done
    arms=$(echo "$arms" | awk '{ for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "") }') # ABBA
done
for k in "${!res[@]}"; do
    echo "$k ms/GiB: ${res[$k]}  median $(echo "${res[$k]}" | tr ' ' '\n' | grep . | sort -n |
        awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')"
done | sort
echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"
