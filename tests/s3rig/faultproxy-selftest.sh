#!/usr/bin/env bash
# faultproxy-selftest.sh - check tests/s3rig/faultproxy.py against a small keep-alive
# HTTP/1.1 upstream written below (GET with Range, HEAD, PUT/POST with Content-Length or
# chunked bodies, DELETE, chunked and close-delimited responses, a response cut short) and,
# when /usr/sbin/nginx is there, against nginx (start-nginx.sh) for the throughput numbers.
# Uses curl; several URLs on one curl command line share one connection.
# Prints "ok - ..." / "not ok - ..." lines, "# ..." measurements and a closing
# "N passed, M failed" line; exit status 0 only when nothing failed.  Stops everything it
# started by PID.  About 20-30 s.
#   --no-nginx    use the Python upstream for the throughput numbers too
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RIG_WHO=faultproxy-selftest
. "$HERE/lib.sh"
PROXY=$HERE/faultproxy.py
PY=/usr/bin/python3
[ -x $PY ] || PY=python3
USE_NGINX=1
[ "${1:-}" = --no-nginx ] && USE_NGINX=0
. "$HERE/../report.sh"
now_ms() { echo $(($(date +%s%N) / 1000000)); }
fge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }   # a >= b (floats)
fle() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

T=$(mktemp -d "${TMPDIR:-/tmp}/faultproxy-selftest.XXXXXX")
PIDS=$T/pids
: > "$PIDS"
GUARD=""
cleanup() {
    kill -TERM "$GUARD" 2>/dev/null
    s3rig_stop_tracked "$PIDS" 5 2>/dev/null
    [ -f "$T/nginx/run/pids" ] && "$HERE/stop-nginx.sh" --dir "$T/nginx" --purge >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
# a detached guard: when this shell dies (even by SIGKILL), or after 120 s, it stops
# everything recorded in $PIDS
MAIN=$$
( s3rig_close_fds
  for _ in $(seq 1 1200); do kill -0 $MAIN 2>/dev/null || break; sleep 0.1; done
  s3rig_stop_tracked "$PIDS" 2 ) >/dev/null 2>&1 &
GUARD=$!

# ------------------------------------------------------------------ upstream
mkdir -p "$T/www"
cat > "$T/upstream.py" <<'EOF'
import hashlib, os, re, socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
ROOT = sys.argv[3]
store = {}
lock = threading.Lock()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""): pass
                    return b"".join(out)
                out.append(self.rfile.read(size)); self.rfile.read(2)
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""
    def simple(self, code, body=b"", ctype="text/plain", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for k, v in extra: self.send_header(k, v)
        if code not in (204, 304): self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code not in (204, 304): self.wfile.write(body)
    def obj(self):
        name = self.path.split("?")[0]
        with lock:
            if name in store: return store[name], None
        p = os.path.join(ROOT, name.lstrip("/"))
        if os.path.isfile(p): return None, p
        return None, None
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/trunc":
            self.send_response(200); self.send_header("Content-Length", "1000000"); self.end_headers()
            self.wfile.write(b"x" * 1000); self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR); self.close_connection = True; return
        if path == "/eof":
            self.send_response(200); self.send_header("Connection", "close"); self.end_headers()
            self.wfile.write(b"y" * 300000); self.close_connection = True; return
        if path.startswith("/chunked/"):
            data, p = self.obj_name(path[len("/chunked"):])
            if data is None: return self.simple(404, b"no")
            self.send_response(200); self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
            i, sz = 0, 1
            while i < len(data):
                c = data[i:i + sz]; i += len(c); sz = sz * 3 + 7 if sz < 200000 else 1
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(c), c))
            self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n"); return
        data, p = self.obj()
        if data is None and p is None: return self.simple(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        size = len(data) if data is not None else os.path.getsize(p)
        a, b, code = 0, size - 1, 200
        m = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))
        if m:
            if m.group(1): a = int(m.group(1)); b = int(m.group(2)) if m.group(2) else size - 1
            else: a = max(0, size - int(m.group(2)))
            b = min(b, size - 1)
            if a > b: return self.simple(416, b"")
            code = 206
        self.send_response(code)
        self.send_header("Content-Length", str(b - a + 1))
        if code == 206: self.send_header("Content-Range", "bytes %d-%d/%d" % (a, b, size))
        self.end_headers()
        if self.command == "HEAD": return
        if data is not None:
            self.wfile.write(data[a:b + 1]); return
        self.wfile.flush()
        with open(p, "rb") as f:
            off, left = a, b - a + 1
            while left > 0:
                n = os.sendfile(self.connection.fileno(), f.fileno(), off, min(left, 1 << 22))
                if n <= 0: break
                off += n; left -= n
    def obj_name(self, name):
        with lock:
            if name in store: return store[name], None
        p = os.path.join(ROOT, name.lstrip("/"))
        if os.path.isfile(p):
            with open(p, "rb") as f: return f.read(), p
        return None, None
    do_HEAD = do_GET
    def do_PUT(self):
        data = self.read_body()
        with lock: store[self.path.split("?")[0]] = data
        self.simple(200, b"", extra=[("ETag", '"%s"' % hashlib.md5(data).hexdigest())])
    def do_POST(self):
        data = self.read_body()
        self.simple(200, b"<R><Len>%d</Len><Sha>%s</Sha></R>" % (len(data), hashlib.sha256(data).hexdigest().encode()), "application/xml")
    def do_DELETE(self):
        with lock: store.pop(self.path.split("?")[0], None)
        self.simple(204)

class S(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
srv = S((sys.argv[1], int(sys.argv[2])), H)
print("READY", flush=True)
threading.Timer(110, lambda: os._exit(0)).start()
srv.serve_forever()
EOF

UP_PORT=$(s3rig_free_port 127.0.0.1 18470) || { fail "no free port"; finish; }
$PY "$T/upstream.py" 127.0.0.1 "$UP_PORT" "$T/www" > "$T/upstream.out" 2>&1 &
s3rig_track "$PIDS" upstream $!
UP=127.0.0.1:$UP_PORT
for _ in $(seq 1 100); do grep -q READY "$T/upstream.out" 2>/dev/null && break; sleep 0.05; done
grep -q READY "$T/upstream.out" || { fail "python upstream did not start"; cat "$T/upstream.out"; finish; }

head -c 100 /dev/urandom > "$T/www/small"
head -c 1048576 /dev/urandom > "$T/www/m1"
head -c 4194304 /dev/urandom > "$T/www/m4"
head -c $((64 << 20)) /dev/urandom > "$T/www/big"
head -c $((9 << 20)) /dev/urandom > "$T/put9"
sha() { sha256sum "$1" | cut -d' ' -f1; }

# ------------------------------------------------------------------ proxy helpers
NPX=0
# start_proxy [faultproxy options...] -> sets PX (host:port), PXPID, PXN (files $T/pxN.*)
start_proxy() {
    NPX=$((NPX + 1))
    local addr=127.0.0.$((10 + NPX % 200)) port i
    port=$(s3rig_free_port "$addr" 18600) || return 1
    $PY "$PROXY" --listen "$addr:$port" --lifetime 60 --pidfile "$T/px$NPX.pid" \
        --stats "$T/px$NPX.stats" --log "$T/px$NPX.log" "$@" \
        > "$T/px$NPX.out" 2> "$T/px$NPX.err" &
    PXPID=$!
    s3rig_track "$PIDS" "proxy$NPX" $PXPID
    PXN=$NPX
    PX=$addr:$port
    for i in $(seq 1 100); do
        grep -q '^READY ' "$T/px$NPX.out" 2>/dev/null && return 0
        kill -0 $PXPID 2>/dev/null || break
        sleep 0.05
    done
    echo "# proxy $NPX did not start:"; sed 's/^/#   /' "$T/px$NPX.err"
    return 1
}
stop_proxy() { # -> TERM the current proxy and wait for it (its stats are then written)
    kill -TERM "$PXPID" 2>/dev/null
    wait "$PXPID" 2>/dev/null
}
stat_of() { # KEY (dotted path into the stats JSON of proxy PXN)
    $PY -c 'import json,sys
d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d=d.get(k, 0) if isinstance(d, dict) else 0
print(d)' "$T/px$PXN.stats" "$1" 2>/dev/null || echo 0
}
# curl_n N URL... : one curl, every URL on the same connection, one output line per URL:
# "CODE NUM_CONNECTS TIME_STARTTRANSFER SIZE"
curl_n() {
    local args=() u
    for u in "$@"; do args+=(-o /dev/null "$u"); done
    curl -s -w '%{http_code} %{num_connects} %{time_starttransfer} %{size_download}\n' "${args[@]}"
}

# ------------------------------------------------------------------ plain relay
start_proxy --target "$UP" || { fail "proxy start"; finish; }
check "READY line format" grep -Eq "^READY listen=$PX target=$UP pid=$PXPID\$" "$T/px$PXN.out"
check "pidfile holds the PID" grep -qx "$PXPID" "$T/px$PXN.pid"
out=$(curl_n "http://$PX/m1" "http://$PX/small" "http://$PX/m1")
[ "$(echo "$out" | awk '{print $1, $2, $4}' | tr '\n' ' ')" = "200 1 1048576 200 0 100 200 0 1048576 " ] &&
    pass "3 GETs on one connection (keep-alive kept)" || fail "3 GETs on one connection: $out"
h=$(curl -s -r 1000-1999 "http://$PX/m1" | sha256sum | cut -d' ' -f1)
[ "$h" = "$(tail -c +1001 "$T/www/m1" | head -c 1000 | sha256sum | cut -d' ' -f1)" ] && pass "Range GET" || fail "Range GET"
out=$(curl -s -o /dev/null -w '%{http_code} %{num_connects}\n' -I "http://$PX/m1" \
      --next -s -o /dev/null -w '%{http_code} %{num_connects}\n' -X DELETE "http://$PX/gone" \
      --next -s -o "$T/g1" -w '%{http_code} %{num_connects}\n' "http://$PX/m1")
[ "$(echo $out)" = "200 1 204 0 200 0" ] && cmp -s "$T/g1" "$T/www/m1" &&
    pass "HEAD, 204 DELETE, GET on one connection (bodiless framing)" || fail "HEAD/DELETE/GET: $out"
out=$(curl -s -o /dev/null -w '%{http_code} %{num_connects}\n' -T "$T/put9" "http://$PX/obj9" \
      --next -s -o "$T/g9" -w '%{http_code} %{num_connects}\n' "http://$PX/obj9")
[ "$(echo $out)" = "200 1 200 0" ] && cmp -s "$T/g9" "$T/put9" &&
    pass "PUT 9 MiB (Content-Length) then GET on one connection, byte-exact" || fail "PUT 9 MiB: $out"
out=$(curl -s -o /dev/null -w '%{http_code}\n' -H 'Transfer-Encoding: chunked' -T "$T/www/m1" "http://$PX/objc" \
      --next -s -o "$T/gc" -w '%{http_code} %{num_connects}\n' "http://$PX/objc")
[ "$(echo $out)" = "200 200 0" ] && cmp -s "$T/gc" "$T/www/m1" &&
    pass "PUT with a chunked request body" || fail "chunked PUT: $out"
out=$(curl -s --data-binary @"$T/www/m1" "http://$PX/post" -w ' %{http_code}')
[ "$out" = "<R><Len>1048576</Len><Sha>$(sha "$T/www/m1")</Sha></R> 200" ] && pass "POST with a body" || fail "POST: $out"
out=$(curl -s -o "$T/gch" -w '%{http_code} %{num_connects}\n' "http://$PX/chunked/m4" \
      --next -s -o /dev/null -w '%{http_code} %{num_connects}\n' "http://$PX/small")
[ "$(echo $out)" = "200 1 200 0" ] && cmp -s "$T/gch" "$T/www/m4" &&
    pass "chunked response (with extensions, trailer) relayed, connection kept" || fail "chunked response: $out"
out=$(curl -s -o "$T/geof" -w '%{http_code}' "http://$PX/eof"); rc=$?
[ $rc = 0 ] && [ "$out" = 200 ] && [ "$(stat -c %s "$T/geof")" = 300000 ] &&
    pass "close-delimited response relayed" || fail "close-delimited response: rc=$rc $out"
curl -s -o /dev/null "http://$PX/trunc"; rc=$?
[ $rc = 18 ] && pass "upstream closing mid-response: client sees a short body (curl 18)" || fail "upstream closing mid-response: curl rc=$rc"
curl -s -o /dev/null -m 1 --limit-rate 2M -H 'Expect:' -T "$T/put9" "http://$PX/slowput"; rc=$?
sleep 0.3
[ $rc = 28 ] && grep -q ' PUT /slowput - .* client_gone ' "$T/px$PXN.log" &&
    pass "client giving up mid-upload: request ends at once (logged client_gone)" || fail "client gone mid-upload: rc=$rc"
out=$(curl -s -o /dev/null -w '%{http_code}' "http://$PX/small")
[ "$out" = 200 ] && pass "proxy still serves after that" || fail "after trunc: $out"
stop_proxy
check "SIGTERM: exits, stats written, pidfile removed" test -s "$T/px$PXN.stats" -a ! -e "$T/px$PXN.pid"
n=$(stat_of requests); nl=$(wc -l < "$T/px$PXN.log")
[ "$n" -ge 16 ] && [ "$nl" = "$n" ] && pass "stats count $n requests, log has $nl lines" || fail "stats $n requests, log $nl lines"
echo "# log line: $(sed -n 1p "$T/px$PXN.log")"

start_proxy --target 127.0.0.1:1 || fail "proxy start (dead target)"
out=$(curl -s -w ' %{http_code}' "http://$PX/x" -o "$T/b502" "http://$PX/y" -o /dev/null)
[ "$(echo $out)" = "502 502" ] && grep -q '<Code>BadGateway</Code>' "$T/b502" &&
    pass "upstream connect failure -> 502 (connection kept)" || fail "dead upstream: $out"
stop_proxy

# ------------------------------------------------------------------ delay
start_proxy --target "$UP" --quiet || fail "proxy start"
base=$(curl_n $(for i in $(seq 30); do echo "http://$PX/small"; done) | awk '{s += $3} END {printf "%.5f", s / NR}')
stop_proxy
start_proxy --target "$UP" --delay-ms 20 || fail "proxy start (delay)"
d20=$(curl_n $(for i in $(seq 30); do echo "http://$PX/small"; done) | awk '{s += $3; if (min == "" || $3 < min) min = $3} END {printf "%.5f %.5f", s / NR, min}')
excess=$(awk -v a="${d20% *}" -v b="$base" 'BEGIN { printf "%.2f", (a - b) * 1000 - 20 }')
echo "# delay 20 ms: mean TTFB $(awk -v a="${d20% *}" 'BEGIN{printf "%.2f", a*1000}') ms (no delay: $(awk -v a="$base" 'BEGIN{printf "%.2f", a*1000}') ms), excess over 20 ms: $excess ms"
fge "${d20#* }" 0.020 && pass "delay 20 ms on 30 keep-alive requests: every TTFB >= 20 ms (mean excess $excess ms)" ||
    fail "delay 20 ms: min ${d20#* } s, excess $excess ms"
stop_proxy
start_proxy --target "$UP" --delay-ms 300 || fail "proxy start (delay 300)"
out=$(curl_n "http://$PX/small" "http://$PX/small" "http://$PX/small")
echo "$out" | awk '$3 < 0.3 || $1 != 200 {bad = 1} END {exit bad}' &&
    pass "delay 300 ms applies to each keep-alive request ($(echo $out | awk '{print $3, $7, $11}'))" || fail "delay 300: $out"
stop_proxy
# Delayed in parallel, not one after another: the proxy counts the requests waiting out
# their delay at one time (a delay long enough for six curls to start on a loaded box).
start_proxy --target "$UP" --delay-ms 1500 || fail "proxy start (delay 1500)"
t0=$(now_ms)
cp=()
for i in 1 2 3 4 5 6; do curl -s -o /dev/null "http://$PX/small" & cp+=($!); done
wait "${cp[@]}"
el=$(($(now_ms) - t0))
stop_proxy
peak=$(stat_of delayed_peak)
[ "$peak" = 6 ] && [ $el -ge 1500 ] && pass "6 concurrent connections delayed in parallel (6 waiting at once; $el ms in all)" ||
    fail "6 concurrent delayed: $peak waiting at once, $el ms"

# ------------------------------------------------------------------ errors
start_proxy --target "$UP" --error 1 --error-status 503 || fail "proxy start (error)"
out=$(curl -s -w ' %{http_code} %{num_connects}\n' -o "$T/e1" "http://$PX/a" -o /dev/null "http://$PX/b" -o /dev/null "http://$PX/c")
[ "$(echo $out)" = "503 1 503 0 503 0" ] && grep -q '<Code>SlowDown</Code>' "$T/e1" &&
    pass "error 1.0: 503 SlowDown XML on 3 requests, one connection" || fail "error 503: $out"
# like libcurl in s3shim: no "Expect: 100-continue" (curl adds it to uploads > 1 MiB)
out=$(curl -s -o /dev/null -w '%{http_code} %{num_connects} %{size_upload}\n' -H 'Expect:' -T "$T/put9" "http://$PX/p" \
      --next -s -o /dev/null -w '%{http_code} %{num_connects}\n' "http://$PX/small")
[ "$(echo $out)" = "503 1 9437184 503 0" ] && pass "error after a 9 MiB PUT body (read first): connection stays in sync" || fail "error with PUT body: $out"
out=$(curl -s -o /dev/null -w '%{http_code} %{num_connects} %{time_total}\n' -T "$T/put9" "http://$PX/p" \
      --next -s -o /dev/null -w '%{http_code} %{num_connects}\n' "http://$PX/small")
echo "$out" | awk 'NR == 1 && ($1 != 503 || $3 > 0.9) {bad = 1} NR == 2 && $1 != 503 {bad = 1} END {exit bad}' &&
    pass "error on a PUT with Expect: 100-continue: answered at once, next request fine" || fail "error with Expect: $out"
stop_proxy
start_proxy --target "$UP" --error 1 --error-status 500 || fail "proxy start (error 500)"
out=$(curl -s -o "$T/e5" -w '%{http_code}' "http://$PX/a")
[ "$out" = 500 ] && grep -q '<Code>InternalError</Code>' "$T/e5" && pass "error-status 500: InternalError" || fail "error 500: $out"
stop_proxy

# ------------------------------------------------------------------ resets, drops
start_proxy --target "$UP" --reset 1 --seed 3 || fail "proxy start (reset)"
codes=""
for i in $(seq 12); do curl -s -o /dev/null "http://$PX/m4"; codes="$codes $?"; done
bad=$(echo $codes | tr ' ' '\n' | grep -cvxE '52|56')
stop_proxy
rb=$(stat_of faults.reset_before) rm=$(stat_of faults.reset_mid)
[ "$bad" = 0 ] && [ "$rb" -gt 0 ] && [ "$rm" -gt 0 ] && [ $((rb + rm)) = 12 ] &&
    pass "reset 1.0: curl errors 52/56 (${codes# }); $rb before the response, $rm mid-body" ||
    fail "reset 1.0: curl rc$codes; before=$rb mid=$rm"
start_proxy --target "$UP" --drop 1 || fail "proxy start (drop)"
curl -s -o /dev/null "http://$PX/small"; rc=$?
[ $rc = 52 ] || [ $rc = 56 ] && pass "drop 1.0: connection closed unanswered (curl $rc)" || fail "drop: curl rc=$rc"
stop_proxy

# ------------------------------------------------------------------ seed reproducible
seq_for() { # -> $T/seq.$1: statuses and curl exit codes of 3 x 2 requests
    start_proxy --target "$UP" --error 0.5 --reset 0.2 --seed 42 || return 1
    for i in 1 2 3; do
        curl -s -o /dev/null -o /dev/null -w '%{http_code},' "http://$PX/small" "http://$PX/small"
        echo -n "$? "
    done > "$T/seq.$1"
    stop_proxy
}
seq_for 1; seq_for 2
s1=$(cat "$T/seq.1") s2=$(cat "$T/seq.2")
[ "$s1" = "$s2" ] && pass "--seed: same fault sequence twice ($s1)" || fail "--seed: '$s1' vs '$s2'"

# ------------------------------------------------------------------ stall
start_proxy --target "$UP" --stall 1 --stall-s 1 || fail "proxy start (stall)"
out=$(curl -s -o "$T/st" -w '%{time_total}' "http://$PX/m4"); rc=$?
[ $rc = 0 ] && fge "$out" 1.0 && cmp -s "$T/st" "$T/www/m4" &&
    pass "stall 1 s mid-body: $out s, body intact" || fail "stall 1 s: rc=$rc $out"
out=$(curl -s -o /dev/null -w '%{time_total} %{http_code}' -I "http://$PX/m4"); rc=$?
[ $rc = 0 ] && fge "${out% *}" 1.0 && pass "stall of a bodiless (HEAD) response happens before its head (${out% *} s)" || fail "stall HEAD: $out"
stop_proxy
start_proxy --target "$UP" --stall 1 --stall-s inf || fail "proxy start (stall inf)"
curl -s -o "$T/sti" -m 1 "http://$PX/m4"; rc=$?
sz=$(stat -c %s "$T/sti" 2>/dev/null || echo 0)
sleep 0.3
[ $rc = 28 ] && [ "$sz" -ge 2097152 ] && [ "$sz" -lt 4194304 ] &&
    pass "stall inf: body stops at $sz bytes, curl -m 1 times out (28)" || fail "stall inf: rc=$rc size=$sz"
stop_proxy
grep -q 'stall' "$T/px$PXN.log" && pass "stalled request logged after the client gave up" || fail "stall inf not logged"

# ------------------------------------------------------------------ blackhole
start_proxy --target "$UP" --blackhole || fail "proxy start (blackhole)"
curl -s -o /dev/null -m 1 "http://$PX/small"; rc=$?
[ $rc = 28 ] && pass "blackhole: curl -m 1 times out (28)" || fail "blackhole: rc=$rc"
stop_proxy

# ------------------------------------------------------------------ control file
CTL=$T/ctl.json
setctl() { echo "$1" > "$CTL.tmp" && mv -f "$CTL.tmp" "$CTL"; sleep 0.25; }
start_proxy --target "$UP" --control "$CTL" --delay-ms 5 || fail "proxy start (control)"
t1=$(curl -s -o /dev/null -w '%{time_starttransfer}' "http://$PX/small")
setctl '{"delay_ms": 200}'
t2=$(curl -s -o /dev/null -w '%{time_starttransfer}' "http://$PX/small")
fge "$t1" 0.005 && fge "$t2" 0.2 &&
    pass "control file: delay 5 ms -> 200 ms mid-run ($t1 s -> $t2 s)" || fail "control delay: $t1 -> $t2"
setctl '{"blackhole": true}'
curl -s -o /dev/null -m 1 "http://$PX/small"; rc=$?
[ $rc = 28 ] && pass "control file: blackhole (curl 28)" || fail "control blackhole: rc=$rc"
setctl '{"error": 1, "error_status": 500}'
out=$(curl -s -o /dev/null -w '%{http_code}' "http://$PX/small")
[ "$out" = 500 ] && pass "control file: error 500" || fail "control error: $out"
setctl '{"bad json'
out=$(curl -s -o /dev/null -w '%{http_code}' "http://$PX/small")
[ "$out" = 500 ] && grep -q 'ignored' "$T/px$PXN.err" && pass "control file: bad JSON ignored, settings kept" || fail "control bad json: $out"
rm -f "$CTL"; sleep 0.25
out=$(curl -s -o /dev/null -w '%{http_code} %{time_starttransfer}' "http://$PX/small")
[ "${out% *}" = 200 ] && fge "${out#* }" 0.005 && grep -q 'gone: command-line settings' "$T/px$PXN.err" && pass "control file removed: back to command-line settings ($out)" || fail "control removed: $out"
stop_proxy

# ------------------------------------------------------------------ rate
start_proxy --target "$UP" --rate 1M || fail "proxy start (rate)"
out=$(curl -s -o "$T/r" -w '%{speed_download} %{time_total}' "http://$PX/m4"); rc=$?
spd=${out% *}
echo "# rate 1M (1048576 B/s): measured $(awk -v s="$spd" 'BEGIN{printf "%.0f", s}') B/s over 4 MiB"
[ $rc = 0 ] && fle "$spd" 1250000 && cmp -s "$T/r" "$T/www/m4" &&
    pass "rate 1M per connection: $(awk -v s="$spd" 'BEGIN{printf "%.2f", s/1048576}') MiB/s" || fail "rate 1M: rc=$rc $out"
stop_proxy
start_proxy --target "$UP" --total-rate 2M || fail "proxy start (total-rate)"
t0=$(now_ms)
curl -s -o /dev/null "http://$PX/m4" & c1=$!
curl -s -o /dev/null "http://$PX/m4" & c2=$!
wait $c1 $c2
el=$(($(now_ms) - t0))
[ $el -ge 3400 ] && pass "total-rate 2M: two 4 MiB downloads together take $el ms (~4000)" || fail "total-rate: $el ms"
stop_proxy

# ------------------------------------------------------------------ lifetime
start_proxy --target "$UP" --lifetime 1 || fail "proxy start (lifetime)"
t0=$(now_ms)
for i in $(seq 30); do kill -0 $PXPID 2>/dev/null || break; sleep 0.1; done
wait $PXPID 2>/dev/null; rc=$?
el=$(($(now_ms) - t0))
[ $rc = 0 ] && grep -q '"exit_reason": "lifetime"' "$T/px$PXN.stats" &&
    pass "lifetime 1 s: exited by itself (rc 0, ~$el ms after READY, stats written)" || fail "lifetime: rc=$rc $el ms"

# ------------------------------------------------------------------ big body, throughput
TGT=$UP TGTNAME="python upstream"
if [ $USE_NGINX = 1 ] && [ -x /usr/sbin/nginx ]; then
    if r=$("$HERE/start-nginx.sh" --root "$T/www" --dir "$T/nginx" --listen 127.0.0.1:auto \
            --no-access-log --no-install --workers 1 2> "$T/nginx.err"); then
        u=$(echo "$r" | sed -n 's/.*url=http:\/\/\([^ ]*\).*/\1/p')
        TGT=$u TGTNAME="nginx"
    else
        echo "# start-nginx.sh failed, using the python upstream: $(tail -n 1 "$T/nginx.err")"
    fi
fi
start_proxy --target "$TGT" --quiet || fail "proxy start (throughput)"
h=$(curl -s "http://$PX/big" | sha256sum | cut -d' ' -f1)
[ "$h" = "$(sha "$T/www/big")" ] && pass "64 MiB body relayed byte-exact (sha256, from $TGTNAME)" || fail "64 MiB sha256 mismatch"
best() { # URL -> best of 3 download speeds, MB/s
    local i s b=0
    for i in 1 2 3; do
        s=$(curl -s -o /dev/null -w '%{speed_download}' "$1")
        b=$(awk -v a="$s" -v b="$b" 'BEGIN { print (a > b ? a : b) }')
    done
    awk -v a="$b" 'BEGIN { printf "%.0f", a / 1e6 }'
}
tp=$(best "http://$PX/big") td=$(best "http://$TGT/big")
echo "# relay throughput (64 MiB GET, one connection, best of 3): via proxy $tp MB/s, direct from $TGTNAME $td MB/s"
reqrate() { # HOSTPORT PARALLEL N -> requests/s, N small GETs per connection
    local t0 el i pids=()
    t0=$(now_ms)
    for ((i = 0; i < $2; i++)); do
        curl -s "http://$1/small?i=[1-$3]" > /dev/null & pids+=($!)
    done
    wait "${pids[@]}"
    el=$(($(now_ms) - t0))
    echo $(($2 * $3 * 1000 / (el > 0 ? el : 1)))
}
r1=$(reqrate "$PX" 1 2000) r4=$(reqrate "$PX" 4 1000) rd=$(reqrate "$TGT" 4 1000)
echo "# small GETs (100 B) via proxy: $r1 req/s on 1 connection, $r4 req/s on 4 connections; direct from $TGTNAME on 4: $rd req/s"
stop_proxy
start_proxy --target "$UP" --quiet || fail "proxy start (PUT throughput)"
up=$(curl -s -o /dev/null -w '%{speed_upload}' -H 'Expect:' -T "$T/www/big" "http://$PX/upbig")
upd=$(curl -s -o /dev/null -w '%{speed_upload}' -H 'Expect:' -T "$T/www/big" "http://$UP/upbig2")
echo "# PUT 64 MiB to the python upstream: via proxy $(awk -v a="$up" 'BEGIN { printf "%.0f", a / 1e6 }') MB/s, direct $(awk -v a="$upd" 'BEGIN { printf "%.0f", a / 1e6 }') MB/s"
stop_proxy
echo "# stats of the last proxy: $(tr -d '\n ' < "$T/px$PXN.stats" | cut -c1-400)"

finish
