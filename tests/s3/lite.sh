#!/usr/bin/env bash
# lite.sh - the first requests of a process, made on the calling thread without libcurl
# (core/s3/http_lite.c), against a server that answers in every HTTP/1.1 framing and in
# broken ways (tests/s3/liteserver.py): the bytes must be the object's, a failure must be
# an error with a log line (never wrong bytes), libcurl and the engine threads must stay
# out of a process that reads one small object, and come in for a large one; fork and
# threads must not share or lose the connection.
# Invoked like tests/s3/run.sh: BUILD=build [SAN=asan] tests/s3/lite.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$here/../preamble.sh"
# shellcheck source=../variant.sh
. "$TOP/tests/variant.sh" "s3shim first requests without libcurl"
# shellcheck source=../report.sh
. "$TOP/tests/report.sh"
[ "$VARIANT" = asan ] && export "${SAN_ENV[@]}"
W=$(mktemp -d /tmp/s3shim-lite.XXXXXX)
srv_pid=
cleanup() {
    [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT


python3 "$here/liteserver.py" 900 >"$W/ready" 2>"$W/server.log" &
srv_pid=$!
for _ in $(seq 50); do grep -q READY "$W/ready" 2>/dev/null && break; sleep 0.1; done
port=$(awk '/READY/ {print $2}' "$W/ready")
[ -n "$port" ] || bail "start liteserver.py" "$W/server.log"

for v in $(compgen -e); do case "$v" in S3SHIM_*|AWS_*) unset "$v" ;; esac; done
export AWS_ENDPOINT_URL=http://127.0.0.1:$port S3SHIM_NO_SIGN=1 S3SHIM_ADDRESSING=path AWS_REGION=us-east-1 \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
shim() { S3SHIM_TIMEOUT=${TO:-30} LD_PRELOAD="$PRELOAD" timeout 120 "$@"; }
expect() { python3 "$here/liteserver.py" body "/lite/$1"; }
requests() { grep -c " /lite/$1\$" "$W/server.log"; }
conns() { grep " /lite/$1\$" "$W/server.log" | awk '{print $1}' | sort -u | wc -l; }

# 1. Every framing a server may use: the object's bytes, by cat (GET) and stat (HEAD).
for k in plain chunked close continue; do
    expect $k >"$W/exp"
    if shim cat "/s3/lite/$k" >"$W/got" 2>"$W/err" && cmp -s "$W/exp" "$W/got" && [ ! -s "$W/err" ]; then
        pass "$k: cat returns the object's bytes"
    else
        fail "$k: cat returns the object's bytes" "$(head -c 400 "$W/err")"
    fi
    size=$(shim stat -c %s "/s3/lite/$k-s" 2>"$W/err")
    if [ "$size" = 3000 ]; then pass "$k: stat gives the size"; else fail "$k: stat gives the size" "got '$size'" "$(head -c 400 "$W/err")"; fi
done

# 2. A small read stays on the calling thread: no libcurl mapped, no engine thread.
cat >"$W/probe.py" <<'PY'
import os, sys
with open(sys.argv[1], 'rb') as f:
    data = f.read()
maps = open('/proc/self/maps').read()
print(len(data), 'curl' if 'libcurl' in maps else 'nocurl', len(os.listdir('/proc/self/task')))
PY
out=$(shim python3 "$W/probe.py" /s3/lite/plain-probe 2>"$W/err")
if [ "$out" = "3000 nocurl 1" ]; then
    pass "a small read: no libcurl, no engine thread ($out)"
else
    fail "a small read: no libcurl, no engine thread" "got '$out'" "$(head -c 400 "$W/err")"
fi
# ...and a large one brings the engine in (parallel ranged GETs) and reads right.
expect plain.3000000 >"$W/exp"
out=$(shim python3 "$W/probe.py" /s3/lite/plain.3000000 2>"$W/err")
if [ "${out% *}" = "3000000 curl" ] && shim cat /s3/lite/plain.3000000 | cmp -s - "$W/exp"; then
    pass "a large read starts the engine and returns the object's bytes"
else
    fail "a large read starts the engine" "got '$out'" "$(head -c 400 "$W/err")"
fi

# The program's errno survives a request made on its thread (readdir() callers tell the
# end of a directory from an error by errno; the socket calls leave EAGAIN behind).
out=$(shim python3 -c '
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.stat(b"/s3/lite/plain-errno1", ctypes.create_string_buffer(256))  # sets the mount up
ctypes.set_errno(0)
r = libc.stat(b"/s3/lite/plain-errno2", ctypes.create_string_buffer(256))  # one HEAD
print(r, ctypes.get_errno())' 2>"$W/err")
if [ "$out" = "0 0" ]; then pass "a request on the program's thread leaves its errno alone"; else
    fail "a request on the program's thread leaves its errno alone" "stat, errno: '$out'" "$(head -c 400 "$W/err")"; fi

# A proxy in http_proxy: libcurl would use it, so such requests are left to the engine
# (the server, as the proxy here, sees the absolute URL a proxy gets).
http_proxy=http://127.0.0.1:$port shim cat /s3/lite/plain-proxied >/dev/null 2>"$W/err"
if grep -q "GET http://.*/lite/plain-proxied\$" "$W/server.log"; then
    pass "http_proxy set: the request goes through the proxy, as libcurl sends it"
else
    fail "http_proxy set: the request goes through the proxy" "$(grep plain-proxied "$W/server.log")" "$(head -c 400 "$W/err")"
fi

# 3. One kept-alive connection serves the process's next requests (stat, then read).
shim python3 -c '
import os, sys
os.stat("/s3/lite/plain-keep2")
sys.stdout.buffer.write(open("/s3/lite/plain-keep2", "rb").read())' >"$W/got" 2>"$W/err"
expect plain-keep2 >"$W/exp"
if cmp -s "$W/exp" "$W/got" && [ "$(requests plain-keep2)" = 2 ] && [ "$(conns plain-keep2)" = 1 ]; then
    pass "stat then read in one process: two requests on one connection"
else
    fail "stat then read: one connection" "requests $(requests plain-keep2), connections $(conns plain-keep2)" "$(head -c 400 "$W/err")"
fi

# 4. The server closes the kept connection without a word: the next request retries on a
#    new one, and nobody sees an error.
expect drop-a >"$W/exp"
expect drop-b >>"$W/exp"
if shim cat /s3/lite/drop-a /s3/lite/drop-b >"$W/got" 2>"$W/err" && cmp -s "$W/exp" "$W/got" && [ ! -s "$W/err" ]; then
    pass "a kept connection the server closed: the next request goes on a new one"
else
    fail "a kept connection the server closed" "$(head -c 400 "$W/err")"
fi

# 5. Broken answers: an error and a log line, never wrong bytes.
check_fail() { # NAME KEY LOG_PATTERN
    TO=2 shim cat "/s3/lite/$2" >"$W/got" 2>"$W/err"
    local rc=$?
    if [ $rc -ne 0 ] && [ ! -s "$W/got" ] && grep -q "Input/output error" "$W/err" && grep -q "$3" "$W/err"; then
        pass "$1: cat fails with EIO, no bytes, the log says why"
    else
        fail "$1: cat fails with EIO and says why" "exit $rc, $(wc -c <"$W/got") bytes out" "$(head -c 600 "$W/err")"
    fi
}
check_fail "not HTTP" garbage "failed after .*not an HTTP/1 response"
check_fail "a body cut short" short "failed after .*transfer closed"
check_fail "Range ignored (200 and the whole object)" norange.3000000 "failed after .*Failure writing\|Range ignored"
check_fail "a server that never answers (S3SHIM_TIMEOUT=2)" stall "failed after .*too slow"
AWS_ENDPOINT_URL=http://127.0.0.1:1 check_fail "connection refused" plain "failed after .*Failed to connect"
AWS_ENDPOINT_URL=http://no-such-host.invalid:80 check_fail "a host that does not resolve" plain "failed after .*resolve"

# 6. fork: parent and child each read on their own connection; nothing is mixed up.
expect plain-fc >"$W/fc"
shim python3 -c '
import os, sys
def rd(k): return open("/s3/lite/" + k, "rb").read()
a = rd("plain-fp1")
pid = os.fork()
if pid == 0:
    os._exit(0 if rd("plain-fc") == open(sys.argv[1], "rb").read() else 1)
b = rd("plain-fp2")
_, st = os.waitpid(pid, 0)
sys.stdout.buffer.write(a + b + bytes([os.waitstatus_to_exitcode(st)]))' "$W/fc" >"$W/got" 2>"$W/err"
{ expect plain-fp1; expect plain-fp2; printf '\0'; } >"$W/exp"
if cmp -s "$W/exp" "$W/got"; then
    pass "fork after a first request: parent and child both read right"
else
    fail "fork after a first request" "$(head -c 400 "$W/err")"
fi

# 7. Threads: first requests at once (one on the calling thread, the others start the
#    engine); every one gets its own object's bytes.
shim python3 -c '
import sys, threading
keys = ["plain-t%d" % i for i in range(8)] + ["chunked-t", "close-t"]
got = {}
def rd(k): got[k] = open("/s3/lite/" + k, "rb").read()
ts = [threading.Thread(target=rd, args=(k,)) for k in keys]
[t.start() for t in ts]
[t.join() for t in ts]
for k in keys: sys.stdout.buffer.write(got[k])' >"$W/got" 2>"$W/err"
: >"$W/exp"
for k in plain-t0 plain-t1 plain-t2 plain-t3 plain-t4 plain-t5 plain-t6 plain-t7 chunked-t close-t; do expect $k >>"$W/exp"; done
if cmp -s "$W/exp" "$W/got" && [ ! -s "$W/err" ]; then
    pass "ten threads' first requests at once: every object right"
else
    fail "threads' first requests at once" "$(head -c 400 "$W/err")"
fi

finish
