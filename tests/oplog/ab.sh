# tests/oplog/ab.sh - `s3shim ab` checks, sourced by tests/oplog/run.sh (uses its ok/fail,
# $S3SHIM, $T). A real program on a file:// and a direct:// arm of the same data; an arm
# whose data differ; --compare; latency percentiles per op kind against `s3shim oplog
# --summary`; --no-oplog; per-endpoint figures on S3 (1, 2 and a dead endpoint) against
# the stats files; the HTML report in headless Chromium.
AB=$T/ab
mkdir -p "$AB/f" "$AB/d" "$AB/x"
head -c 8000000 /dev/urandom > "$AB/f/big"
cp "$AB/f/big" "$AB/d/big"
head -c 8000000 /dev/urandom > "$AB/x/big" # same name, other bytes
ARMS=(--arm "file=/abdata=file://$AB/f" --arm "direct=/abdata=direct://$AB/d")

if TMPDIR=$AB timeout 120 "$S3SHIM" ab --runs 6 --warmup 1 --seed 7 "${ARMS[@]}" --json --report "$AB/r.html" \
       -- sh -c 'cat /abdata/big | md5sum' > "$AB/ab.json" 2> "$AB/ab.err" &&
   python3 - "$AB/ab.json" 2>> "$AB/ab.err" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert not d["results_differ"]
assert [a["name"] for a in d["arms"]] == ["file", "direct"]
for a in d["arms"]:
    assert len(a["runs"]) == 6 and all(r["exit"] == 0 for r in a["runs"])
    assert len({r["stdout_sha256"] for r in a["runs"]}) == 1
    # exactly: a warm-up run once added its figures to run 1
    assert all(r["read_bytes"] == 8000000 for r in a["runs"]), [r["read_bytes"] for r in a["runs"]]
c = {x["metric"]: x for x in d["comparisons"]}
# the five of wait4, and p50/p90/p99 of every op kind that is in every run's op log
lat = set.intersection(*[set(r["latency_us"]) for a in d["arms"] for r in a["runs"]])
assert "read" in lat and "open" in lat, lat
assert set(c) == {"wall_s", "user_s", "sys_s", "cpu_s", "maxrss_mb"} | \
    {"%s_p%s_us" % (op, q) for op in lat for q in ("50", "90", "99")}, sorted(c)
for x in c.values():
    # a ratio of CPU times that are 0 in some run has no value (null)
    assert x["ratio"] is None or x["ci95"][0] <= x["ratio"] <= x["ci95"][1], x
    assert x["verdict"] in ("faster", "slower", "less memory", "more memory", "no difference at this noise")
    assert x["verdict"] == "no difference at this noise" or x["p"] < 0.05
PY
then
    pass "ab: file:// against direct:// with cat|md5sum, 6 runs each, same results, a verdict per metric and per op kind's latency percentile ($(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([(x["metric"], x["verdict"]) for x in d["comparisons"]][0])' "$AB/ab.json"))"
else
    fail "ab file:// against direct://: $(grep -v warning "$AB/ab.err" | tail -3 | tr '\n' ' ')"
fi

# Each run's percentiles are what `s3shim oplog --summary` says of that run's op log; the
# arm's figure is their median over the runs.
if python3 - "$AB/ab.json" "$S3SHIM" 2> "$AB/lat.err" <<'PY'
import json, statistics, subprocess, sys
d = json.load(open(sys.argv[1]))
checked = 0
for a in d["arms"]:
    for r in a["runs"]:
        out = subprocess.run([sys.argv[2], "oplog", r["dir"] + "/oplog", "--summary"], capture_output=True,
                             text=True, check=True).stdout
        rows = {}
        for line in out.split("\n\n")[1].splitlines()[1:]:  # op mount count errors bytes p50 p90 p99 ...
            f = line.split()
            rows[f[0]] = (int(f[2]), float(f[5]), float(f[6]), float(f[7]))
        assert set(rows) == set(r["latency_us"]), (rows, r["latency_us"])
        for op, (n, p50, p90, p99) in rows.items():
            x = r["latency_us"][op]
            assert x["count"] == n, (op, x, n)
            for want, got in ((p50, x["p50"]), (p90, x["p90"]), (p99, x["p99"])):
                assert abs(want - got) <= 0.051, (r["dir"], op, want, got)
            checked += 1
    for op, x in a["latency_us"].items():
        for q in ("p50", "p90", "p99"):
            assert abs(x[q] - statistics.median(r["latency_us"][op][q] for r in a["runs"])) <= 0.0011, (op, q)  # JSON has 3 decimals
assert checked >= 2 * 6 * 3, checked
PY
then pass "ab: each run's p50/p90/p99 per op kind are what s3shim oplog --summary gives for its op log; the arm's are their medians"
else fail "ab latency percentiles against oplog --summary: $(tail -3 "$AB/lat.err" | tr '\n' ' ')"; fi

TMPDIR=$AB timeout 120 "$S3SHIM" ab --runs 3 --warmup 0 --seed 7 "${ARMS[@]}" --arm "other=/abdata=file://$AB/x" \
    -- sh -c 'cat /abdata/big | md5sum' > "$AB/diff.out" 2> "$AB/diff.err"
rc=$?
if [ $rc = 1 ] && grep -q "RESULTS DIFFER: arm other" "$AB/diff.err" && ! grep -q "arm direct gave" "$AB/diff.err" &&
   grep -q "p(Holm)" "$AB/diff.out" && grep -q "latency per op kind" "$AB/diff.out" &&
   grep -qE "^  read +\| +[0-9]+( +[0-9.]+){3} \| +[0-9]+( +[0-9.]+){3} \| +[0-9]+( +[0-9.]+){3}$" "$AB/diff.out" &&
   grep -qE "^  read_p99_us +other " "$AB/diff.out"; then
    pass "ab: an arm whose data differ is reported loudly (exit 1), Holm-corrected p values with 3 arms, read latency percentiles of the 3 arms side by side"
else
    fail "ab: differing arm not flagged (exit $rc): $(grep -v warning "$AB/diff.err" | head -2 | tr '\n' ' ')"
fi

if TMPDIR=$AB timeout 120 "$S3SHIM" ab --runs 2 --warmup 0 "${ARMS[@]}" --compare /abdata/o --json \
       --setup 'rm -rf /abdata/o' -- sh -c 'mkdir -p /abdata/o && cp /abdata/big /abdata/o/c && echo hi > /abdata/o/h' \
       > "$AB/cmp.json" 2> "$AB/cmp.err" &&
   python3 - "$AB/cmp.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
h = {r["tree_sha256"] for a in d["arms"] for r in a["runs"]}
assert len(h) == 1 and len(h.pop()) == 64, h
assert not d["results_differ"]
PY
then pass "ab --compare: the tree each arm wrote hashed the same in both arms"
else fail "ab --compare: $(head -3 "$AB/cmp.err" | tr '\n' ' ')"; fi

"$S3SHIM" ab --arm "only=/abdata=file://$AB/f" -- true > /dev/null 2> "$AB/usage.err"
if [ $? = 2 ] && grep -q "at least two --arm" "$AB/usage.err"; then pass "ab: one arm is a usage error"
else fail "ab: one arm not refused"; fi

# --no-oplog: no op log in any run, hence no latency figures or comparisons; the rest as before
if TMPDIR=$AB timeout 120 "$S3SHIM" ab --runs 2 --warmup 0 --no-oplog "${ARMS[@]}" --json --report "$AB/nolog.html" \
       -- sh -c 'cat /abdata/big | md5sum' > "$AB/nolog.json" 2> "$AB/nolog.err" &&
   python3 - "$AB/nolog.json" <<'PY'
import json, os, sys
d = json.load(open(sys.argv[1]))
assert {x["metric"] for x in d["comparisons"]} == {"wall_s", "user_s", "sys_s", "cpu_s", "maxrss_mb"}
for a in d["arms"]:
    assert a["latency_us"] == {}
    for r in a["runs"]:
        assert r["latency_us"] == {} and r["read_bytes"] >= 8000000
        assert not os.path.exists(r["dir"] + "/oplog"), r["dir"]
PY
then
    if grep -q -- "--no-oplog" "$AB/nolog.html" && ! grep -q 'id="latency"' "$AB/nolog.html"; then
        pass "ab --no-oplog: no op log written, no latency figures or comparisons, the stats still read"
    else fail "ab --no-oplog: the report does not say the log was off"; fi
else fail "ab --no-oplog: $(grep -v warning "$AB/nolog.err" | tail -3 | tr '\n' ' ')"; fi

# The report: one file, no scripts, inline SVG; rendered by headless Chromium.
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
svgs=$(grep -c "<svg" "$AB/r.html" 2> /dev/null)
if [ -s "$AB/r.html" ] && ! grep -qiE "<script|src=\"http|href=\"http" "$AB/r.html" && [ "${svgs:-0}" -ge 3 ] &&
   grep -q 'id="verdicts"' "$AB/r.html" && grep -q '<td>read_p90_us</td>' "$AB/r.html" &&
   grep -qE '<tr><td>read</td>(<td>[0-9.]+</td>){6}</tr>' "$AB/r.html"; then
    pass "ab --report: one self-contained HTML file, $svgs inline SVG plots, a verdict table with latency percentiles, a latency table"
else
    fail "ab --report: missing, has scripts or external links, or lacks plots ($svgs svg)"
fi
if [ -z "$CHROMIUM" ]; then
    fail "chromium is not installed (tests/install-deps.sh installs it): the report is not checked in a browser"
else
    rm -f "$AB/shot.png"
    timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --user-data-dir="$AB/chrome" \
        --screenshot="$AB/shot.png" --window-size=1200,1800 "file://$AB/r.html" > "$AB/chrome.log" 2>&1
    timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --user-data-dir="$AB/chrome" \
        --dump-dom "file://$AB/r.html" > "$AB/dom.html" 2>> "$AB/chrome.log"
    if python3 - "$AB/shot.png" "$AB/dom.html" <<'PY'
import sys, zlib, struct
png = open(sys.argv[1], "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000, len(png)
# decode enough to see that the page is not blank: count distinct row hashes
w, h = struct.unpack(">II", png[16:24])
idat = b"".join(png[i + 8:i + 8 + struct.unpack(">I", png[i:i + 4])[0]]
                for i in [j - 4 for j in range(len(png)) if png[j:j + 4] == b"IDAT"])
raw = zlib.decompress(idat)
rows = len(raw) // h
assert len({raw[r * rows + 1:(r + 1) * rows] for r in range(0, h, 4)}) > 20
dom = open(sys.argv[2]).read()
assert dom.count("<svg") >= 3 and dom.count("<polyline") >= 2 and "verdicts" in dom and 'id="latency"' in dom
PY
    then pass "ab --report renders in headless Chromium: a non-blank screenshot, the SVG plots in its DOM"
    else fail "ab --report in Chromium: $(tail -2 "$AB/chrome.log" | tr '\n' ' ')"; fi
fi

# Per-endpoint figures on S3: one arm with one endpoint, one with two (the same Swift under
# two names, round robin), one with a dead third endpoint (refused connections: errors and
# retries). Every run's figures are what its stats files say (read here with Python's
# json), and the arms' figures the medians.
if . "$TOP/tests/s3rig/s3env.sh" > "$AB/s3env.log" 2>&1; then
    E1=$AWS_ENDPOINT_URL
    case $E1 in
    *127.0.0.1*) E2=${E1/127.0.0.1/localhost} ;;
    *localhost*) E2=${E1/localhost/127.0.0.1} ;;
    *) E2=$E1/ ;;
    esac
    DEAD=http://127.0.0.1:9
    s3_put "$AB/f/big" ab/big > /dev/null
    B=s3://$S3_BUCKET/ab
    if TMPDIR=$AB timeout 300 "$S3SHIM" ab --runs 2 --warmup 0 --json --report "$AB/s3.html" \
           --arm "one=/s3ab=$B?endpoints=$E1" --arm "two=/s3ab=$B?endpoints=$E1,$E2&balance=rr" \
           --arm "dead=/s3ab=$B?endpoints=$E1,$DEAD&balance=rr" \
           -- sh -c 'md5sum < /s3ab/big; head -c 100000 /s3ab/big | md5sum' > "$AB/s3.json" 2> "$AB/s3.err" &&
       python3 - "$AB/s3.json" "$E1" "$E2" "$DEAD" 2>> "$AB/s3.err" <<'PY'
import glob, json, statistics, sys
d = json.load(open(sys.argv[1]))
e1, e2, dead = sys.argv[2:5]
assert not d["results_differ"]
arms = {a["name"]: a for a in d["arms"]}
for a in d["arms"]:
    for r in a["runs"]:
        want = {}
        for f in glob.glob(r["dir"] + "/stats/*.json"):
            for line in open(f):
                for m in json.loads(line)["mounts"]:
                    for c in m["children"]:
                        if c["name"] != "endpoint":
                            continue
                        w = want.setdefault(c["uri"], [0, 0, 0, 0])
                        req, ret = c["ops"].get("req", {}), c["ops"].get("retry", {})
                        w[0] += req.get("count", 0); w[1] += req.get("bytes", 0)
                        w[2] += ret.get("count", 0); w[3] += req.get("errors", 0)
        got = {e["uri"]: [e["requests"], e["bytes"], e["retries"], e["errors"]] for e in r["endpoints"]}
        assert got == want, (a["name"], got, want)
    for e in a["endpoints"]:
        for k, name in enumerate(("requests", "bytes", "retries", "errors")):
            vals = [next((x[name] for x in r["endpoints"] if x["uri"] == e["uri"]), 0) for r in a["runs"]]
            assert abs(e[name] - statistics.median(vals)) <= 0.5, (a["name"], e, name, vals)
one = {e["uri"]: e for e in arms["one"]["endpoints"]}
two = {e["uri"]: e for e in arms["two"]["endpoints"]}
dd = {e["uri"]: e for e in arms["dead"]["endpoints"]}
assert set(one) == {e1} and one[e1]["requests"] > 0 and one[e1]["bytes"] >= 8000000, one
assert set(two) == {e1, e2} and all(x["requests"] > 0 and x["errors"] == 0 for x in two.values()), two
assert sum(x["bytes"] for x in two.values()) >= 8000000, two
assert dd[dead]["errors"] > 0 and dd[e1]["errors"] == 0 and dd[e1]["bytes"] >= 8000000, dd
assert sum(x["retries"] for x in dd.values()) > 0, dd
PY
    then
        if grep -q 'id="endpoints"' "$AB/s3.html" && grep -q "$E2" "$AB/s3.html"; then
            pass "ab on S3: requests, bytes, retries and errors per endpoint and arm (1, 2, and a dead one) as every process's stats files give them; in the report too"
        else fail "ab on S3: the report has no endpoint table"; fi
    else
        fail "ab on S3 per endpoint: $(grep -v warning "$AB/s3.err" | tail -4 | tr '\n' ' ')"
    fi
else
    fail "an S3 server for ab (tests/s3rig/s3env.sh): $(tail -2 "$AB/s3env.log" | tr '\n' ' ')"
fi
