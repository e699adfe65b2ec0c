# tests/oplog/requests.sh - S3 request records in the op log (docs/oplog.md), sourced by
# tests/oplog/run.sh (uses pass/fail of tests/report.sh, $S3SHIM, $T, $TMO). The rig's Swift
# (tests/s3rig/s3env.sh, already up when replay.sh ran) is reached through relays of
# tests/s3rig/faultproxy.py that log every request they pass on: the server side's count.
# A recorded `cat` and `cp` on S3: one request record per request the relay saw, bytes that
# add up to the object, every request linked to an op record that exists and holds it, the
# log still without gaps; through a relay answering 20% of requests with 503: attempts > 1
# and the 503s recorded; two endpoints: two endpoint definitions, each with the requests its
# relay saw; the summary, --perfetto and oplog diff sections.
RQ=$T/rq
mkdir -p "$RQ/up" "$RQ/down" "$RQ/flt" "$RQ/two"
RQ_PIDS=()
rq_cleanup() { for p in "${RQ_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }

# rq_proxy NAME ARGS...: a relay in front of the rig's endpoint, logging to $RQ/NAME.log;
# its URL in RQ_URL.
RQ_N=0
rq_proxy() {
    local name=$1 up=${AWS_ENDPOINT_URL#http://}
    shift
    up=${up%%/*}
    RQ_N=$((RQ_N + 1))
    python3 "$TOP/tests/s3rig/faultproxy.py" --listen "127.0.3.$RQ_N:0" --target "$up" --lifetime 900 --quiet \
        --log "$RQ/$name.log" --seed "$RQ_N" "$@" > "$RQ/$name.ready" 2>&1 &
    RQ_PIDS+=($!)
    for _ in $(seq 100); do grep -q READY "$RQ/$name.ready" 2>/dev/null && break; sleep 0.05; done
    RQ_URL=http://$(sed -n 's/.*READY listen=\([^ ]*\).*/\1/p' "$RQ/$name.ready")
    [ "$RQ_URL" != http:// ]
}

# rq_check LOG WHAT...: checks of the log's JSON lines (python below); one line of facts or
# of what is wrong, exit status 0 when all hold.
rq_check() {
    local log=$1
    shift
    "$S3SHIM" oplog "$log" --jsonl | python3 -c '
import json, sys, collections
recs = [json.loads(l) for l in sys.stdin]
ops = {(r["pid"], r["tid"], r["seq"]): r for r in recs if r["op"] != "req"}
reqs = [r for r in recs if r["op"] == "req"]
want = dict(a.split("=", 1) for a in sys.argv[1:])
bad = []
n = len(reqs)
if "count" in want and n != int(want["count"]): bad.append("%d request records, the relays saw %s" % (n, want["count"]))
kinds = collections.Counter(r["kind"] for r in reqs)
ok = lambda r: 200 <= r["status"] < 300
def bytes_of(ks): return sum(r["bytes"] for r in reqs if r["kind"] in ks and ok(r))
if "getbytes" in want and bytes_of(("get", "get-range")) != int(want["getbytes"]):
    bad.append("GET bytes %d, object %s" % (bytes_of(("get", "get-range")), want["getbytes"]))
if "putbytes" in want and bytes_of(("put", "put-part")) != int(want["putbytes"]):
    bad.append("PUT bytes %d, file %s" % (bytes_of(("put", "put-part")), want["putbytes"]))
linked = 0
for r in reqs:
    if r["cause_seq"] is None: continue
    o = ops.get((r["pid"], r["cause_tid"], r["cause_seq"]))
    if o is None: bad.append("request %d links to no op record" % r["id"]); break
    if not (o["t_ns"] <= r["t_ns"] <= o["t_ns"] + o["lat_ns"]): bad.append("request %d outside its op" % r["id"]); break
    linked += 1
if want.get("linked") == "all" and linked != n: bad.append("%d of %d requests linked to an op" % (linked, n))
for k in want.get("kinds", "").split(","):
    if k and not kinds[k]: bad.append("no %s request (%s)" % (k, dict(kinds)))
if "prefetch" in want and not any(r["prefetch"] for r in reqs): bad.append("no prefetch marked")
retries = [r for r in reqs if r["attempt"] > 1]
st = collections.Counter(r["status"] for r in reqs)
if "retried" in want and not (retries and st[int(want["retried"])]):
    bad.append("attempts > 1: %d, statuses %s" % (len(retries), dict(st)))
eps = collections.Counter(r["endpoint"] for r in reqs)
eps_want = [e for e in want.get("eps", "").split(";") if e]
for e in eps_want:
    u, c = e.split(" ")
    if eps[u] != int(c): bad.append("endpoint %s: %d records, its relay saw %s" % (u, eps[u], c))
if eps_want and len(eps) != len(eps_want): bad.append("endpoints %s" % dict(eps))
if bad: print("; ".join(bad)); sys.exit(1)
print("%d requests (%s), %d linked to their op, %d retries, statuses %s, %d endpoint(s)" % (n, ", ".join("%s %d" % kv for kv in sorted(kinds.items())), linked, len(retries), dict(st), len(eps)))
' "$@"
}

rq_lines() { [ -f "$1" ] && wc -l < "$1" | tr -d ' ' || echo 0; }
# rq_settle LOG RELAYLOG...: a relay writes its line once it has passed the answer on; wait
# (at most 10 s) until the relays have at least as many lines as LOG has request records.
rq_settle() {
    local log=$1 n have
    shift
    n=$("$S3SHIM" oplog "$log" --jsonl | grep -c '"op":"req"')
    for _ in $(seq 100); do
        have=0
        for f in "$@"; do have=$((have + $(rq_lines "$f"))); done
        [ "$have" -ge "$n" ] && break
        sleep 0.1
    done
}

if . "$TOP/tests/s3rig/s3env.sh" > "$RQ/s3env.log" 2>&1 && rq_proxy clean && CLEAN=$RQ_URL &&
   rq_proxy faulty --error 0.2 --error-status 503 --seed 22 && FAULTY=$RQ_URL && rq_proxy second && SECOND=$RQ_URL; then
    pass "S3 through logging relays: $CLEAN, $FAULTY (503 on 20% of requests), $SECOND"
    head -c $((20 << 20)) /dev/urandom > "$RQ/obj"
    OBJ=$(stat -c %s "$RQ/obj")
    RQK=/s3/$S3_BUCKET/rq-$$

    # cp up (multipart: 8 MiB parts), then cat down, each recorded, through the clean relay
    : > "$RQ/clean.log"
    if S3SHIM_OPLOG="$RQ/up/" S3SHIM_ENDPOINTS="$CLEAN" S3SHIM_PART_SIZE=8M timeout $TMO "$S3SHIM" run -- \
        cp "$RQ/obj" "$RQK" > "$RQ/up.out" 2>&1; then
        rq_settle "$RQ/up" "$RQ/clean.log"
        if r=$(rq_check "$RQ/up" count="$(rq_lines "$RQ/clean.log")" putbytes="$OBJ" linked=all \
               kinds=mpu-create,put-part,mpu-complete); then
            pass "recorded cp to S3: $r"
        else
            fail "recorded cp to S3: $r"
        fi
    else
        fail "cp to S3 under the shim: $(tail -2 "$RQ/up.out")"
    fi
    : > "$RQ/clean.log"
    if S3SHIM_OPLOG="$RQ/down/" S3SHIM_ENDPOINTS="$CLEAN" timeout $TMO "$S3SHIM" run -- \
        cat "$RQK" > "$RQ/back" 2> "$RQ/down.err" && cmp -s "$RQ/obj" "$RQ/back"; then
        rq_settle "$RQ/down" "$RQ/clean.log"
        if r=$(rq_check "$RQ/down" count="$(rq_lines "$RQ/clean.log")" getbytes="$OBJ" linked=all prefetch=1 \
               kinds=get-range eps="$CLEAN $(rq_lines "$RQ/clean.log")"); then
            pass "recorded cat from S3: $r"
        else
            fail "recorded cat from S3: $r"
        fi
        "$S3SHIM" oplog "$RQ/down" --summary > "$RQ/down.sum"
        if grep -q " 0 lost, 0 missing" "$RQ/down.sum" && ! grep -q "footer says" "$RQ/down.sum" &&
           grep -q "^  endpoint $CLEAN\$" "$RQ/down.sum" && grep -Eq "^    get-range +[0-9]+ +[0-9]+ +0 +0 +$OBJ .* 206:" "$RQ/down.sum"; then
            pass "--summary: no record lost or missing, the footers agree; the endpoint's get-range line ($(grep '^    get-range' "$RQ/down.sum" | tr -s ' '))"
        else
            fail "--summary of the cat: $(cat "$RQ/down.sum")"
        fi
        if "$S3SHIM" oplog "$RQ/down" --perfetto "$RQ/down.json" && python3 - "$RQ/down.json" "$RQ/down" "$S3SHIM" <<'EOF'
import json, sys, subprocess
ev = json.load(open(sys.argv[1]))["traceEvents"]
recs = [json.loads(l) for l in subprocess.run([sys.argv[3], "oplog", sys.argv[2], "--jsonl"], capture_output=True, text=True).stdout.splitlines()]
reqs = [r for r in recs if r["op"] == "req"]
b = [e for e in ev if e["ph"] == "b" and e["cat"] == "s3"]
e = [x for x in ev if x["ph"] == "e" and x["cat"] == "s3"]
assert len(b) == len(reqs) == len(e), (len(b), len(reqs), len(e))
assert sorted((x["pid"], x["tid"]) for x in b) == sorted((r["pid"], r["tid"]) for r in reqs)
assert all(x["args"]["cause_seq"] > 0 and x["args"]["endpoint"] for x in b)
ends = {x["id2"]["local"]: x["ts"] for x in e}
assert all(ends[x["id2"]["local"]] >= x["ts"] for x in b)
EOF
        then pass "--perfetto: one async slice per request on the track of the thread that logged it, with its op and endpoint"
        else fail "--perfetto request slices"; fi
    else
        fail "cat from S3 under the shim: $(tail -2 "$RQ/down.err")"
    fi

    # 503 on 20% of requests: retried, and the 503s are in the log with their attempt numbers.
    # Seed 22: the relay's first connection answers its first request (the open's GET, alone
    # in flight) with a 503 and the next one without, so every run has at least one retry.
    : > "$RQ/faulty.log"
    if S3SHIM_OPLOG="$RQ/flt/" S3SHIM_ENDPOINTS="$FAULTY" timeout $TMO "$S3SHIM" run -- \
        cat "$RQK" > "$RQ/back2" 2> "$RQ/flt.err" && cmp -s "$RQ/obj" "$RQ/back2"; then
        rq_settle "$RQ/flt" "$RQ/faulty.log"
        if r=$(rq_check "$RQ/flt" count="$(rq_lines "$RQ/faulty.log")" getbytes="$OBJ" linked=all retried=503); then
            pass "cat through 503s: $r"
        else
            fail "cat through 503s: $r"
        fi
        if "$S3SHIM" oplog "$RQ/flt" --summary | grep -Eq "^    get-range +[0-9]+ +[0-9]+ +[1-9][0-9]* .*503:[1-9]"; then
            pass "--summary counts the retries and the 503s"
        else
            fail "--summary with 503s: $("$S3SHIM" oplog "$RQ/flt" --summary | grep -A3 'S3 requests')"
        fi
    else
        fail "cat through 503s under the shim: $(tail -2 "$RQ/flt.err")"
    fi

    # two endpoints (round robin): two endpoint definitions, each with its relay's requests
    : > "$RQ/clean.log"
    : > "$RQ/second.log"
    if S3SHIM_OPLOG="$RQ/two/" S3SHIM_ENDPOINTS="$CLEAN,$SECOND" S3SHIM_BALANCE=rr S3SHIM_HEDGE=off timeout $TMO \
        "$S3SHIM" run -- cat "$RQK" > "$RQ/back3" 2> "$RQ/two.err" && cmp -s "$RQ/obj" "$RQ/back3"; then
        rq_settle "$RQ/two" "$RQ/clean.log" "$RQ/second.log"
        n1=$(rq_lines "$RQ/clean.log")
        n2=$(rq_lines "$RQ/second.log")
        if r=$(rq_check "$RQ/two" count=$((n1 + n2)) getbytes="$OBJ" linked=all eps="$CLEAN $n1;$SECOND $n2"); then
            pass "cat on two endpoints: $r"
        else
            fail "cat on two endpoints: $r"
        fi
        "$S3SHIM" oplog diff "$RQ/down" "$RQ/two" > "$RQ/diff.out"
        if grep -q "^  S3 request (any endpoint)" "$RQ/diff.out" && grep -q "^  $CLEAN " "$RQ/diff.out" &&
           grep -q "^  $SECOND " "$RQ/diff.out" && grep -q "^  get-range " "$RQ/diff.out"; then
            pass "oplog diff: requests per kind and per endpoint, one run on one endpoint, the other on two"
        else
            fail "oplog diff per endpoint: $(sed -n '/S3 request/,$p' "$RQ/diff.out" | head -12)"
        fi
    else
        fail "cat on two endpoints under the shim: $(tail -2 "$RQ/two.err")"
    fi
    s3_rm "rq-$$" > /dev/null 2>&1
else
    fail "an S3 server and relays for the request records: $(tail -2 "$RQ/s3env.log" | tr '\n' ' ') $(cat "$RQ"/*.ready 2>/dev/null | tr '\n' ' ')"
fi
rq_cleanup
