# tests/oplog/ab.sh - `s3shim ab` checks, sourced by tests/oplog/run.sh (uses its ok/fail,
# $S3SHIM, $T). A real program on a file:// and a direct:// arm of the same data; an arm
# whose data differ; --compare; the HTML report in headless Chromium.
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
    assert all(r["read_bytes"] >= 8000000 for r in a["runs"]), a["runs"][0]
c = {x["metric"]: x for x in d["comparisons"]}
assert set(c) == {"wall_s", "user_s", "sys_s", "cpu_s", "maxrss_mb"}
for x in c.values():
    # a ratio of CPU times that are 0 in some run has no value (null)
    assert x["ratio"] is None or x["ci95"][0] <= x["ratio"] <= x["ci95"][1], x
    assert x["verdict"] in ("faster", "slower", "less memory", "more memory", "no difference at this noise")
    assert x["verdict"] == "no difference at this noise" or x["p"] < 0.05
PY
then
    pass "ab: file:// against direct:// with cat|md5sum, 6 runs each, same results, a verdict per metric ($(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print([(x["metric"], x["verdict"]) for x in d["comparisons"]][0])' "$AB/ab.json"))"
else
    fail "ab file:// against direct://: $(grep -v warning "$AB/ab.err" | tail -3 | tr '\n' ' ')"
fi

TMPDIR=$AB timeout 120 "$S3SHIM" ab --runs 3 --warmup 0 --seed 7 "${ARMS[@]}" --arm "other=/abdata=file://$AB/x" \
    -- sh -c 'cat /abdata/big | md5sum' > "$AB/diff.out" 2> "$AB/diff.err"
rc=$?
if [ $rc = 1 ] && grep -q "RESULTS DIFFER: arm other" "$AB/diff.err" && ! grep -q "arm direct gave" "$AB/diff.err" &&
   grep -q "p(Holm)" "$AB/diff.out"; then
    pass "ab: an arm whose data differ is reported loudly (exit 1), Holm-corrected p values with 3 arms"
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

# The report: one file, no scripts, inline SVG; rendered by headless Chromium.
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
svgs=$(grep -c "<svg" "$AB/r.html" 2> /dev/null)
if [ -s "$AB/r.html" ] && ! grep -qiE "<script|src=\"http|href=\"http" "$AB/r.html" && [ "${svgs:-0}" -ge 3 ] &&
   grep -q 'id="verdicts"' "$AB/r.html"; then
    pass "ab --report: one self-contained HTML file, $svgs inline SVG plots, a verdict table"
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
assert dom.count("<svg") >= 3 and dom.count("<polyline") >= 2 and "verdicts" in dom
PY
    then pass "ab --report renders in headless Chromium: a non-blank screenshot, the SVG plots in its DOM"
    else fail "ab --report in Chromium: $(tail -2 "$AB/chrome.log" | tr '\n' ' ')"; fi
fi
