#!/usr/bin/env bash
# faults.sh - S3 transfers cut short: a relay in front of the server truncates every
# answer after a few KiB. Reads must fail with EIO after bounded retries (never return
# the bytes that did arrive as if they were the object), and the log must say why.
# Invoked like tests/s3/run.sh: BUILD=build [SAN=asan] tests/s3/faults.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
SAN=${SAN:-}
case $BUILD in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
LIB=$BUILD/libs3shim.so
# shellcheck source=../variant.sh
. "$REPO/tests/variant.sh" "s3shim S3 fault tests"
# shellcheck source=../report.sh
. "$REPO/tests/report.sh"
[ "$VARIANT" = asan ] && export "${SAN_ENV[@]}"
W=$(mktemp -d /tmp/s3shim-faults.XXXXXX)
proxy_pid=
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
    rm -rf "$W"
    declare -F s3rig_env_cleanup >/dev/null && s3rig_env_cleanup
}
trap cleanup EXIT
# shellcheck source=../s3rig/s3env.sh
. "$REPO/tests/s3rig/s3env.sh" || bail "no S3 server"

head -c $((3 << 20)) /dev/urandom >"$W/obj"
s3_put "$W/obj" fault/obj >/dev/null || fail "upload the test object"
echo tiny >"$W/tiny"
s3_put "$W/tiny" fault/tiny >/dev/null || fail "upload the small object"

# The relay: every answer is cut after 16 KiB (headers included).
up=${AWS_ENDPOINT_URL#http://}
python3 "$here/truncproxy.py" "${up%:*}" "${up##*:}" 16384 120 >"$W/proxy.out" 2>&1 &
proxy_pid=$!
for _ in $(seq 50); do grep -q READY "$W/proxy.out" 2>/dev/null && break; sleep 0.1; done
port=$(awk '/READY/ {print $2}' "$W/proxy.out")
[ -n "$port" ] || bail "start the truncating relay" "$(cat "$W/proxy.out")"

cut() { # run a command through the shim against the relay
    AWS_ENDPOINT_URL=http://127.0.0.1:$port S3SHIM_TIMEOUT=5 LD_PRELOAD="$PRELOAD" timeout 60 "$@"
}

# 1. A big object: every GET is truncated; cat must fail with EIO, output nothing wrong.
t0=$SECONDS
cut cat "/s3/$S3_BUCKET/fault/obj" >"$W/out" 2>"$W/err"
rc=$?
took=$((SECONDS - t0))
if [ $rc -ne 0 ] && grep -q "Input/output error" "$W/err" && [ $took -lt 30 ] &&
    { [ ! -s "$W/out" ] || cmp -s "$W/out" <(head -c "$(stat -c %s "$W/out")" "$W/obj"); }; then
    pass "truncated answers: cat fails with EIO after bounded retries (${took}s), no wrong bytes"
else
    fail "truncated answers: cat fails with EIO" "exit $rc after ${took}s" "$(head -c 600 "$W/err")"
fi
if grep -q "s3: GET .*fault/obj.*failed after [0-9]* attempt" "$W/err"; then
    pass "truncated answers: one log line names the object and the attempts"
else
    fail "truncated answers: the log names the object and the attempts" "$(head -c 600 "$W/err")"
fi

# 2. python: the error reaches the program as OSError EIO.
if cut python3 -c "
import errno, sys
try:
    open(sys.argv[1], 'rb').read()
except OSError as e:
    sys.exit(0 if e.errno == errno.EIO else 3)
sys.exit(4)" "/s3/$S3_BUCKET/fault/obj" 2>"$W/err2"; then
    pass "truncated answers: python3 gets OSError(EIO)"
else
    fail "truncated answers: python3 gets OSError(EIO)" "exit $?" "$(head -c 400 "$W/err2")"
fi

# 3. An answer smaller than the cut passes whole: the relay itself works.
if cut cat "/s3/$S3_BUCKET/fault/tiny" >"$W/tiny.out" 2>"$W/err3" && cmp -s "$W/tiny" "$W/tiny.out"; then
    pass "answers under the cut pass through the relay whole"
else
    fail "answers under the cut pass through the relay whole" "$(head -c 400 "$W/err3")"
fi

finish
