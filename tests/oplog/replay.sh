# tests/oplog/replay.sh - `s3shim replay`, `s3shim oplog diff`, `--fio` and `ab --replay`,
# sourced by tests/oplog/run.sh (uses pass/fail of tests/report.sh, $S3SHIM, $T, $MP, tally and the bad
# logs $T/notlog, $T/trunc, $T/newer). A recorded `tar x` + `sha256sum` run on file:// is
# replayed on direct:// (--prepare makes the archive it read; the same op counts and bytes
# come out), twice (the second --prepare removes what the first made), on S3 (a Swift of
# its own, tests/s3rig/s3env.sh), at a speed and as
# soon as possible; a rename; a replay that differs; malformed logs; two runs compared.
RP=$T/rp
mkdir -p "$RP/d" "$RP/empty" "$RP/af" "$RP/ad" "$RP/log" "$RP/r1" "$RP/r2" "$RP/log2"
MPR=/s3shim-replay-$$/m # the recording's mount; the replays mount the same prefix elsewhere
mkdir -p "$RP/f/out"
tar cf "$RP/f/src.tar" -C "$TOP" core tools
rec_ok=1
S3SHIM_OPLOG="$RP/log/" timeout $TMO "$S3SHIM" run --mount "$MPR=file://$RP/f" -- \
    sh -c "tar xf $MPR/src.tar -C $MPR/out && cd $MPR/out && sha256sum \$(find . -type f | sort) > /dev/null" \
    > "$RP/rec.out" 2>&1 || rec_ok=0
if [ $rec_ok = 1 ] && [ -f "$RP/f/out/tools/replay.c" ]; then
    pass "recorded tar x + sha256sum on file:// ($(ls "$RP/log" | wc -l) process logs)"
else
    fail "recording tar x + sha256sum failed: $(tail -2 "$RP/rec.out")"
fi

# count and bytes per op over the whole log, closes apart: "OP COUNT BYTES" (S3 requests left out)
optally() { # LOG
    "$S3SHIM" oplog "$1" --jsonl | python3 -c '
import json, sys, collections
c = collections.Counter(); b = collections.Counter()
for r in map(json.loads, sys.stdin):
    if r["op"] == "req": continue  # S3 requests (requests.sh): not ops of the program
    k = r["call"] if r["op"] == "meta" else r["op"]
    c[k] += 1
    if r["op"] in ("read", "write") and r["res"] > 0: b[k] += r["res"]
for k in sorted(c): print(k, c[k], b[k])'
}
optally "$RP/log" | grep -v '^close ' > "$RP/want"
rec_close=$(optally "$RP/log" | awk '$1 == "close" {print $2}')
for n in 1 2; do
    S3SHIM_OPLOG="$RP/r$n/" timeout $TMO "$S3SHIM" replay "$RP/log" --mount "$MPR=direct://$RP/d" --prepare --asap \
        > "$RP/r$n.out" 2> "$RP/r$n.err"
    rc=$?
    optally "$RP/r$n" | grep -v '^close ' > "$RP/got$n"
    closes=$(optally "$RP/r$n" | awk '$1 == "close" {print $2}')
    skipped=$(awk '$1 == "close" {print $5}' "$RP/r$n.out")
    if [ $rc = 0 ] && grep -q " 0 differed" "$RP/r$n.out" && diff -q "$RP/want" "$RP/got$n" > /dev/null &&
       [ "$closes" = $((rec_close - skipped)) ] && [ -f "$RP/d/out/tools/replay.c" ] && grep -q "as soon as possible" "$RP/r$n.err"; then
        pass "replay $n on direct:// (--prepare, --asap): the recorded op counts and bytes per op, 0 differed ($(head -1 "$RP/r$n.out" | cut -d: -f2-))"
    else
        fail "replay $n on direct://: exit $rc; $(head -1 "$RP/r$n.out"); $(diff "$RP/want" "$RP/got$n" | tr '\n' ' '); closes $closes of $rec_close - $skipped; $(grep -v warning "$RP/r$n.err" | head -3 | tr '\n' ' ')"
    fi
done
if grep -q "prepare: [1-9][0-9]* removed" "$RP/r2.err"; then pass "the second --prepare removed what the first replay made"
else fail "second prepare: $(grep prepare "$RP/r2.err")"; fi

# the same on S3 (the rig's Swift, started here, or AWS_ENDPOINT_URL): about 20 s
mkdir -p "$RP/s3"
if . "$TOP/tests/s3rig/s3env.sh" > "$RP/s3env.log" 2>&1; then
    S3SHIM_OPLOG="$RP/s3/" timeout 300 "$S3SHIM" replay "$RP/log" --mount "$MPR=s3://$S3_BUCKET/rp" --prepare --asap \
        > "$RP/s3.out" 2> "$RP/s3.err"
    rc=$?
    optally "$RP/s3" | grep -v '^close ' > "$RP/gots3"
    if [ $rc = 0 ] && grep -q " 0 differed" "$RP/s3.out" && diff -q "$RP/want" "$RP/gots3" > /dev/null &&
       [ "$(s3_ls rp/out/tools/ | grep -c 'replay.c$')" = 1 ]; then
        pass "replay on S3 (--prepare, --asap): the recorded op counts and bytes per op, 0 differed"
    else
        fail "replay on S3: exit $rc; $(head -1 "$RP/s3.out"); $(diff "$RP/want" "$RP/gots3" | tr '\n' ' '); $(grep -v warning "$RP/s3.err" | head -3 | tr '\n' ' ')"
    fi
else
    fail "an S3 server for the replay (tests/s3rig/s3env.sh): $(tail -2 "$RP/s3env.log" | tr '\n' ' ')"
fi

# --speed: no op is issued before its time, so the replay takes at least the scheduled time;
# --remap moves the paths to another prefix (and oplog diff lines them up below their mounts)
MPO=/s3shim-replay-$$/other
mkdir -p "$RP/e" "$RP/s"
S3SHIM_OPLOG="$RP/s/" timeout $TMO "$S3SHIM" replay "$RP/log" --remap "$MPR=$MPO" --mount "$MPO=file://$RP/e" --prepare --speed 0.5 \
    > "$RP/s.out" 2> "$RP/s.err"
rc=$?
if [ -f "$RP/e/out/tools/replay.c" ] && "$S3SHIM" oplog diff "$RP/r1" "$RP/s" | grep -q "the sequences are the same"; then
    pass "--remap: the replay on another prefix; oplog diff finds the same sequences below the mounts"
else
    fail "--remap: exit $rc, $(ls "$RP/e"), $("$S3SHIM" oplog diff "$RP/r1" "$RP/s" 2>&1 | grep -A2 'part ways' | head -3 | tr '\n' ' ')"
fi
if [ $rc = 0 ] && python3 - "$RP/s.err" <<'EOF'
import re, sys
t = open(sys.argv[1]).read()
m = re.search(r"replay: ([0-9.]+) s at speed 0.5 \(recorded: ([0-9.]+) s, scheduled: ([0-9.]+) s\); ops issued late by p50", t)
took, rec, sched = map(float, m.groups())
assert abs(sched - 2 * rec) <= 0.002, (sched, rec)
assert took >= sched, (took, sched)
assert ("kept up" in t) != ("fell behind" in t)
EOF
then pass "--speed 0.5: scheduled twice the recorded time, took at least that, lateness reported ($(grep -o 'kept up\|fell behind: [0-9]* of [0-9]*' "$RP/s.err"))"
else fail "--speed 0.5: exit $rc, $(head -3 "$RP/s.err" | tr '\n' ' ')"; fi

# rename (the record names the new path), lseek (tail -c), a failed open replayed as such
rm -rf "$RP/g" && mkdir -p "$RP/g"
S3SHIM_OPLOG="$RP/log2/" timeout $TMO "$S3SHIM" run --mount "$MPR=file://$RP/g" -- \
    sh -c "cp /etc/services $MPR/a && mv $MPR/a $MPR/b && tail -c 3 $MPR/b && ! cat $MPR/nope 2>/dev/null" > /dev/null 2>&1
rm -rf "$RP/h" && mkdir -p "$RP/h"
timeout $TMO "$S3SHIM" replay "$RP/log2" --mount "$MPR=file://$RP/h" --prepare --asap > "$RP/mv.out" 2> "$RP/mv.err"
rc=$?
if [ $rc = 0 ] && [ -f "$RP/h/b" ] && [ ! -e "$RP/h/a" ] && [ "$(stat -c %s "$RP/h/b")" = "$(stat -c %s /etc/services)" ] &&
   grep -q "^  meta  *1 .* 0 *0$" "$RP/mv.out" && grep -q "^  lseek  *[1-9][0-9]* .* 0 *0$" "$RP/mv.out" &&
   grep -q "^  read  *1  *3 " "$RP/mv.out"; then
    pass "rename replayed to the recorded new name, lseek recorded and replayed, the failed open of a missing file failed again"
else
    fail "rename replay: exit $rc, $(cat "$RP/mv.out" "$RP/mv.err" | head -12 | tr '\n' ' '); $(ls "$RP/h")"
fi

# dup, dup2, F_DUPFD: recorded (fd = the copy, len = the descriptor copied), and replayed as
# copies of the replay's own descriptor: a read through a copy after the original's close
# still reads, at the shared offset.
rm -rf "$RP/dsrc" "$RP/ddst" "$RP/log3" && mkdir -p "$RP/dsrc" "$RP/ddst" "$RP/log3" && seq 100000 > "$RP/dsrc/f"
S3SHIM_OPLOG="$RP/log3/" timeout $TMO "$S3SHIM" run --mount "$MPR=file://$RP/dsrc" -- python3 -c '
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
d = os.dup(fd); os.dup2(fd, 40); f = fcntl.fcntl(fd, fcntl.F_DUPFD, 50)
os.read(d, 1000); os.lseek(40, 10, 0); os.read(f, 10)
os.close(fd); os.read(d, 10); os.close(d); os.close(40); os.close(f)' "$MPR/f" > /dev/null 2>&1
"$S3SHIM" oplog "$RP/log3" --jsonl > "$RP/dup.jsonl" 2>&1
timeout $TMO "$S3SHIM" replay "$RP/log3" --mount "$MPR=file://$RP/ddst" --prepare --asap > "$RP/dup.out" 2> "$RP/dup.err"
rc=$?
if [ $rc = 0 ] && python3 - "$RP/dup.jsonl" <<'EOF' && grep -q "^  dup  *3 .* 0 *0$" "$RP/dup.out" && grep -q "^  read  *3  *1020 " "$RP/dup.out"
import json, sys
ops = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
dups = [(o["fd"], o["len"], o["res"]) for o in ops if o.get("op") == "dup"]
opn = [o["res"] for o in ops if o.get("op") == "open"][0]
assert len(dups) == 3 and all(l == opn for _, l, _ in dups) and [r for _, _, r in dups][1:] == [40, 50], dups
assert sum(1 for o in ops if o.get("op") == "close") == 4
EOF
then pass "dup, dup2, F_DUPFD recorded (copied fd, new fd) and replayed as copies: 3 dups, 4 closes, reads through copies after the original's close"
else fail "dup recorded and replayed: exit $rc" "$RP/dup.out" "$RP/dup.err" "$(grep dup "$RP/dup.jsonl" | head -3)"; fi

# a replay that differs: the archive the log read is missing (no --prepare)
timeout $TMO "$S3SHIM" replay "$RP/log" --mount "$MPR=file://$RP/empty" --asap > "$RP/x.out" 2> "$RP/x.err"
rc=$?
if [ $rc = 1 ] && grep -q "differs: op .* open $MPR/src.tar .*No such file or directory, recorded" "$RP/x.err" &&
   ! grep -q " 0 differed" "$RP/x.out"; then
    pass "a replay that differs exits 1 and names the first ops ($(grep -c differs: "$RP/x.err") lines)"
else
    fail "differing replay: exit $rc, $(head -2 "$RP/x.err" | tr '\n' ' ')"
fi

# malformed, truncated, newer-version logs, and a path no mount covers: one clear error
replay_error() { # NAME FILE PATTERN [ARGS]
    local name=$1 file=$2 pat=$3
    shift 3
    timeout $TMO "$S3SHIM" replay "$file" --asap "$@" > "$RP/bad.out" 2> "$RP/bad.err"
    local rc=$?
    if [ $rc = 2 ] && [ "$(wc -l < "$RP/bad.err")" = 1 ] && grep -q "$pat" "$RP/bad.err" && ! [ -s "$RP/bad.out" ]; then
        pass "replay of $name: one error line, exit 2 ($(cut -c1-90 < "$RP/bad.err"))"
    else
        fail "replay of $name: exit $rc, $(head -3 "$RP/bad.err" | tr '\n' ' ')"
    fi
}
replay_error "not an op log" "$T/notlog" "not an s3shim op log"
replay_error "a truncated log" "$T/trunc" "truncated op log"
replay_error "a newer-version log" "$T/newer" "newer than this s3shim"
replay_error "a log whose paths no mount covers" "$RP/log" "is under none of the replay's mounts" --mount /elsewhere=file://$RP/d

# oplog diff: two replays agree op by op; runs that part ways are flagged at the first op
if "$S3SHIM" oplog diff "$RP/r1" "$RP/r2" > "$RP/diff.out" 2>&1 && grep -q "the sequences are the same" "$RP/diff.out" &&
   grep -q "^  read " "$RP/diff.out" && grep -q "A: direct://" "$RP/diff.out"; then
    pass "oplog diff of two replays: the same sequences, latency per op, mount and file"
else
    fail "oplog diff of two replays: $(grep -i 'part ways\|error' "$RP/diff.out" | head -3 | tr '\n' ' ')"
fi
printf 'one\n' > "$RP/g/x1" && printf 'two\n' > "$RP/g/x2" && printf 'three\n' > "$RP/g/x3"
for v in 2 3; do
    rm -rf "$RP/c$v" && mkdir "$RP/c$v" && S3SHIM_OPLOG="$RP/c$v/" "$S3SHIM" run --mount "$MPR=file://$RP/g" -- cat "$MPR/x1" "$MPR/x$v" > /dev/null
done
"$S3SHIM" oplog diff "$RP/c2" "$RP/c3" > "$RP/diff2.out" 2>&1
rc=$?
if [ $rc = 1 ] && grep -q "the sequences part ways" "$RP/diff2.out" && grep -q "A: open $MPR/x2" "$RP/diff2.out" &&
   grep -q "B: open $MPR/x3" "$RP/diff2.out"; then
    pass "oplog diff flags a changed sequence at its first differing op (open x2 / open x3), exit 1"
else
    fail "oplog diff of a changed run: exit $rc, $(grep -A2 'part ways' "$RP/diff2.out" | head -4 | tr '\n' ' ')"
fi
"$S3SHIM" oplog diff "$RP/c2" "$T/trunc" > "$RP/diff3.out" 2> "$RP/diff3.err"
if [ $? = 2 ] && [ "$(wc -l < "$RP/diff3.err")" = 1 ] && grep -q "truncated op log" "$RP/diff3.err"; then
    pass "oplog diff with a truncated log: one error line, exit 2"
else fail "oplog diff with a truncated log: $(head -2 "$RP/diff3.err")"; fi

# --fio: fio's trace format v3
if "$S3SHIM" oplog "$RP/log" --fio "$RP/trace.iolog" && python3 - "$RP/trace.iolog" "$RP/want" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
assert lines[0] == "fio version 3 iolog"
want = {l.split()[0]: int(l.split()[2]) for l in open(sys.argv[2])}
state, last, rd, wr = {}, 0, 0, 0
for l in lines[1:]:
    f = l.split()
    t, name, act = int(f[0]), f[1], f[2]
    assert t >= last, l
    last = t
    if act == "add": assert name not in state; state[name] = 0
    elif act == "open": assert state[name] == 0, l; state[name] = 1
    elif act == "close": assert state[name] == 1, l; state[name] = 0
    elif act in ("read", "write"):
        assert state[name] == 1 and len(f) == 5 and int(f[3]) >= 0 and int(f[4]) > 0, l
        if act == "read": rd += int(f[4])
        else: wr += int(f[4])
    else: assert act == "sync", l
assert all(v == 0 for v in state.values())
assert rd == want["read"] and wr == want["write"], (rd, wr, want)
EOF
then pass "--fio: a fio v3 iolog, every file added, opened and closed, the bytes read and written of the log"
else fail "--fio output is wrong"; fi

# ab --replay: replays compared like commands
if TMPDIR=$RP timeout 300 "$S3SHIM" ab --runs 2 --warmup 0 --seed 3 --replay "$RP/log" \
       --arm "file=$MPR=file://$RP/af" --arm "direct=$MPR=direct://$RP/ad" -- --asap > "$RP/ab.out" 2> "$RP/ab.err" &&
   ! grep -q "RESULTS DIFFER" "$RP/ab.err" && [ "$(grep -c '^  \(file\|direct\) .* 0/' "$RP/ab.out")" = 2 ] &&
   [ -f "$RP/ad/out/tools/replay.c" ]; then
    pass "ab --replay: the replay on file:// and on direct://, 2 runs each, the same results"
else
    fail "ab --replay: $(grep -v warning "$RP/ab.err" | tail -3 | tr '\n' ' ') $(tail -3 "$RP/ab.out" | tr '\n' ' ')"
fi
