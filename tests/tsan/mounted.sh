#!/usr/bin/env bash
# tests/tsan/mounted.sh - the ThreadSanitizer stress program (tests/tsan/stress.c) on a
# direct:// or block:// mount: many threads opening, reading, writing, seeking, dup'ing
# and closing files whose bytes go through the io_uring engine (its ring threads, the
# callers' own synchronous requests, readahead shared by threads of one descriptor); on
# block:// (a store in a file) each close is also a commit under the store's lock, and
# the data files are made through the mount itself; "coherent": threads writing one
# O_RDWR file while a forked child reads it (block:// commits them from its answering
# thread, under the writers). The fork case is left to
# tests/tsan/run.sh (file://): it counted a thread's own ring (there are none since the
# synchronous requests became plain system calls) as a leaked descriptor; not re-tried.
#
#   BUILD=build/tsan tests/tsan/mounted.sh direct|block
set -u
BACKEND=${1:?direct or block}
BUILD=${BUILD:-build/tsan}
BIN=$BUILD/tests/tsan_stress
here=$(cd "$(dirname "$0")" && pwd)
bail() { echo "not ok - $1"; [ -n "${2:-}" ] && sed 's/^/# /' "$2"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$BIN" ] || bail "$BIN is missing (make BUILD=build/tsan SAN=tsan test-tsan)"
tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/s3shim_tsan_${BACKEND}_XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
case $BACKEND in
direct)
    mkdir -p "$tmp/data"
    uri=direct://$tmp/data setup_dir=$tmp/data ;;
block)
    truncate -s 512M "$tmp/store.img" && "$BUILD/s3shim" blk format "$tmp/store.img" >/dev/null ||
        bail "s3shim blk format of the store"
    uri=block://$tmp/store.img setup_dir=/tsanmnt
    # the descriptors of the device block:// keeps: the mount's own two, 4 idle ones per
    # access mode between files and the kept reservation's: not a leak, never more
    STRESS_KEPT=$(realpath "$tmp/store.img") && export STRESS_KEPT STRESS_KEPT_MAX=11 ;;
*) bail "unknown backend $BACKEND (direct or block)" ;;
esac
unset S3SHIM_STATS S3SHIM_STATS_FILE S3SHIM_LOG_FILE LD_PRELOAD STRESS_FSTAT
export S3SHIM_MOUNTS="/tsanmnt=$uri" STRESS_MNT=/tsanmnt STRESS_THREADS=${STRESS_THREADS:-12}
export STRESS_ITERS=${STRESS_ITERS:-200} STRESS_PHASES=${STRESS_PHASES:-30}
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 exitcode=66 history_size=4 suppressions=$here/tsan.supp ${TSAN_OPTIONS:-}"
RUN=()
if ! "$BIN" --setup "$setup_dir" >"$tmp/setup.log" 2>&1; then
    RUN=(setarch "$(uname -m)" -R)
    "${RUN[@]}" "$BIN" --setup "$setup_dir" >"$tmp/setup.log" 2>&1 || bail setup "$tmp/setup.log"
fi
pass=0
fail=0
# The io_uring engine, then its pool of threads (S3SHIM_DIRECT_ENGINE=threads: where
# io_uring is refused, and under valgrind) on the cases that move the most bytes; on
# direct://, descriptors exposed to kernel I/O from the start (S3SHIM_KERNEL_FILES=1:
# every open, dup and fork of the threads re-points placeholders).
cases="mixed final seqread coherent threads:mixed threads:seqread"
[ "$BACKEND" = direct ] && cases="$cases kfiles:mixed"
for c in $cases; do
    eng=auto kf=0
    case $c in threads:*) eng=threads c=${c#threads:} ;; kfiles:*) kf=1 c=${c#kfiles:} ;; esac
    log=$tmp/$eng.$kf.$c.log
    S3SHIM_KERNEL_FILES=$kf S3SHIM_DIRECT_ENGINE=$eng timeout 200 "${RUN[@]}" "$BIN" "$c" >"$log" 2>&1
    rc=$?
    if [ $rc = 0 ] && ! grep -q ThreadSanitizer "$log"; then
        echo "ok - tsan on $BACKEND:// ($eng engine$([ $kf = 1 ] && echo ", kernel files")): $c ($(tail -n 1 "$log"))"
        pass=$((pass + 1))
    else
        echo "not ok - tsan on $BACKEND:// ($eng engine$([ $kf = 1 ] && echo ", kernel files")): $c (exit $rc)"
        awk '!seen[$0]++' "$log" | sed 's/^/# /' | head -n 80
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
