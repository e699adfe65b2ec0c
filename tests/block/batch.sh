#!/usr/bin/env bash
# tests/block/batch.sh - closes of new files committed together while one process is
# the store's only user (core/block/block_batch.c; docs/block-format.md "Closes
# committed together"): the batch is used (commits far fewer than files), the process
# sees its own closed files as on a disk, another process that starts looking sees
# every file closed before it looked (a reader fed names through a pipe, a forked child,
# an exec'd program), a process already present keeps the writer from batching, a
# stopped holder makes a reader fail with EIO after the share wait, and writers
# SIGKILLed with a batch lose nothing they closed (the next process commits the batch
# log) and leave a clean store.
#
#   BUILD=build SAN= tests/block/batch.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/batch.sh (ASan+UBSan)
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" batch "s3shim block:// closes committed together"

new_dev 256 || bail "no device"
DEV=$dev
"$TOOL" blk format "$DEV" >"$OUT" 2>&1 || bail "format the store" "$OUT"
commits() { "$TOOL" blk check "$DEV" 2>&1 | sed -n 's/.*: commit \([0-9]*\),.*/\1/p'; }
# (a long batch window: what is checked below cannot pass by the window's end committing)
LONG=(S3SHIM_BLOCK_BATCH_MS=1000)

# --- 1. the batch is used; every file whole -------------------------------------------
cat >"$W/create.py" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
for i in range(n):
    with open("%s/f%05d" % (d, i), "wb") as f: f.write(b"%d;" % i * (1 + i % 700))
EOF
cat >"$W/verify.py" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
bad = [i for i in range(n) if not os.path.exists("%s/f%05d" % (d, i)) or
       open("%s/f%05d" % (d, i), "rb").read() != b"%d;" % i * (1 + i % 700)]
names = sorted(os.listdir(d))
print("missing or wrong: %d, listed: %d" % (len(bad), len(names)))
sys.exit(1 if bad or len(names) != n else 0)
EOF
c0=$(commits)
shim "$DEV" "${LONG[@]}" "$PY" "$W/create.py" "$MP/one" 2000 2>"$OUT"
c1=$(commits)
shim "$DEV" "$PY" "$W/verify.py" "$MP/one" 2000 >>"$OUT" 2>&1 && ok=1 || ok=0
if [ "$ok" = 1 ] && [ -n "$c1" ] && [ $((c1 - c0)) -lt 200 ]; then
    pass "a lone process creating 2,000 files: $((c1 - c0)) commits (batches of up to 64), every file whole and listed"
else fail "a lone process creating 2,000 files: fewer than 200 commits ($c0 -> $c1), every file whole and listed" "$OUT"; fi
check_clean "$DEV" "after the batched creates"

# --- 2. the process's own calls see its closed files as on a disk ----------------------
cat >"$W/own.py" <<'EOF'
import errno, os, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
out = []
def w(name, data):
    with open(os.path.join(d, name), "wb") as f: f.write(data)
def tryit(label, fn):
    try: out.append("%s: %r" % (label, fn()))
    except OSError as e: out.append("%s: %s" % (label, errno.errorcode[e.errno]))
w("a", b"alpha"); w("b", b"bravo"); w("c", b"charlie")
tryit("stat a", lambda: os.stat(os.path.join(d, "a")).st_size)
tryit("read b", lambda: open(os.path.join(d, "b"), "rb").read())
tryit("exists c", lambda: os.path.exists(os.path.join(d, "c")))
w("d", b"delta")
tryit("create below a file", lambda: open(os.path.join(d, "d", "x"), "wb").close())
tryit("O_EXCL on a closed file", lambda: os.close(os.open(os.path.join(d, "a"), os.O_WRONLY | os.O_CREAT | os.O_EXCL)))
w("e", b"echo")
tryit("list", lambda: sorted(os.listdir(d)))
w("f.tmp", b"foxtrot"); w("g", b"golf-old")
tryit("rename over", lambda: os.rename(os.path.join(d, "f.tmp"), os.path.join(d, "g")))
tryit("read g", lambda: open(os.path.join(d, "g"), "rb").read())
w("h", b"hotel")
tryit("unlink h", lambda: os.unlink(os.path.join(d, "h")))
tryit("exists h", lambda: os.path.exists(os.path.join(d, "h")))
w("i", b"india")
tryit("chmod i", lambda: os.chmod(os.path.join(d, "i"), 0o600))
tryit("mode i", lambda: oct(os.stat(os.path.join(d, "i")).st_mode & 0o777))
w("j", b"juliet")
tryit("utime j", lambda: os.utime(os.path.join(d, "j"), (1000000000, 1000000000)))
tryit("mtime j", lambda: os.stat(os.path.join(d, "j")).st_mtime)
w("k", b"kilo")
tryit("rmdir of the directory", lambda: os.rmdir(d))
tryit("list at the end", lambda: sorted(os.listdir(d)))
print("\n".join(out))
EOF
mkdir -p "$W/disk"
"$PY" "$W/own.py" "$W/disk/own" >"$W/own.disk" 2>&1
shim "$DEV" "${LONG[@]}" "$PY" "$W/own.py" "$MP/own" >"$W/own.blk" 2>&1
if cmp -s "$W/own.disk" "$W/own.blk"; then
    pass "the process's own stat, read, open O_EXCL, create below, listdir, rename over, unlink, chmod, utime and rmdir see its closed files as on a disk"
else fail "the process's own calls see its closed files as on a disk" "$W/own.disk" "$W/own.blk"; fi

# The batch's timer (S3SHIM_BLOCK_BATCH_MS=1) commits from the mount's thread while the
# program goes on: a stat of a file just closed must wait for that commit, not look the
# name up before it (the waiting count was once zeroed before the commit: 72 of 3,000
# files not found, and python's subprocess after a close hit it too).
cat >"$W/race.py" <<'EOF'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
lost = 0
for i in range(n):
    p = "%s/f%05d" % (d, i)
    with open(p, "wb") as f: f.write(b"x" * 100)
    end = time.perf_counter() + (i % 23) * 0.0001  # 0 to 2.2 ms: onto the batch's timer
    while time.perf_counter() < end: pass
    try: os.stat(p)
    except FileNotFoundError: lost += 1
print("%d of %d closed files not found by the next stat" % (lost, n))
EOF
r=$(shim "$DEV" S3SHIM_BLOCK_BATCH_MS=1 "$PY" "$W/race.py" "$MP/race" 3000 2>&1)
check "a stat right after a close, while the batch's timer commits it: the file is there ($r)" test "${r%% *}" = 0

# --- 3. another process that starts looking sees every file closed before -------------
# The writer prints each name after its close; the reader's first call on the store
# comes while the writer holds a batch (window 1 s): it must find every file named.
cat >"$W/namer.py" <<'EOF'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
for i in range(n):
    with open("%s/f%05d" % (d, i), "wb") as f: f.write(b"%d;" % i * (1 + i % 700))
    print("%s/f%05d %d" % (d, i, i), flush=True)
    if i % 50 == 49: time.sleep(0.05)
EOF
cat >"$W/reader.py" <<'EOF'
import sys
seen = bad = 0
for line in sys.stdin:
    name, i = line.split(); i = int(i)
    try:
        ok = open(name, "rb").read() == b"%d;" % i * (1 + i % 700)
    except OSError:
        ok = False
    seen += 1; bad += not ok
print("named %d, not found whole %d" % (seen, bad))
sys.exit(1 if bad or not seen else 0)
EOF
shim "$DEV" "${LONG[@]}" "$PY" "$W/namer.py" "$MP/piped" 400 2>"$OUT" | shim "$DEV" "$PY" "$W/reader.py" >>"$OUT" 2>&1 &&
    pass "a reader fed names through a pipe finds every file the moment the writer closed it ($(tail -1 "$OUT"))" ||
    fail "a reader fed names through a pipe finds every file the moment the writer closed it" "$OUT"

# A process present before the writer starts: the writer commits every close itself.
c0=$(commits)
shim "$DEV" "$PY" -c '
import os, sys, time
os.stat(sys.argv[1]); print("in", flush=True)
while not os.path.exists(sys.argv[2]): time.sleep(0.05)' "$MP" "$W/writer.done" >"$W/holder.out" 2>&1 &
holder=$!
for _ in $(seq 200); do [ -s "$W/holder.out" ] && break; sleep 0.05; done
shim "$DEV" "${LONG[@]}" "$PY" "$W/create.py" "$MP/present" 300 2>"$OUT"
touch "$W/writer.done"
wait "$holder"
c1=$(commits)
if [ -n "$c1" ] && [ $((c1 - c0)) -ge 300 ]; then
    pass "with another process present on the store, a writer commits every close ($((c1 - c0)) commits for 300 files)"
else fail "with another process present on the store, a writer commits every close (commits $c0 -> $c1 for 300 files)" "$OUT"; fi

# A forked child (no exec) and an exec'd program see the parent's closed files; the
# child's copy of the batch is never committed (the parent goes on writing after it).
cat >"$W/fork.py" <<'EOF'
import os, subprocess, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
def w(i):
    with open("%s/f%05d" % (d, i), "wb") as f: f.write(b"%d;" % i * (1 + i % 700))
for i in range(100): w(i)
pid = os.fork()
if pid == 0:
    names = os.listdir(d)
    ok = len(names) == 100 and all(open("%s/%s" % (d, n), "rb").read() == b"%d;" % int(n[1:]) * (1 + int(n[1:]) % 700) for n in names)
    os._exit(0 if ok else 1)
_, st = os.waitpid(pid, 0)
print("forked child:", "ok" if st == 0 else "wrong")
for i in range(100, 200): w(i)
r = subprocess.run(["sh", "-c", 'ls "$1" | wc -l', "_", d], capture_output=True, text=True)
print("spawned ls:", r.stdout.strip())
for i in range(200, 300): w(i)
os.execvp("sh", ["sh", "-c", 'echo "exec: $(ls "$1" | wc -l)"', "_", d])
EOF
shim "$DEV" "${LONG[@]}" "$PY" "$W/fork.py" "$MP/fork" >"$OUT" 2>&1
printf 'forked child: ok\nspawned ls: 200\nexec: 300\n' >"$W/fork.want"
if cmp -s "$OUT" "$W/fork.want" && shim "$DEV" "$PY" "$W/verify.py" "$MP/fork" 300 >>"$OUT" 2>&1; then
    pass "a forked child, a spawned ls and an exec'd program see every file closed before them (100, 200, 300), all whole after"
else fail "a forked child, a spawned ls and an exec'd program see every file closed before them" "$W/fork.want" "$OUT"; fi
check_clean "$DEV" "after the readers and the fork"

# --- 4. a stopped batch holder: the reader waits the share wait, then EIO ---------------
cat >"$W/stopper.py" <<'EOF'
import os, signal, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
with open(d + "/held", "wb") as f: f.write(b"held")
print("closed", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
EOF
# (env execs python: $! is the process to continue)
env S3SHIM_MOUNTS="$MP=block://$DEV" LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" "${LONG[@]}" "$PY" "$W/stopper.py" "$MP/stop" \
    >"$W/stop.out" 2>&1 &
spid=$!
for _ in $(seq 100); do [ -s "$W/stop.out" ] && break; sleep 0.05; done
sleep 0.2
shim "$DEV" S3SHIM_BLOCK_SHARE_WAIT_MS=400 cat "$MP/stop/held" >"$OUT" 2>&1
rc=$?
kill -CONT "$spid"
wait "$spid"
shim "$DEV" cat "$MP/stop/held" >>"$OUT" 2>&1
if [ "$rc" != 0 ] && grep -q "Input/output error" "$OUT" && grep -q "has held new files it closed and has not committed for 400 ms" "$OUT" &&
    [ "$(tail -c 4 "$OUT")" = held ]; then
    pass "a reader of a stopped process's batch fails with EIO and a log line after S3SHIM_BLOCK_SHARE_WAIT_MS; after SIGCONT the file is there"
else fail "a reader of a stopped process's batch fails with EIO and a log line after the share wait; after SIGCONT the file is there" "$OUT"; fi

# --- 5. writers SIGKILLed while holding a batch: every file closed before is there ------
# Each writer logs a name (outside the store) after its close; SIGKILLed at a random
# moment, with a batch window of 1 s, so its last closes wait in the batch log. The next
# process commits them: every logged file must be there, whole; blk check clean.
cat >"$W/killme.py" <<'EOF'
import os, sys
d, log, r = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(d, exist_ok=True)
with open(log, "a") as lg:
    for i in range(1000000):
        name = "%s/r%d-%06d" % (d, r, i)
        with open(name, "wb") as f: f.write(b"%d;" % i * (1 + i % 700))
        lg.write("%s %d\n" % (name, i)); lg.flush()
EOF
bad=0
: >"$OUT"
: >"$W/klog"
for r in 1 2 3 4 5 6 7 8; do
    n0=$(wc -l <"$W/klog")
    env S3SHIM_MOUNTS="$MP=block://$DEV" LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" "${LONG[@]}" "$PY" "$W/killme.py" "$MP/killed" \
        "$W/klog" "$r" 2>>"$OUT" &
    kp=$!
    for _ in $(seq 200); do [ "$(wc -l <"$W/klog")" -gt "$((n0 + 10))" ] && break; sleep 0.02; done
    sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
    kill -9 "$kp" 2>/dev/null
    wait "$kp" 2>/dev/null
    # (the first look after the kill commits what the log holds; check after it)
    shim "$DEV" ls "$MP/killed" >/dev/null 2>>"$OUT"
    "$TOOL" blk check "$DEV" >"$W/kcheck" 2>&1 || { bad=$((bad + 1)); cat "$W/kcheck" >>"$OUT"; }
done
shim "$DEV" "$PY" -c '
import os, sys
missing = wrong = 0
lines = open(sys.argv[1]).read().splitlines()
for line in lines:
    name, i = line.split(); i = int(i)
    try: ok = open(name, "rb").read() == b"%d;" % i * (1 + i % 700)
    except FileNotFoundError: missing += 1; continue
    wrong += not ok
print("%d closed before the kills, %d missing, %d not whole" % (len(lines), missing, wrong))
sys.exit(1 if missing or wrong or not lines else 0)' "$W/klog" >>"$OUT" 2>&1 && whole=1 || whole=0
if [ "$bad" = 0 ] && [ "$whole" = 1 ]; then
    pass "8 writers SIGKILLed while holding a batch: every file closed before the kill there, whole; blk check clean after each ($(tail -1 "$OUT"))"
else fail "8 writers SIGKILLed while holding a batch: every file closed before the kill there, whole; blk check clean after each" "$OUT"; fi

# The process after the kill never looks at the store, and is its last user: the files in
# /dev/shm go at its end, so it commits the batch log first. (The writer kills itself
# after 100 closes: 36 of them wait in the batch.)
cat >"$W/selfkill.py" <<'EOF'
import os, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
for i in range(100):
    with open("%s/f%03d" % (d, i), "wb") as f: f.write(b"%d;" % i * 50)
os.kill(os.getpid(), 9)
EOF
# (a store of its own: the one above is too full by now for batches, see roomy())
new_dev 256 || bail "no device"
SDEV=$dev
"$TOOL" blk format "$SDEV" >"$OUT" 2>&1 || bail "format the store" "$OUT"
env S3SHIM_MOUNTS="$MP=block://$SDEV" LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" "${LONG[@]}" "$PY" "$W/selfkill.py" "$MP/self" 2>>"$OUT"
sleep 0.5
shim "$SDEV" true
uuid=$(od -An -tx1 -j24 -N16 "$SDEV" | tr -d ' \n')
gone=$(ls -d /dev/shm/s3shim-blk-"$uuid"-* 2>/dev/null | wc -l)
n=$(shim "$SDEV" ls "$MP/self" | wc -l)
if [ "$n" = 100 ] && [ "$gone" = 0 ]; then
    pass "a SIGKILLed writer's batch, when the next process never looks at the store and ends last: committed before the files in /dev/shm go (100 of 100 files)"
else fail "a SIGKILLed writer's batch, when the next process never looks at the store and ends last: committed before the files in /dev/shm go ($n of 100 files; $gone files left in /dev/shm)"; fi

# --- 6. durable closes (S3SHIM_BLOCK_COMMIT_MS=0) and S3SHIM_BLOCK_BATCH_MS=0: no batch ---
for v in S3SHIM_BLOCK_COMMIT_MS=0 S3SHIM_BLOCK_BATCH_MS=0; do
    c0=$(commits)
    shim "$DEV" "$v" "$PY" "$W/create.py" "$MP/nobatch.${v%%=*}" 100 2>"$OUT"
    c1=$(commits)
    check "$v: every close is a commit of its own ($((c1 - c0)) commits for 100 files)" test "$((c1 - c0))" -ge 100
done
check_clean "$DEV" "at the end"
finish
