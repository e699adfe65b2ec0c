# bench/block/devices.sh - sourced by the block:// benches that compare against ext4 on
# loop devices of their own: what they need checked first (root, mkfs.ext4, BEFORE's
# library), PY (the interpreter itself, not pyenv's wrapper script), a scratch directory W
# under BENCH_DIR (/var/tmp), newdev NAME to make a loop device of SIZE_MB there (its path
# on stdout; the caller adds it to LOOPS), and one cleanup at exit that unmounts $W/m4
# and detaches every device in LOOPS.
#
#   . "$(dirname "$0")/devices.sh" NAME      (W is .../s3shim-bench-NAME.XXXXXX)
# shellcheck shell=bash
[ "$(id -u)" = 0 ] || { echo "bench-block-$1: needs root (loop devices, mount)"; exit 1; }
command -v mkfs.ext4 >/dev/null || { echo "bench-block-$1: mkfs.ext4 missing"; exit 1; }
[ -z "${BEFORE:-}" ] || [ -f "$BEFORE/libs3shim.so" ] || { echo "bench-block-$1: $BEFORE/libs3shim.so missing"; exit 1; }
# shellcheck disable=SC2034 # (the sourcing bench's)
PY=$(python3 -c 'import sys; print(sys.executable)')
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/s3shim-bench-$1.XXXXXX") || exit 1
LOOPS=()
bench_cleanup() {
    mountpoint -q "$W/m4" 2>/dev/null && umount "$W/m4"
    for l in "${LOOPS[@]}"; do losetup -d "$l"; done
    rm -rf "$W"
}
trap bench_cleanup EXIT
newdev() { truncate -s "${SIZE_MB}M" "$W/$1.img" && losetup -f --show -b 4096 "$W/$1.img"; }
