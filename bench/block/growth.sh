#!/usr/bin/env bash
# bench/block/growth.sh - does a create cost more as the store fills? One store on a loop
# device, BATCHES (10) python loops each creating FILES (20000) files of 4 KiB in a
# directory of their own; prints each batch's files per second, the objects already in
# the store, and the metadata zone's use. With BEFORE (a build directory of another
# version) the same batches run on a second device with that build, the two alternating,
# and each line gives the ratio. ext4 for scale: the first batch on the same device size.
#
#   BUILD=build bench/block/growth.sh            (make bench-block-growth)
#   BATCHES=10 FILES=20000 SIZE_MB=4096 BEFORE=DIR bench/block/growth.sh
set -u
export LC_ALL=C
# shellcheck source=../../tests/preamble.sh
. "$(dirname "$0")/../../tests/preamble.sh" # TOP, BUILD, LIB, TOOL
N=${FILES:-20000}
BATCHES=${BATCHES:-10}
SIZE_MB=${SIZE_MB:-4096}
BEFORE=${BEFORE:-}
# shellcheck source=devices.sh
. "$(dirname "$0")/devices.sh" growth # the checks, PY, W, LOOPS, newdev, the cleanup
cat >"$W/mk.py" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
b = os.urandom(4096)
for i in range(n):
    with open(os.path.join(d, "f%d" % i), "wb") as f:
        f.write(b)
EOF
# batch LIB DEV I: files per second of batch I on DEV through LIB
batch() {
    local s e
    s=$(date +%s%N)
    S3SHIM_MOUNTS=/blk=block://$2 LD_PRELOAD=$1 "$PY" "$W/mk.py" "/blk/b$3" "$N" || return 1
    e=$(date +%s%N)
    echo $((N * 1000000000 / (e - s)))
}
echo "# $BATCHES batches of $N files of 4 KiB, store of $SIZE_MB MiB on a loop device; $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
D=$(newdev ext4) || { echo "no loop device"; exit 1; }
LOOPS+=("$D")
mkfs.ext4 -q -F "$D" && mkdir -p "$W/m4" && mount "$D" "$W/m4" || exit 1
s=$(date +%s%N)
"$PY" "$W/mk.py" "$W/m4/b1" "$N" || exit 1
e=$(date +%s%N)
echo "ext4 first batch: $((N * 1000000000 / (e - s))) files/s"
umount "$W/m4"
A=$(newdev after) && LOOPS+=("$A") && "$TOOL" blk format "$A" >/dev/null || exit 1
if [ -n "$BEFORE" ]; then
    B=$(newdev before) && LOOPS+=("$B") && "$BEFORE/s3shim" blk format "$B" >/dev/null || exit 1
fi
printf '%-6s %9s %9s %12s %9s  %s\n' batch objects "files/s" "before f/s" ratio "metadata blocks (this build)"
for i in $(seq "$BATCHES"); do
    objs=$(((i - 1) * N))
    b="" ratio=""
    if [ -n "$BEFORE" ]; then
        b=$(batch "$BEFORE/libs3shim.so" "$B" "$i") || { echo "batch $i failed (before)"; exit 1; }
    fi
    a=$(batch "$LIB" "$A" "$i") || { echo "batch $i failed"; exit 1; }
    [ -n "$b" ] && ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
    printf '%-6s %9s %9s %12s %9s  %s\n' "$i" "$objs" "$a" "${b:--}" "${ratio:--}" \
        "$("$TOOL" blk df "$A" | sed -n 's/^metadata *//p')"
done
