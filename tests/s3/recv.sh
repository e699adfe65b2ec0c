#!/usr/bin/env bash
# recv.sh - the engine's own receive path for plain-http reads (core/s3/http_rx.h) against
# libcurl's, through tests/s3rig/faultproxy.py: clean answers, connections reset mid-body,
# bodies cut short, a server that stalls, error statuses. For every case the same program
# runs twice, with S3SHIM_HTTP_RECV=own (the default) and =curl: both must end alike
# (identical bytes, or EIO after the same bounded retries, with the same reason in the log).
#
# A process's first requests are made by http_lite on the calling thread, so that the
# faults hit the engine's receive path the program first writes a small object through a
# second mount on the clean endpoint (an upload starts the engine), then reads the big
# object through the faulty one: every GET of that read is the engine's.
# Invoked like tests/s3/run.sh: BUILD=build [SAN=asan] tests/s3/recv.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$here/../preamble.sh"
REPO=$TOP
# shellcheck source=../variant.sh
. "$REPO/tests/variant.sh" "s3shim own receive path tests"
# shellcheck source=../report.sh
. "$REPO/tests/report.sh"
W=$(mktemp -d /tmp/s3shim-recv.XXXXXX)
# shellcheck source=../s3rig/fp.sh
. "$REPO/tests/s3rig/fp.sh"
cleanup() {
    fp_stop_all
    [ -n "${RECV_KEEP:-}" ] || rm -rf "$W"
    declare -F s3rig_env_cleanup >/dev/null && s3rig_env_cleanup
}
trap cleanup EXIT
# shellcheck source=../s3rig/s3env.sh
. "$REPO/tests/s3rig/s3env.sh" || bail "no S3 server"
B=$S3_BUCKET
CLEAN=$AWS_ENDPOINT_URL

head -c $((12 << 20)) /dev/urandom >"$W/obj"
s3_put "$W/obj" recv/obj >/dev/null || fail "upload the 12 MiB test object"

# fp NAME ARGS...: a fault proxy in front of the server; its URL goes to FP_URL.
fp() {
    local name=$1
    shift
    fp_start "$name" 127.0.0.1:0 "$CLEAN" "$@"
}

# The program: an upload through /clean (starts the engine), then the object read
# through /s3 (the proxy) into OUT. Exit 0, or 5 when the read failed with EIO.
READER='
import errno, os, sys
open(sys.argv[1], "w").write("x")
try:
    first = open(sys.argv[2], "rb").read()
    for _ in range(int(os.environ.get("READS", "1")) - 1):  # again, from a new open
        if open(sys.argv[2], "rb").read() != first:
            sys.exit(7)
except OSError as e:
    sys.exit(5 if e.errno == errno.EIO else 6)
open(sys.argv[3], "wb").write(first)
'
# run MODE NAME URL [VAR=VALUE...]: the program with S3SHIM_HTTP_RECV=MODE against URL;
# exit status in $W/NAME.MODE.rc, stderr in $W/NAME.MODE.err, bytes in $W/NAME.MODE.out.
run() {
    local mode=$1 name=$2 url=$3
    shift 3
    rm -f "$W/$name.$mode.out"
    timeout -k 5 120 env LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" AWS_ENDPOINT_URL="$url" S3SHIM_LOG=debug \
        S3SHIM_MOUNTS="/clean=s3://$B?endpoints=$CLEAN" S3SHIM_HTTP_RECV="$mode" \
        S3SHIM_STATS_FILE="$W/$name.$mode.%p.json" "$@" \
        python3 -c "$READER" "/clean/recv/tiny-$name-$mode" "/s3/$B/recv/obj" "$W/$name.$mode.out" \
        2>"$W/$name.$mode.err"
    echo $? >"$W/$name.$mode.rc"
}
rc() { cat "$W/$1.rc"; }
own_used() { grep -q "own receiver" "$W/$1.err"; }

# the /s3 mount's requests from the stats file: "ERRORS BYTES" (their count depends on
# how the read-ahead window grew, which is timing)
reqs() {
    python3 - "$W"/$1.*.json <<'EOF'
import json, sys
for m in json.load(open(sys.argv[1]))["mounts"]:
    if m["name"] == "/s3":
        r = [c["ops"].get("req", {}) for c in m["children"]]
        print(sum(x.get("errors", 0) for x in r), sum(x.get("bytes", 0) for x in r))
EOF
}

# 1. Clean answers: identical bytes on both paths, the same requests.
fp clean || bail "start a fault proxy"
for m in own curl; do run "$m" clean "$FP_URL"; done
if [ "$(rc clean.own)" = 0 ] && cmp -s "$W/obj" "$W/clean.own.out" && own_used clean.own; then
    pass "own receiver: 12 MiB read through it, identical bytes"
else
    fail "own receiver: 12 MiB read through it" "exit $(rc clean.own)" "$(tail -c 600 "$W/clean.own.err")"
fi
if [ "$(rc clean.curl)" = 0 ] && cmp -s "$W/obj" "$W/clean.curl.out" && ! own_used clean.curl; then
    pass "S3SHIM_HTTP_RECV=curl: the same read by libcurl alone, identical bytes"
else
    fail "S3SHIM_HTTP_RECV=curl: the same read by libcurl alone" "exit $(rc clean.curl)" \
        "$(tail -c 600 "$W/clean.curl.err")"
fi
a=$(reqs clean.own 2>&1) b=$(reqs clean.curl 2>&1)
if [ "$a" = "0 $((12 << 20))" ] && [ "$a" = "$b" ]; then
    pass "statistics: no request errors, the object's bytes received once, on both paths"
else
    fail "statistics: no request errors, the object's bytes received once, on both paths" "own: $a" "curl: $b"
fi

# attempts NAME.MODE: how many times the program's failed GET was sent
attempts() { echo $(($(grep -c "retrying GET $B/recv/obj" "$W/$1.err") + 1)); }

# [ATTEMPTS=N] fault_case NAME WHAT REASON PROXY-ARGS...: every request after the engine
# started fails the same way: both paths end with EIO after the same attempts (N when
# given: AWS_MAX_ATTEMPTS=N), and the log gives REASON.
fault_case() {
    local name=$1 what=$2 reason=$3 want=${ATTEMPTS:-}
    shift 3
    fp "$name" "$@" || { fail "$what: start a fault proxy"; return; }
    local url=$FP_URL m ok=1 why=()
    for m in own curl; do
        run "$m" "$name" "$url" S3SHIM_TIMEOUT=1 ${want:+AWS_MAX_ATTEMPTS=$want}
        if [ "$(rc "$name.$m")" != 5 ] || ! grep -q "error: s3: GET $B/recv/obj.*\($reason\)" "$W/$name.$m.err"; then
            ok=0
            why+=("$m: exit $(rc "$name.$m"), $(grep -m1 'error: ' "$W/$name.$m.err" | tail -c 300)")
        fi
    done
    own_used "$name.own" || { ok=0; why+=("own: the own receiver was not used"); }
    local a b
    a=$(attempts "$name.own") b=$(attempts "$name.curl")
    [ "$a" = "$b" ] || { ok=0; why+=("attempts: own $a, curl $b"); }
    [ -z "$want" ] || [ "$a" = "$want" ] || { ok=0; why+=("attempts: $a, AWS_MAX_ATTEMPTS=$want"); }
    if [ $ok = 1 ]; then
        pass "$what: EIO after the same $a attempts on both paths, the log says why"
    else
        fail "$what: EIO after the same attempts on both paths" "${why[@]}"
    fi
}

# 2. Every answer reset by the server (half before any byte, half mid-body).
fault_case reset "connections reset" "Recv failure: Connection reset by peer" --reset 1
# 3. Every error answered with 500 by the proxy.
fault_case status "status 500 on every GET" "HTTP 500 InternalError" --error 1 --error-status 500
# 4. Every answer stalls after half its body, for good: the stall timeout (1 s) ends it
#    (2 attempts, not the default 5: each waits out the timeout).
ATTEMPTS=2 fault_case stall "stalled answers (S3SHIM_TIMEOUT=1)" "Operation too slow. Less than 1 bytes/sec" --stall 1 --stall-s inf

# 5. Some answers reset, some 500, some stalled, over three reads of the object: every
#    fault the proxy made is one retry, and the bytes are whole.
fp mixed --reset 0.06 --error 0.05 --error-status 500 --stall 0.04 --stall-s inf || bail "start a fault proxy"
run own mixed "$FP_URL" S3SHIM_TIMEOUT=1 S3SHIM_PART_SIZE=5M READS=3
faults=$(awk '$6 != "-"' "$W/mixed.log" | wc -l)
retries=$(($(attempts mixed.own) - 1))
if [ "$(rc mixed.own)" = 0 ] && cmp -s "$W/obj" "$W/mixed.own.out" && own_used mixed.own && [ "$faults" = "$retries" ]; then
    pass "resets, 500s and stalls on some of $(wc -l <"$W/mixed.log") GETs: $retries retries for $faults faults, identical bytes"
else
    fail "resets, 500s and stalls on some GETs: one retry per fault, identical bytes" "exit $(rc mixed.own)" \
        "faults $faults, retries $retries" "$(grep -m3 'retrying\|error:' "$W/mixed.own.err")"
fi

# 6. Every HTTP/1.1 framing, from tests/s3/liteserver.py: a 3 MB object's first MiB comes
#    through http_lite, the rest through the engine, here its own receiver: Content-Length,
#    chunked with a trailer, HTTP/1.0 ended by the close, an interim 100 Continue, and a
#    server that closes every kept connection after its answer (the next request finds it
#    dead and goes on a new one, as with libcurl).
python3 "$here/liteserver.py" 900 >"$W/lite.ready" 2>"$W/lite.log" &
FP_PIDS+=($!)
for _ in $(seq 50); do grep -q READY "$W/lite.ready" 2>/dev/null && break; sleep 0.1; done
lport=$(awk '/READY/ {print $2}' "$W/lite.ready")
[ -n "$lport" ] || fail "start liteserver.py" "$(cat "$W/lite.log")"
for k in plain chunked close continue drop; do
    [ -n "$lport" ] || break
    python3 "$here/liteserver.py" body "/lite/$k.3000000" >"$W/lite.exp"
    if env -u AWS_PROFILE AWS_ENDPOINT_URL="http://127.0.0.1:$lport" S3SHIM_NO_SIGN=1 S3SHIM_ADDRESSING=path \
        S3SHIM_LOG=debug S3SHIM_PART_SIZE=5M LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" timeout -k 5 120 \
        cat "/s3/lite/$k.3000000" >"$W/lite.got" 2>"$W/lite.err" && cmp -s "$W/lite.exp" "$W/lite.got" &&
        own_used lite; then
        pass "framing '$k': the own receiver returns the object's bytes"
    else
        fail "framing '$k': the own receiver returns the object's bytes" "$(grep -v '^\[.*debug' "$W/lite.err" | head -c 600)"
    fi
done

# 7. Bodies cut short: a relay that closes every answer after 64 KiB (its head included).
up=${CLEAN#http://}
python3 "$here/truncproxy.py" "${up%:*}" "${up##*:}" 65536 120 >"$W/trunc.out" 2>&1 &
FP_PIDS+=($!)
for _ in $(seq 50); do grep -q READY "$W/trunc.out" 2>/dev/null && break; sleep 0.1; done
port=$(awk '/READY/ {print $2}' "$W/trunc.out")
if [ -z "$port" ]; then
    fail "start the truncating relay" "$(cat "$W/trunc.out")"
else
    ok=1
    for m in own curl; do
        run "$m" short "http://127.0.0.1:$port"
        [ "$(rc "short.$m")" = 5 ] && grep -q "transfer closed with [0-9]* bytes remaining" "$W/short.$m.err" || ok=0
    done
    own_used short.own || ok=0
    if [ $ok = 1 ]; then
        pass "bodies cut short: EIO on both paths, log says 'transfer closed with N bytes remaining'"
    else
        fail "bodies cut short: EIO on both paths" "own: exit $(rc short.own) $(grep -m1 'failed after' "$W/short.own.err")" \
            "curl: exit $(rc short.curl) $(grep -m1 'failed after' "$W/short.curl.err")"
    fi
fi

# 8. The waiting reader's buffer (s3_file.c, chunk_collect_into): a reader that reads a
#    part at a time waits for prefetched parts, whose bodies then land in its buffer; with
#    faults the retries and backups must write there only while it waits. The program
#    reads with os.read() in blocks of one part (5 MiB), like cat (st_blksize); READS=N
#    reads it N times over, PAUSE_S waits after the first block, REOPEN=1 closes the file
#    after it and reads everything from a new open, BS sets another block size.
BLOCKS_READER='
import errno, os, sys, time
open(sys.argv[1], "w").write("x")
bs = int(os.environ.get("BS", 5 << 20))
def once():
    fd = os.open(sys.argv[2], os.O_RDONLY)
    parts = [os.read(fd, bs)]
    if os.environ.get("REOPEN"):  # (what was fetched ahead for the first open is dropped)
        os.close(fd)
        fd = os.open(sys.argv[2], os.O_RDONLY)
        parts = []
    time.sleep(float(os.environ.get("PAUSE_S", "0")))
    while True:
        b = os.read(fd, bs)
        if not b:
            break
        parts.append(b)
    os.close(fd)
    return b"".join(parts)
try:
    runs = [once() for _ in range(int(os.environ.get("READS", "1")))]
    if any(r != runs[0] for r in runs):
        sys.exit(7)
except OSError as e:
    sys.exit(5 if e.errno == errno.EIO else 6)
open(sys.argv[3], "wb").write(runs[0])
'
handed() { grep -c "straight into the reader.s buffer" "$W/$1.err"; }
READER_SAVED=$READER
READER=$BLOCKS_READER
fp blocks || bail "start a fault proxy"
for m in own curl; do
    run "$m" blocks "$FP_URL" S3SHIM_PART_SIZE=5M
    if [ "$(rc "blocks.$m")" = 0 ] && cmp -s "$W/obj" "$W/blocks.$m.out" && [ "$(handed "blocks.$m")" -gt 0 ]; then
        pass "reads of a part at a time ($m): $(handed "blocks.$m") parts received straight into the reader's buffer, identical bytes"
    else
        fail "reads of a part at a time ($m): parts received into the reader's buffer, identical bytes" \
            "exit $(rc "blocks.$m"), handed $(handed "blocks.$m")" "$(grep -m3 'error:' "$W/blocks.$m.err")"
    fi
done
fp blocksmix --reset 0.1 --error 0.05 --error-status 500 --stall 0.05 --stall-s inf || bail "start a fault proxy"
for m in own curl; do
    run "$m" blocksmix "$FP_URL" S3SHIM_TIMEOUT=1 S3SHIM_PART_SIZE=5M READS=4
    if [ "$(rc "blocksmix.$m")" = 0 ] && cmp -s "$W/obj" "$W/blocksmix.$m.out" && [ "$(handed "blocksmix.$m")" -gt 0 ]; then
        pass "the same with resets, 500s and stalls ($m): $(($(attempts "blocksmix.$m") - 1)) retries, $(handed "blocksmix.$m") parts into the reader's buffer, identical bytes"
    else
        fail "the same with resets, 500s and stalls ($m)" "exit $(rc "blocksmix.$m"), handed $(handed "blocksmix.$m")" \
            "$(grep -m3 'retrying\|error:' "$W/blocksmix.$m.err")"
    fi
done
# Held read-ahead bodies (S3SHIM_READ_HOLD, core/s3/s3_read.c hold_for): the read-ahead
# GETs of a reader of a part at a time wait in the socket for its buffer (on: whatever
# the store's speed, up to 1 s), then land there: with faults, with a reader that pauses
# longer than the hold (the bodies go to chunk memory after all) and with one that closes
# the file while bodies wait (they are let go at once and dropped; a new open reads
# everything again).
held() { grep -c "its body was held for it" "$W/$1.err"; }
run own held "$CLEAN" S3SHIM_PART_SIZE=5M S3SHIM_READ_HOLD=on
expired=$(grep -c "nobody took the held body" "$W/held.own.err")
if [ "$(rc held.own)" = 0 ] && cmp -s "$W/obj" "$W/held.own.out" && [ "$(held held.own)" -gt 0 ] && [ "$expired" = 0 ]; then
    pass "held bodies: $(held held.own) read-ahead GETs waited in the socket for the reader's buffer, identical bytes"
else
    fail "held bodies: read-ahead GETs wait for the reader's buffer (none left to expire)" \
        "exit $(rc held.own), held $(held held.own), expired $expired" \
        "$(grep -m3 'error:' "$W/held.own.err")"
fi
# Their connections get a receive buffer that holds a whole body (2.5 MiB here) where the
# system allows one that large (net.core.rmem_max), and keep the kernel's otherwise.
rmem=$(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo 0)
roomy=$(grep -c "with a receive buffer of [0-9]* bytes, for held bodies" "$W/held.own.err")
if [ "$rmem" -ge $(((5 << 19) + (64 << 10))) ]; then
    [ "$roomy" -gt 0 ] && pass "held bodies: rmem_max $rmem, $roomy connections with room for a whole body" ||
        fail "held bodies: connections with room for a whole body (rmem_max $rmem)" "none in the log"
else
    [ "$roomy" = 0 ] && pass "held bodies: rmem_max $rmem is below a body: the kernel's buffers kept" ||
        fail "held bodies: rmem_max $rmem is below a body: the kernel's buffers kept" "$roomy connections set one"
fi
run own held1m "$CLEAN" S3SHIM_PART_SIZE=5M S3SHIM_READ_HOLD=on BS=$((1 << 20))
if [ "$(rc held1m.own)" = 0 ] && cmp -s "$W/obj" "$W/held1m.own.out" && [ "$(held held1m.own)" -gt 4 ]; then
    pass "held bodies for a reader of 1 MiB at a time (a piece per read): $(held held1m.own) held, identical bytes"
else
    fail "held bodies for a reader of 1 MiB at a time" "exit $(rc held1m.own), held $(held held1m.own)" \
        "$(grep -m3 'error:' "$W/held1m.own.err")"
fi
run own heldmix "$FP_URL" S3SHIM_TIMEOUT=1 S3SHIM_PART_SIZE=5M S3SHIM_READ_HOLD=on READS=6
if [ "$(rc heldmix.own)" = 0 ] && cmp -s "$W/obj" "$W/heldmix.own.out"; then
    pass "held bodies with resets, 500s and stalls: $(($(attempts heldmix.own) - 1)) retries, $(held heldmix.own) held, identical bytes"
else
    fail "held bodies with resets, 500s and stalls" "exit $(rc heldmix.own)" "$(grep -m3 'retrying\|error:' "$W/heldmix.own.err")"
fi
run own heldlate "$CLEAN" S3SHIM_PART_SIZE=5M S3SHIM_READ_HOLD=on PAUSE_S=1.3
late=$(grep -c "nobody took the held body within its hold" "$W/heldlate.own.err")
if [ "$(rc heldlate.own)" = 0 ] && cmp -s "$W/obj" "$W/heldlate.own.out" && [ "$late" -gt 0 ]; then
    pass "a reader slower than the hold: $late held bodies went to chunk memory when nobody came, identical bytes"
else
    fail "a reader slower than the hold: held bodies go to chunk memory" "exit $(rc heldlate.own), late $late" \
        "$(grep -m3 'error:' "$W/heldlate.own.err")"
fi
run own heldclose "$CLEAN" S3SHIM_PART_SIZE=5M S3SHIM_READ_HOLD=on REOPEN=1
if [ "$(rc heldclose.own)" = 0 ] && cmp -s "$W/obj" "$W/heldclose.own.out"; then
    pass "a file closed while bodies wait for its reader: let go and dropped, the next open reads identical bytes"
else
    fail "a file closed while bodies wait for its reader" "exit $(rc heldclose.own)" "$(grep -m3 'error:' "$W/heldclose.own.err")"
fi

# Hedging: two endpoints, one of which stalls some answers mid-body for 3 s; a backup's
# answer is copied into the reader's buffer. The other endpoint is 20 ms slower, so that
# most reads go to the stalling one (as in endpoints.sh). Stalls are drawn at random: a
# run in which no answer to us stalled tests nothing and is run again (up to 3 runs); a
# run with stalls and no backup fails.
fp hstall --stall 0.3 --stall-s 3 || bail "start a fault proxy"
HSTALL=$FP_URL
fp hlater --delay-ms 20 || bail "start a fault proxy"
HLATER=$FP_URL
for attempt in 1 2 3; do
    rm -f "$W"/hedged.own.*.json
    stalls0=$(grep -cw stall "$W/hstall.log" 2>/dev/null)
    run own hedged "$HSTALL" S3SHIM_PART_SIZE=5M READS=3 S3SHIM_ENDPOINTS="$HSTALL,$HLATER" S3SHIM_HEDGE=auto
    stalls=$(($(grep -cw stall "$W/hstall.log" 2>/dev/null) - ${stalls0:-0}))
    nh=$(python3 -c '
import json, sys
print(sum(c["ops"].get("hedge", {}).get("count", 0)
          for f in sys.argv[1:] for m in json.load(open(f))["mounts"] for c in m.get("children", [])))
' "$W"/hedged.own.*.json)
    if [ "$(rc hedged.own)" != 0 ] || ! cmp -s "$W/obj" "$W/hedged.own.out"; then
        fail "hedged reads of a part at a time: identical bytes" "exit $(rc hedged.own)" \
            "$(grep -m3 'error:' "$W/hedged.own.err")"
        break
    fi
    if [ "${nh:-0}" -gt 0 ] && [ "$(handed hedged.own)" -gt 0 ]; then
        pass "hedged reads of a part at a time: $nh backups, $(handed hedged.own) parts into the reader's buffer, identical bytes"
        break
    fi
    if [ "$stalls" -gt 0 ] || [ $attempt = 3 ]; then
        fail "hedged reads of a part at a time: backups and parts handed to the reader" \
            "stalled answers $stalls, backups ${nh:-0}, handed $(handed hedged.own) (run $attempt)"
        break
    fi
    echo "# hedged reads: no answer stalled in run $attempt; again"
done
READER=$READER_SAVED

# A store far away (every request waits 30 ms at the proxy): once its first GETs have
# answered, a sequential reader's read-ahead ceiling goes up at once to what covers that
# wait (core/readahead.h, ra_far_ceiling: at 30 ms, 96 MiB or more of 8 MiB parts)
# instead of doubling from two parts, epoch by epoch. (A nearby store keeping the first
# ceiling is tests/unit/test_readahead.c's: this rig's Swift itself answers a GET in
# 15-20 ms, which is far.)
fp far --delay-ms 30 || bail "start a fault proxy"
run own far "$FP_URL"
far_line=$(grep -o 'the store answers in [0-9.]* ms: read-ahead probed from [0-9]* MiB' "$W/far.own.err" | head -1)
far_ms=$(sed -n 's/.*answers in \([0-9]*\).*/\1/p' <<<"$far_line")
far_mib=$(sed -n 's/.*probed from \([0-9]*\) MiB/\1/p' <<<"$far_line")
if [ "$(rc far.own)" = 0 ] && cmp -s "$W/obj" "$W/far.own.out" && [ "${far_ms:-0}" -ge 30 ] && [ "${far_mib:-0}" -ge 96 ]; then
    pass "a store 30 ms away: $far_line (identical bytes)"
else
    fail "a store 30 ms away: the read-ahead starts at 96 MiB or more" "exit $(rc far.own): ${far_line:-no such line}"
fi
finish
