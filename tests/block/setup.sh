# shellcheck shell=bash
# setup.sh - what the smaller block:// test scripts share, sourced first with a short name
# and a title: the preamble, the variant line and report.sh; a work directory W on a
# filesystem that does O_DIRECT, removed at exit with every loop device tests/loopdev.sh
# attached; the mount point MP and the scratch file OUT; shim, new_dev and check_clean.
#
#   . "$(dirname "$0")/setup.sh" NAME "TITLE"
set -u
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$HERE/../preamble.sh"
# shellcheck source=../variant.sh
. "$TOP/tests/variant.sh" "$2"
# shellcheck source=../report.sh
. "$TOP/tests/report.sh"
W=$(mktemp -d "${TMPDIR:-/var/tmp}/s3shim-$1.XXXXXX")
# shellcheck source=../loopdev.sh
. "$TOP/tests/loopdev.sh"
# forget_stores: the /dev/shm files (visible roots, lock files) of the stores this test
# made, images in $W and its loop devices, which processes SIGKILLed last leave behind.
forget_stores() {
    local f u
    for f in "$W"/* "${LOOPS[@]}"; do
        { [ -f "$f" ] || [ -b "$f" ]; } && [ "$(head -c 4 "$f" 2>/dev/null | tr -d '\0')" = S3BS ] || continue # (not a fifo)
        u=$(od -An -tx1 -j24 -N16 "$f" | tr -d ' \n')
        [ "${#u}" = 32 ] && rm -rf /dev/shm/s3shim-blk-"$u"-*
    done
}
trap 'forget_stores; release_devices; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
[ "$(stat -f -c %T "$W")" = tmpfs ] && bail "$W must be on a filesystem that does O_DIRECT (set TMPDIR)"
MP=/s3shim-$1-$$
OUT=$W/out.txt
TMO=${TMO:-120}

shim() { # shim DEV [VAR=VALUE...] CMD...: CMD under the shim with $MP mounted on DEV
    local dev=$1
    shift
    timeout -k 5 "$TMO" env S3SHIM_MOUNTS="$MP=block://$dev" LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" "$@"
}
# new_dev SIZE_MIB [SECTOR]: a loop device (or a plain file without loop devices) in $dev.
new_dev() {
    if [ "$have_loop" = 1 ]; then
        new_loop "$@"
    else
        dev=$W/img.$RANDOM.$1
        truncate -s "$1M" "$dev" || dev=""
    fi
    [ -n "$dev" ]
}
check_clean() { # check_clean DEV LABEL
    if "$TOOL" blk check "$1" >"$OUT" 2>&1; then pass "$2: s3shim blk check finds the store clean ($(tail -1 "$OUT" | cut -d: -f2- | cut -c1-90))"
    else fail "$2: s3shim blk check finds the store clean" "$OUT"; fi
}
