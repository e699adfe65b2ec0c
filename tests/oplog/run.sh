#!/usr/bin/env bash
# tests/oplog/run.sh - the op log (S3SHIM_OPLOG, docs/oplog.md) and `s3shim oplog`/`s3shim ab`.
#
#   BUILD=build SAN= tests/oplog/run.sh        (make test-oplog)
#
# Losslessness: tests/helpers/oplog_ops does a known number of operations over 8 threads,
# a fork whose child _exits with a descriptor open, an exec, and exits with one open; the
# log must hold exactly those records (count and bytes per op and process), with no
# sequence gap and footers that agree. Then SIGKILL and abort() (records recovered from
# unsealed chunks), a shell pipeline (bytes per op against the files), malformed,
# truncated and newer-version logs (one clear error each), the Perfetto trace, and
# `s3shim ab` on file:// against direct:// with a real program; `s3shim replay` of a recorded
# tar x + sha256sum on direct://, `s3shim oplog diff` and `--fio`, `ab --replay` (replay.sh);
# the S3 request records of a recorded cat and cp, through 503s and on two endpoints (requests.sh).
# Output: "ok - ..." / "not ok - ..." lines, then exactly one "N passed, M failed" line.
set -u
export LC_ALL=C
. "$(dirname "${BASH_SOURCE[0]}")/../preamble.sh"
. "$TOP/tests/variant.sh" "s3shim op log and ab tests"
ROOT=$TOP
OPS=$BUILD/tests/oplog_ops
. "$ROOT/tests/report.sh"
TMO=60

T=$(mktemp -d "${TMPDIR:-/tmp}/s3shim-oplog.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/back" "$T/log" "$T/m" "$T/bin"
# The command; in the ASan variant with libasan preloaded and the sanitizer options, so
# that what `s3shim run` starts has libasan too (it puts the library before it).
S3SHIM=$TOOL
if [ "$VARIANT" = asan ]; then
    printf '#!/bin/sh\nexec env LD_PRELOAD=%s %s %s "$@"\n' "$(gcc -print-file-name=libasan.so)" "${SAN_ENV[*]}" "$TOOL" > "$T/bin/s3shim"
    chmod +x "$T/bin/s3shim"
    S3SHIM=$T/bin/s3shim
fi
MP=/s3shim-oplog-$$/m # a mount prefix that does not exist on disk
export S3SHIM_MOUNTS="$MP=file://$T/back"
unset S3SHIM_ROOT_PID

# Count and bytes per (process image, op) from --jsonl: "SESSIONKEY OP COUNT BYTES".
tally() { # DIR
    "$S3SHIM" oplog "$1" --jsonl | python3 -c '
import json, sys, collections
c = collections.OrderedDict()
first = {}
for line in sys.stdin:
    r = json.loads(line)
    first.setdefault(r["pid"], len(first))
    key = (first[r["pid"]], r["session"], r["op"])
    n, b = c.get(key, (0, 0))
    c[key] = (n + 1, b + (r["res"] if r["op"] in ("read", "write") and r["res"] > 0 else 0))
for (p, s, op), (n, b) in sorted(c.items()):
    print("p%d.s%d %s %d %d" % (p, s, op, n, b))'
}

# --- 1. losslessness: threads, fork + _exit, exec, exit with a descriptor open ------------
if ! timeout $TMO env S3SHIM_OPLOG="$T/log/" "$S3SHIM" run -- "$OPS" "$MP" > "$T/ops.out" 2>&1; then
    fail "oplog_ops ran under the shim: $(tail -2 "$T/ops.out")"
else
    pass "oplog_ops ran under the shim (8 threads, fork, _exit, exec)"
fi
tally "$T/log" > "$T/tally"
cat > "$T/want" <<'EOF'
p0.s0 close 17 0
p0.s0 open 17 0
p0.s0 read 12000 1200000
p0.s0 stat 1 0
p0.s0 write 15000 13488000
p0.s1 open 1 0
p0.s1 read 5 20480
p1.s0 open 1 0
p1.s0 read 10 40960
EOF
if diff -u "$T/want" "$T/tally" > "$T/diff"; then
    pass "the log holds exactly the operations made: count and bytes per op and process image"
else
    fail "records differ from the operations made: $(tr '\n' ' ' < "$T/diff" | cut -c1-400)"
fi
"$S3SHIM" oplog "$T/log" --summary > "$T/sum" 2>&1
if grep -q "27052 records, 0 lost, 0 missing" "$T/sum" && ! grep -q "footer says" "$T/sum" &&
   grep -q "session 0  exec      27035 records" "$T/sum" && grep -q "session 1  exit          6 records" "$T/sum" &&
   grep -q "_exit        11 records" "$T/sum"; then
    pass "summary: 27052 records, 0 lost, 0 missing; footers of exec, exit and _exit agree with the records"
else
    fail "summary: $(head -1 "$T/sum"); $(grep -E 'session|footer' "$T/sum" | tr '\n' ';')"
fi
threads=$("$S3SHIM" oplog "$T/log" --jsonl | python3 -c '
import json, sys
print(len({(r["pid"], r["tid"]) for r in map(json.loads, sys.stdin) if r["session"] == 0}))')
if [ "$threads" = 10 ]; then pass "9 threads of the parent and the forked child's own are told apart"
else fail "threads seen: $threads (want 10)"; fi

# --- 2. SIGKILL and abort: records recovered up to the last one -------------------------
for how in kill abort; do
    rm -rf "$T/k" && mkdir "$T/k"
    (timeout $TMO "$S3SHIM" run --oplog "$T/k/" -- "$OPS" "$MP" $how; :) > /dev/null 2>&1
    t=$(tally "$T/k" | tr '\n' ' ')
    if [ "$t" = "p0.s0 open 1 0 p0.s0 write 100 409600 " ] && "$S3SHIM" oplog "$T/k" | grep -q "ended without a footer"; then
        pass "$how: 101 records recovered from the unsealed chunk, the session reported without a footer"
    else
        fail "$how: got '$t'"
    fi
done

# --- 2b. a log of many segments (4 MiB each), readied ahead by the kernel's io_uring
# worker (single-threaded), by the caller itself where there is no io_uring (loopnoring), or
# by the helper thread (loopmt): every record there after an exit and after SIGKILL -----
declare -A faults
for how in loop loopkill loopmt loopnoring; do
    rm -rf "$T/k" && mkdir "$T/k"
    (timeout $TMO "$S3SHIM" run --oplog "$T/k/" -- "$OPS" "$MP" $how 300000; :) > /dev/null 2> "$T/k.err"
    faults[$how]=$(sed -n 's/.*, \([0-9]*\) minor faults$/\1/p' "$T/k.err")
    t=$(tally "$T/k" | tr '\n' ' ')
    want="p0.s0 close 1 0 p0.s0 open 1 0 p0.s0 read 300000 1228800000 p0.s0 write 1 4096 "
    [ $how = loopkill ] && want="p0.s0 open 1 0 p0.s0 read 300000 1228800000 p0.s0 write 1 4096 "
    sum=$("$S3SHIM" oplog "$T/k" --summary 2>&1 | head -1)
    if [ "$t" = "$want" ] && echo "$sum" | grep -q " 0 lost, 0 missing"; then
        pass "$how 300000: every record of a 19 MB log (5 segments) there: $sum"
    else
        fail "$how 300000: got '$t'; $sum"
    fi
done
# Who faulted in the log's pages (segments 1 to 4, 4096 pages; segment 0 is set up before
# the preads): in a single-threaded program the io_uring worker, not the calling thread;
# without io_uring the calling thread itself (other faults, e.g. ASan's, are the same in both).
if [ -n "${faults[loop]:-}" ] && [ -n "${faults[loopnoring]:-}" ] && [ $((faults[loopnoring] - faults[loop])) -ge 3000 ]; then
    pass "the log's segments faulted in off the calling thread of a single-threaded program (its minor faults over 300000 preads: ${faults[loop]}; without io_uring: ${faults[loopnoring]})"
else
    fail "minor faults of the calling thread: '${faults[loop]:-}' with io_uring, '${faults[loopnoring]:-}' without (want 3000 or more fewer with it)"
fi

# --- 3. a shell pipeline: bytes per op against the files ---------------------------------
head -c 3000000 /dev/urandom > "$T/back/in.dat"
rm -rf "$T/p" && mkdir "$T/p"
if S3SHIM_OPLOG="$T/p" timeout $TMO "$S3SHIM" run -- sh -c "cat $MP/in.dat | gzip -1 | cat > $MP/out.gz && wc -c < $MP/out.gz > $MP/n" 2> "$T/p.err"; then
    out=$(stat -c %s "$T/back/out.gz")
    "$S3SHIM" oplog "$T/p" --jsonl > "$T/p.jsonl"
    got=$(python3 -c '
import json, sys
rd = {}; wr = {}
for r in map(json.loads, open(sys.argv[1])):
    if r["op"] == "read" and r["res"] > 0: rd[r["path"]] = rd.get(r["path"], 0) + r["res"]
    if r["op"] == "write" and r["res"] > 0: wr[r["path"]] = wr.get(r["path"], 0) + r["res"]
p = sys.argv[2]
print(rd.get(p + "/in.dat", 0), wr.get(p + "/out.gz", 0), rd.get(p + "/out.gz", 0), wr.get(p + "/n", 0))' "$T/p.jsonl" "$MP")
    want="3000000 $out $out $(stat -c %s "$T/back/n")"
    files=$(ls "$T/p" | wc -l)
    if [ "$got" = "$want" ] && "$S3SHIM" oplog "$T/p" | grep -q " 0 lost, 0 missing"; then
        pass "pipeline: bytes read and written per file as the files say ($want), $files process logs"
    else
        fail "pipeline: read/written '$got', want '$want'"
    fi
else
    fail "pipeline failed: $(head -2 "$T/p.err")"
fi

# --- 4. bad logs: one clear error each ------------------------------------------------------
one_error() { # NAME FILE PATTERN
    "$S3SHIM" oplog "$2" --summary > "$T/bad.out" 2> "$T/bad.err"
    rc=$?
    if [ $rc = 1 ] && [ "$(wc -l < "$T/bad.err")" = 1 ] && grep -q "$3" "$T/bad.err" && ! [ -s "$T/bad.out" ]; then
        pass "$1: one error line, exit 1 ($(cut -c1-100 < "$T/bad.err"))"
    else
        fail "$1: exit $rc, stderr: $(head -3 "$T/bad.err" | tr '\n' ' ')"
    fi
}
LOG=$(ls -S "$T/log"/*.s3ol | head -1) # the largest: the main process's (a child's may have no fourth chunk to corrupt)
echo "hello, not a log at all, but long enough to have a header of 128 bytes......................................................" > "$T/notlog"
one_error "not an op log" "$T/notlog" "not an s3shim op log"
head -c 100000 "$LOG" > "$T/trunc"
one_error "truncated log" "$T/trunc" "truncated op log"
head -c 60 "$LOG" > "$T/trunc2"
one_error "log shorter than its header" "$T/trunc2" "truncated op log"
python3 - "$LOG" "$T/newer" "$T/corrupt" <<'EOF'
import sys, struct
d = bytearray(open(sys.argv[1], 'rb').read())
n = bytearray(d); struct.pack_into('<I', n, 8, 2)  # version 2 (the header CRC is not reached)
open(sys.argv[2], 'wb').write(n)
c = bytearray(d); c[65536 * 3 + 64 + 100] ^= 0xff  # a byte inside a sealed chunk
open(sys.argv[3], 'wb').write(c)
EOF
one_error "newer format version" "$T/newer" "newer than this s3shim"
one_error "corrupt chunk" "$T/corrupt" "corrupt"
one_error "missing file" "$T/nonexistent" "No such file"

# --- 5. Perfetto trace ------------------------------------------------------------------------
if "$S3SHIM" oplog "$T/log" --perfetto "$T/trace.json" && python3 - "$T/trace.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
ev = d["traceEvents"]
x = [e for e in ev if e["ph"] == "X"]
names = [e for e in ev if e["ph"] == "M" and e["name"] == "process_name"]
assert len(x) == 27052, len(x)
assert len({(e["pid"], e["tid"]) for e in x}) == 10
assert len(names) == 3
assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in x)
EOF
then pass "--perfetto: valid trace JSON, 27052 events on 10 thread tracks, 3 named processes"
else fail "--perfetto trace is wrong"; fi

# --- 6. s3shim ab -----------------------------------------------------------------------------
if [ -x "$ROOT/tests/oplog/ab.sh" ]; then . "$ROOT/tests/oplog/ab.sh"; fi

# --- 7. s3shim replay, oplog diff, --fio, ab --replay ---------------------------------------
. "$ROOT/tests/oplog/replay.sh"

# --- 8. S3 request records: cat and cp through logging relays, 503s, two endpoints -----------
. "$ROOT/tests/oplog/requests.sh"

finish
