#!/usr/bin/env bash
# exit.sh - what becomes of an S3 upload when its program ends without closing it.
#
#   BUILD=build tests/s3/exit.sh                (release)
#   BUILD=build/asan SAN=asan tests/s3/exit.sh  (ASan+UBSan, libasan preloaded first)
#
# The semantics under test (README, "S3"): a program that ends without closing a write
# descriptor - exit(), return from main, _exit()/_Exit(), quick_exit(), exec of another
# program, a thread calling exit() - commits it, as the kernel would leave the bytes in
# a file; a program killed by a signal (abort(), SIGTERM with the default disposition)
# leaves no object and nothing partial; a forked child that ends never commits, aborts
# or corrupts its parent's upload; nothing ever crashes the program (no 139, no
# sanitizer report), also when the program shut OpenSSL down itself (the object is then
# not written, and the log says why) or when every request fails at exit.
#
# Each way is tried with a small object (one PUT) and a 20 MiB one (multipart, 8 MiB
# parts), checked byte for byte with the AWS CLI: tests/helpers/exit_writer (C), bash
# and dash (exec 3>, exec > through the fd 1 pump, a subshell and a child program while
# the upload is open, a program exec'd onto the descriptor), python3 (os.open without
# close, os._exit, a forked child).
#
# The server comes from tests/s3rig/s3env.sh (a private Swift unless AWS_ENDPOINT_URL
# is set). Output: "ok - ..." / "not ok - ..." and one closing "N passed, M failed".
set -u
export LC_ALL=C.UTF-8
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$HERE/../preamble.sh"
# shellcheck source=../variant.sh
. "$TOP/tests/variant.sh" "s3shim S3 exit tests"
# shellcheck source=../report.sh
. "$TOP/tests/report.sh"
[ "$VARIANT" = asan ] && export "${SAN_ENV[@]}"
HELPER=$BUILD/tests/exit_writer
W=$(mktemp -d /tmp/s3shim-exit.XXXXXX)
cleanup() {
    rm -rf "$W"
    declare -F s3rig_env_cleanup >/dev/null && s3rig_env_cleanup
}
trap cleanup EXIT
# shellcheck source=../s3rig/s3env.sh
. "$TOP/tests/s3rig/s3env.sh" || bail "no S3 server"

[ -x "$HELPER" ] || bail "helper $HELPER is built (make $HELPER)"

# References: binary for the C helper and python. The shells write with their printf
# builtin, so theirs is text (no NUL, no trailing newline): one chunk, written N times
# (bash handles a string of 20 MiB slowly, and very slowly under ASan). 20 MiB > 2 parts
# of 8 MiB: a multipart upload.
SMALL=100000
BIG=$((20 << 20))
head -c "$SMALL" /dev/urandom >"$W/small.bin"
head -c "$BIG" /dev/urandom >"$W/big.bin"
head -c $((1 << 20)) /dev/urandom | base64 -w0 | head -c $((1 << 20)) >"$W/chunk.txt"
head -c "$SMALL" "$W/chunk.txt" >"$W/small.chunk"
cp "$W/chunk.txt" "$W/big.chunk"
declare -A NCHUNK=([small]=1 [big]=20)
for s in small big; do
    for _ in $(seq "${NCHUNK[$s]}"); do cat "$W/$s.chunk"; done >"$W/$s.txt"
done

under() { # under CMD...: CMD under the shim, bounded; stderr to $W/err (a subshell: the
    # shell's own "Aborted"/"Terminated" notices stay out of the output)
    (env LD_PRELOAD="$PRELOAD" S3SHIM_LOG=warn timeout 120 "$@" 2>"$W/err"; exit $?) 2>/dev/null
}

# expect DESC KEY RC-WANTED RC-GOT WHAT [REF]: WHAT is "same" (the object is REF byte for
# byte) or "absent" (no object at all: nothing partial is visible).
expect() {
    local desc=$1 key=$2 want=$3 rc=$4 what=$5 ref=${6:-}
    local crash=""
    grep -qE "AddressSanitizer|runtime error|Segmentation fault|core dumped" "$W/err" && crash=yes
    rm -f "$W/got"
    s3_get "$key" "$W/got" >/dev/null 2>&1
    if [ "$rc" != "$want" ] || [ -n "$crash" ]; then
        fail "$desc" "exit status $rc, wanted $want" "$(cat "$W/err")"
    elif [ "$what" = same ] && ! cmp -s "$W/got" "$ref"; then
        fail "$desc" "object $key: $(stat -c %s "$W/got" 2>/dev/null || echo missing) bytes, wanted $(stat -c %s "$ref") (cmp differs)" "$(cat "$W/err")"
    elif [ "$what" = absent ] && [ -e "$W/got" ]; then
        fail "$desc" "object $key exists ($(stat -c %s "$W/got") bytes): something partial is visible"
    else
        pass "$desc"
    fi
}

# --- the C helper: every way a program can end --------------------------------------------
for size in small big; do
    for how in exit return _exit _Exit quick_exit exec exec-cloexec thread-exit atexit-tail stdio fork-exit fork-_exit; do
        key=c/$how-$size
        under "$HELPER" "$how" "$W/$size.bin" "/s3/$S3_BUCKET/$key"
        rc=$?
        case $how-$size in
        fork-*-small) # staged when the parent forks: the child's bytes land as on a local file
            "$HELPER" "$how" "$W/$size.bin" "$W/local-$how" 2>/dev/null
            grep -q 'child: wrote' "$W/err" || rc="$rc (the child's write failed)"
            expect "C, $size object, ends by $how: the child's write lands at the shared offset, the object = the same program's on a local file" \
                "$key" 0 "$rc" same "$W/local-$how" ;;
        fork-*-big) # parts sent before the fork: the upload stays the parent's
            grep -q 'child: EBADF' "$W/err" || rc="$rc (the child's write did not fail with EBADF)"
            expect "C, $size object, ends by $how: parts were sent, the child's write fails with EBADF, the object is the parent's" \
                "$key" 0 "$rc" same "$W/$size.bin" ;;
        *) expect "C, $size object, ends by $how: exit 0, the object is what was written" "$key" 0 "$rc" same "$W/$size.bin" ;;
        esac
    done
    key=c/abort-$size
    under "$HELPER" abort "$W/$size.bin" "/s3/$S3_BUCKET/$key"
    expect "C, $size object, abort(): killed by SIGABRT (134), no object, nothing partial" "$key" 134 $? absent
    key=c/sigterm-$size
    under "$HELPER" sigterm "$W/$size.bin" "/s3/$S3_BUCKET/$key"
    expect "C, $size object, SIGTERM with the default disposition: 143, no object, nothing partial" "$key" 143 $? absent
    key=c/ssl-cleanup-$size
    under "$HELPER" ssl-cleanup "$W/$size.bin" "/s3/$S3_BUCKET/$key"
    rc=$?
    expect "C, $size object, the program called OPENSSL_cleanup() then exit(0): no crash, no object, status 1" "$key" 1 $rc absent
    if grep -q "OPENSSL_cleanup" "$W/err"; then
        pass "C, $size object, OPENSSL_cleanup(): the log says why the object was not written"
    else
        fail "C, $size object, OPENSSL_cleanup(): the log says why the object was not written" "$(cat "$W/err")"
    fi
done

# --- shells ---------------------------------------------------------------------------------
# Every script gets KEY CHUNK N: `put` writes CHUNK N times with printf to stdout.
PUT='put() { c=$(cat "$2"); i=0; while [ $i -lt $3 ]; do printf "%s" "$c"; i=$((i + 1)); done; }'
for size in small big; do
    ref=$W/$size.txt
    args=("$W/$size.chunk" "${NCHUNK[$size]}")
    for sh in bash dash; do
        command -v $sh >/dev/null || continue
        key=sh/$sh-fd3-$size
        under $sh -c "$PUT"'; exec 3>"$1"; put "$@" >&3; exit 0' sh "/s3/$S3_BUCKET/$key" "${args[@]}"
        expect "$sh, $size object: exec 3>KEY; printf >&3; exit 0" "$key" 0 $? same "$ref"
        key=sh/$sh-stdout-$size
        under $sh -c "$PUT"'; exec >"$1"; put "$@"' sh "/s3/$S3_BUCKET/$key" "${args[@]}"
        expect "$sh, $size object: exec >KEY (fd 1 through the pump); printf; end of script" "$key" 0 $? same "$ref"
    done
    # A subshell (forked, exits) and child programs (exec'd, exit) while the upload is
    # open: none of them commits, aborts or truncates the shell's upload.
    key=sh/children-$size
    under bash -c "$PUT"'; exec 3>"$1"; put "$1" "$2" $(( ($3 + 1) / 2 )) >&3
        ( exit 0 ); (printf ""; exit 0); sh -c "exit 0"; /bin/true
        put "$1" "$2" $(( $3 / 2 )) >&3; exit 0' sh "/s3/$S3_BUCKET/$key" "${args[@]}"
    expect "bash, $size object: a subshell and child programs end while the upload is open" "$key" 0 $? same "$ref"
    # A program exec'd onto the descriptor before anything was written takes the upload up.
    key=sh/taken-up-$size
    under bash -c 'exec 3>"$1"; cat "$2" >&3; exit 0' sh "/s3/$S3_BUCKET/$key" "$ref"
    expect "bash, $size object: exec 3>KEY; cat >&3 (cat takes the upload up); exit 0 keeps cat's object" "$key" 0 $? same "$ref"
    key=sh/exec-after-write-$size
    under bash -c "$PUT"'; exec >"$1"; put "$@"; exec /bin/true' sh "/s3/$S3_BUCKET/$key" "${args[@]}"
    expect "bash, $size object: exec >KEY; printf; exec another program: committed before the exec" "$key" 0 $? same "$ref"
done

# --- python3 ----------------------------------------------------------------------------------
PYW='
import os, sys
how, ref, dest = sys.argv[1:4]
data = open(ref, "rb").read()
fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
def put(b):
    v = memoryview(b)
    while v:
        v = v[os.write(fd, v[:1 << 20]):]
if how == "fork":
    put(data[:len(data) // 2])
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    _, st = os.waitpid(pid, 0)
    if st != 0:
        sys.exit(3)
    put(data[len(data) // 2:])
else:
    put(data)
if how == "_exit":
    os._exit(0)
if how == "exit3":
    sys.exit(3)
'
for size in small big; do
    for how in end _exit fork; do
        key=py/$how-$size
        under python3 -c "$PYW" "$how" "$W/$size.bin" "/s3/$S3_BUCKET/$key"
        expect "python3, $size object: os.open, os.write, no close, $how" "$key" 0 $? same "$W/$size.bin"
    done
done

# --- the server fails at exit -------------------------------------------------------------------
# A relay (tests/s3rig/faultproxy.py) answers every request with 500 once the program has
# written everything: the commit at exit fails after its retries. The program must end
# promptly, with a log line, no object, and status 1 where it would have been 0 (a
# non-zero status is the program's own and stays).
up=${AWS_ENDPOINT_URL#http://}
up=${up%%/*}
ctl=$W/control.json
echo '{}' >"$ctl"
python3 "$TOP/tests/s3rig/faultproxy.py" --listen 127.0.0.1:0 --target "$up" --error-status 500 \
    --control "$ctl" --lifetime 600 >"$W/proxy.out" 2>&1 &
proxy_pid=$!
trap 'kill "$proxy_pid" 2>/dev/null; cleanup' EXIT
for _ in $(seq 100); do grep -q READY "$W/proxy.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*READY listen=[^:]*:\([0-9]*\).*/\1/p' "$W/proxy.out")
PYF='
import os, sys, time
how, ref, dest, ctl = sys.argv[1:5]
data = open(ref, "rb").read()
fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
v = memoryview(data)
while v:
    v = v[os.write(fd, v[:1 << 20]):]
with open(ctl + ".tmp", "w") as f:
    f.write("{\"error\": 1.0}")
os.rename(ctl + ".tmp", ctl)
time.sleep(0.5)
if how == "_exit":
    os._exit(0)
if how == "exit3":
    sys.exit(3)
'
if [ -z "$port" ]; then
    fail "start the failing relay" "$(cat "$W/proxy.out")"
else
    for size in small big; do
        for how in end _exit exit3; do
            echo '{}' >"$ctl"
            sleep 0.3
            key=fail/$how-$size
            t0=$SECONDS
            AWS_ENDPOINT_URL=http://127.0.0.1:$port S3SHIM_TIMEOUT=5 AWS_MAX_ATTEMPTS=2 \
                under python3 -c "$PYF" "$how" "$W/$size.bin" "/s3/$S3_BUCKET/$key" "$ctl"
            rc=$?
            took=$((SECONDS - t0))
            want=1
            [ $how = exit3 ] && want=3 # a failing status is the program's own, kept as it is
            expect "python3, $size object, $how, every request fails at exit: status $want, no object (${took}s)" "$key" $want $rc absent
            if grep -q "upload failed" "$W/err" && [ "$took" -lt 90 ]; then
                pass "python3, $size object, $how, failed commit at exit: one log line says the object was not written"
            else
                fail "python3, $size object, $how, failed commit at exit: a log line, bounded time (${took}s)" "$(cat "$W/err")"
            fi
        done
    done
fi

finish
