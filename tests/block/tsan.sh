#!/usr/bin/env bash
# tests/block/tsan.sh - the ThreadSanitizer stress program (tests/tsan/stress.c) on a
# block:// mount (a store in a file): many threads opening, reading, writing, seeking,
# dup'ing and closing objects, each close a commit under the store's lock, reads through
# the io_uring engine. The data files are made through the mount itself (--setup on it).
# The fork case is left to tests/tsan/run.sh (file://), as for direct://.
#
#   BUILD=build/tsan tests/block/tsan.sh
set -u
BUILD=${BUILD:-build/tsan}
BIN=$BUILD/tests/tsan_stress
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$BIN" ]; then
    echo "not ok - $BIN is missing (make BUILD=build/tsan SAN=tsan test-tsan)"
    echo "0 passed, 1 failed"
    exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/s3shim_tsan_block_XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
truncate -s 512M "$tmp/store.img" && "$BUILD/s3shim" blk format "$tmp/store.img" >/dev/null || {
    echo "not ok - s3shim blk format of the store"; echo "0 passed, 1 failed"; exit 1; }
unset S3SHIM_STATS S3SHIM_STATS_FILE S3SHIM_LOG_FILE LD_PRELOAD STRESS_FSTAT
export S3SHIM_MOUNTS="/tsanmnt=block://$tmp/store.img" STRESS_MNT=/tsanmnt STRESS_THREADS=${STRESS_THREADS:-12}
export STRESS_ITERS=${STRESS_ITERS:-200} STRESS_PHASES=${STRESS_PHASES:-30}
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 exitcode=66 history_size=4 suppressions=$here/../tsan/tsan.supp ${TSAN_OPTIONS:-}"
RUN=()
if ! "$BIN" --setup /tsanmnt >"$tmp/setup.log" 2>&1; then
    RUN=(setarch "$(uname -m)" -R)
    "${RUN[@]}" "$BIN" --setup /tsanmnt >"$tmp/setup.log" 2>&1 || {
        echo "not ok - setup"; sed 's/^/# /' "$tmp/setup.log"; echo "0 passed, 1 failed"; exit 1; }
fi
pass=0
fail=0
for c in mixed final seqread; do
    timeout 200 "${RUN[@]}" "$BIN" "$c" >"$tmp/$c.log" 2>&1
    rc=$?
    if [ $rc = 0 ] && ! grep -q ThreadSanitizer "$tmp/$c.log"; then
        echo "ok - tsan on block://: $c ($(tail -n 1 "$tmp/$c.log"))"
        pass=$((pass + 1))
    else
        echo "not ok - tsan on block://: $c (exit $rc)"
        awk '!seen[$0]++' "$tmp/$c.log" | sed 's/^/# /' | head -n 80
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
