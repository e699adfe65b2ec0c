#!/usr/bin/env bash
# run.sh - the ThreadSanitizer stress test (make BUILD=build/tsan SAN=tsan test-tsan).
#
# $BUILD/tests/tsan_stress is linked against the TSan build of libs3shim.so, whose
# constructor reads S3SHIM_MOUNTS at load time, so the mount is exported before each run.
# TSan halts at the first report (halt_on_error=1) and exits non-zero, so a race or lock
# inversion anywhere, the shim included, fails the test; the log is kept and printed.
#
# Environment: BUILD (default build/tsan), STRESS_THREADS (12), STRESS_ITERS (400),
# STRESS_PHASES (60), TSAN_STRICT=1 to run without tests/tsan/tsan.supp (which lists the
# reports judged false positives, each with its reason).
#
# "mixed" uses fstat() on shim descriptors only if the "fstat" case passes (see fd_stat()
# in stress.c); otherwise fstatat(fd, "", AT_EMPTY_PATH).
set -u

BUILD=${BUILD:-build/tsan}
BIN=$BUILD/tests/tsan_stress
if [ ! -x "$BIN" ]; then
    echo "not ok - $BIN is missing (make BUILD=build/tsan SAN=tsan test-tsan)"
    echo "0 passed, 1 failed"
    exit 1
fi

tmp=$(mktemp -d /tmp/s3shim_tsan_XXXXXX) || exit 1
trap 'rm -rf "$tmp"; declare -F s3rig_env_cleanup >/dev/null && s3rig_env_cleanup' EXIT
mkdir -p "$tmp/data"

export S3SHIM_MOUNTS="/tsanmnt=file://$tmp/data"
export STRESS_MNT=/tsanmnt
export STRESS_THREADS=${STRESS_THREADS:-12}
export STRESS_ITERS=${STRESS_ITERS:-400}
export STRESS_PHASES=${STRESS_PHASES:-60}
unset S3SHIM_STATS S3SHIM_STATS_FILE S3SHIM_LOG_FILE LD_PRELOAD STRESS_FSTAT
here=$(cd "$(dirname "$0")" && pwd)
supp=
[ "${TSAN_STRICT:-0}" = 1 ] || supp="suppressions=$here/tsan.supp"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 exitcode=66 history_size=4 $supp ${TSAN_OPTIONS:-}"

# TSan needs its fixed memory layout. Some kernels (high mmap_rnd_bits) break it with
# "FATAL: ThreadSanitizer: unexpected memory mapping"; run without ASLR then.
RUN=()
if ! "$BIN" --setup "$tmp/data" >"$tmp/setup.log" 2>&1; then
    if grep -q "unexpected memory mapping\|failed to allocate\|ThreadSanitizer: .*memory layout" "$tmp/setup.log" &&
        command -v setarch >/dev/null; then
        RUN=(setarch "$(uname -m)" -R)
        "${RUN[@]}" "$BIN" --setup "$tmp/data" >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log"; exit 1; }
    else
        echo "not ok - setup"
        sed 's/^/# /' "$tmp/setup.log"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

pass=0
fail=0
check() { # id description command...
    local log=$tmp/$1.log name=$2
    shift 2
    local t0=$SECONDS
    timeout 120 "${RUN[@]}" "$@" >"$log" 2>&1
    local rc=$?
    if [ $rc = 0 ] && ! grep -q "ThreadSanitizer" "$log"; then
        echo "ok - $name ($(tail -n 1 "$log"); $((SECONDS - t0))s)"
        pass=$((pass + 1))
        return 0
    fi
    echo "not ok - $name (exit $rc$([ $rc = 124 ] && echo ", timed out"))"
    # A runaway recursion leaves thousands of identical frames: keep the log readable.
    grep -v "DEADLYSIGNAL" "$log" | awk '!seen[$0]++' | sed 's/^/# /' | head -n 150
    fail=$((fail + 1))
    return 1
}

[ -n "$supp" ] && echo "# TSan suppressions in effect: $(grep -c '^[a-z]' "$here/tsan.supp") (tests/tsan/tsan.supp; TSAN_STRICT=1 to drop)"

# Cases that each isolate one pattern first. fstat() on a shim descriptor: if it works,
# "mixed" uses it too.
if check fstat "tsan: fstat/fstat64 on a shim descriptor" "$BIN" fstat; then export STRESS_FSTAT=1; fi
check setfl "tsan: F_SETFL on a shared shim descriptor while other threads F_GETFL and pread it" "$BIN" setfl
check fork "tsan: fork while threads do I/O on shim descriptors; the child uses them" "$BIN" fork
# The main stress run, then what it left behind.
fst="fstatat(fd, \"\", AT_EMPTY_PATH) (the fstat case failed)"
[ "${STRESS_FSTAT:-0}" = 1 ] && fst=fstat
if check mixed "tsan: $STRESS_THREADS threads x $STRESS_ITERS: open/pread/read/lseek/close, dup/dup2/F_DUPFD, $fst, opendir/readdir/openat, fopen/fgets, write/pwrite/fprintf + verify, unlink" "$BIN" mixed; then
    check final "tsan: files written through the mount are right" "$BIN" final
    # "final" removed what "mixed" left: the backing directory must be empty.
    left=$(cd "$tmp/data/w" && ls -A)
    if [ -z "$left" ]; then
        echo "ok - backing directory w/ is empty after the cleanup"
        pass=$((pass + 1))
    else
        echo "not ok - backing directory w/ still holds: $(echo $left)"
        fail=$((fail + 1))
    fi
else
    echo "not ok - tsan: files written through the mount are right (not checked: mixed failed)"
    fail=$((fail + 1))
fi
check seqread "tsan: $STRESS_THREADS threads share one offset with read/readv until EOF, $STRESS_PHASES times" "$BIN" seqread

# A shim file on fd 0 and on fd 1 (shim/pump.h): threads reading and writing it
# themselves while the pump thread serves the pipe, a forked child writing through it.
# With the op log on too (tests/oplog/tsan.sh): these cases once reached a lock-order
# cycle there (the op log's lock, then the fd table's at fork and when it parked a
# descriptor; the table's, then a description's; a description's, then the op log's).
SDBIN=$BUILD/tests/tsan_stdstream
if [ -x "$SDBIN" ]; then
    check stdin "tsan: $STRESS_THREADS threads read()/readv() a shim file on fd 0 while the pump fills the pipe, lseek between phases" \
        "$SDBIN" in "$STRESS_MNT/stdstream-in.bin"
    check stdout "tsan: $STRESS_THREADS threads write() and printf() to a shim file on fd 1, a forked child too" \
        "$SDBIN" out "$STRESS_MNT/stdstream-out.txt"
else
    echo "not ok - tsan: $SDBIN is built"
    fail=$((fail + 1))
fi

# The endpoint balancer's unit tests, whose last cases pick and report from 8 threads.
if [ -x "$BUILD/tests/test_balance" ]; then
    check balance "tsan: endpoint balancer: 8 threads picking and reporting over 3, 4 and 32 endpoints" \
        "$BUILD/tests/test_balance"
fi

# The S3 data path (HTTP engine threads, prefetch, multipart upload) against the rig's
# server: started here unless AWS_ENDPOINT_URL names one.
S3BIN=$BUILD/tests/tsan_s3
if [ -x "$S3BIN" ] && [ "${S3SHIM_TSAN_S3:-1}" = 1 ]; then
    unset S3SHIM_MOUNTS
    # A second proxy of the same cluster, for the case with two endpoints.
    if [ -z "${AWS_ENDPOINT_URL:-}" ] && p2=$(. "$here/../s3rig/lib.sh" && s3rig_free_port 127.0.0.2 18400); then
        export S3RIG_SWIFT_PROXIES="127.0.0.2:$p2"
    fi
    # shellcheck source=../s3rig/s3env.sh
    if . "$here/../s3rig/s3env.sh"; then
        head -c $((24 << 20)) /dev/urandom >"$tmp/obj"
        if s3_put "$tmp/obj" tsan/obj >/dev/null; then
            S3SHIM_PART_SIZE=5M check s3 "tsan: S3 data path: threads of random preads on one object, threads of sequential part-sized reads, threads of multipart uploads read back, threads writing one file behind, threads making temporaries (renamed or removed)" \
                "$S3BIN" "/s3/$S3_BUCKET/tsan" "$tmp/obj"
            S3SHIM_READ_HOLD=on S3SHIM_PART_SIZE=5M check s3hold "tsan: the same with every sequential reader's read-ahead bodies held in the socket for its buffer (S3SHIM_READ_HOLD=on)" \
                "$S3BIN" "/s3/$S3_BUCKET/tsan" "$tmp/obj"
            case ${S3RIG_ENDPOINTS:-} in
            *,*)
                S3SHIM_ENDPOINTS=$S3RIG_ENDPOINTS S3SHIM_PART_SIZE=5M check s3multi \
                    "tsan: the same over two endpoints of one cluster (the balancer on every request, hedging armed)" \
                    "$S3BIN" "/s3/$S3_BUCKET/tsan" "$tmp/obj" ;;
            esac
        else
            echo "not ok - tsan: S3 data path (could not upload the test object)"
            fail=$((fail + 1))
        fi
    else
        echo "not ok - tsan: S3 data path (no S3 server)"
        fail=$((fail + 1))
    fi
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
