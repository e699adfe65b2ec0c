#!/usr/bin/env bash
# tests/block/coherent.sh - what one process writes to a block:// object, another process
# reads before any fsync or close, as on a disk (core/block/block_coherent.c, and the
# shared copy of shared writable mappings in block_map.c): sqlite3 in WAL mode from several
# processes at once (synchronous NORMAL and FULL: readers checking every row while a
# writer commits, two writers taking turns, writers SIGKILLed while another reads), O_RDWR
# descriptors of two processes writing and reading one object with no fsync (renamed
# too), a new file opened O_RDWR seen by another process before its close, two processes'
# shared writable mappings of one object, a writer stopped with SIGSTOP (the reader fails
# with EIO after S3SHIM_BLOCK_SHARE_WAIT_MS, then sees the writes once it goes on) and one
# killed with SIGKILL (nothing to wait for), the shared mapping copy held by a process
# that does not go on, four processes writing their own parts of one file at once
# (forked, or opening it themselves; O_RDWR and O_WRONLY), a parent and its child
# writing through one descriptor, and appenders in several processes (`>>`, xargs -P,
# python logging, tee -a), then `blk check`.
#
#   BUILD=build SAN= tests/block/coherent.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/coherent.sh (ASan+UBSan)
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" coherent "s3shim block:// coherence between processes"

new_dev 256 && D=$dev && "$TOOL" blk format --force "$D" >/dev/null 2>&1
py() { shim "$D" "$PY" "$@"; }

# --- 1. sqlite3 WAL: one writer, two readers checking every row, at once -----------------------
cat >"$W/walw.py" <<'EOF'
import hashlib, sqlite3, sys, time
db, mode, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
c = sqlite3.connect(db, timeout=60)
c.execute("pragma synchronous=" + mode)
while time.time() < go: time.sleep(0.001)
for i in range(n):
    c.execute("insert into t values (?, ?)", (i, hashlib.sha256(str(i).encode()).hexdigest() * 8))
    c.commit()
    if i % 50 == 0: time.sleep(0.002)  # (readers get the read lock now and then)
print("wrote", n)
EOF
cat >"$W/walr.py" <<'EOF'
import hashlib, sqlite3, sys, time
db, n, go = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = sqlite3.connect(db, timeout=60)
while time.time() < go: time.sleep(0.001)
counts, bad, last = set(), 0, -1
deadline = time.time() + 100
while time.time() < deadline:
    rows = c.execute("select i, h from t order by i").fetchall()
    k = len(rows)
    if k < last: bad += 1
    last = k
    counts.add(k)
    for j, (i, h) in enumerate(rows):
        if i != j or h != hashlib.sha256(str(i).encode()).hexdigest() * 8: bad += 1; break
    if k == n: break
print("read", last, "bad", bad, "many" if len(counts) > 2 else "few:%d" % len(counts))
EOF
for mode in NORMAL FULL; do
    db=$MP/w$mode.db
    py -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("pragma journal_mode=wal"); c.execute("create table t (i, h)"); c.commit()' "$db" >"$OUT" 2>&1
    go=$(python3 -c 'import time; print(time.time() + 0.5)')
    n=1500
    py "$W/walr.py" "$db" $n "$go" >"$W/r1" 2>&1 &
    r1=$!
    py "$W/walr.py" "$db" $n "$go" >"$W/r2" 2>&1 &
    r2=$!
    py "$W/walw.py" "$db" "$mode" $n "$go" >"$W/w" 2>&1
    wait $r1 $r2
    got=$(cat "$W/w" "$W/r1" "$W/r2" | tr '\n' ' ')
    end=$(py -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute("select count(*) from t").fetchone()[0], c.execute("pragma integrity_check").fetchone()[0])' "$db" 2>&1)
    if [ "$got" = "wrote $n read $n bad 0 many read $n bad 0 many " ] && [ "$end" = "$n ok" ]; then
        pass "sqlite3 WAL (synchronous=$mode): a writer committing $n rows while two other processes read them all each time, every row right, counts growing: $end"
    else echo "$got / $end" >"$OUT"; fail "sqlite3 WAL (synchronous=$mode), one writer and two readers at once" "$OUT"; fi
done

# --- 2. sqlite3 WAL: two writers taking turns ---------------------------------------------
cat >"$W/wal2.py" <<'EOF'
import sqlite3, sys, time
db, who, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
c = sqlite3.connect(db, timeout=60)
c.execute("pragma synchronous=NORMAL")
while time.time() < go: time.sleep(0.001)
seen, mine = 0, 0
for i in range(n):
    c.execute("insert into u values (?, ?)", (who, i)); c.commit()
    if c.execute("select count(*) from u where w = ?", (who,)).fetchone()[0] != i + 1: mine += 1
    seen = max(seen, c.execute("select count(*) from u where w != ?", (who,)).fetchone()[0])
    time.sleep(0.001)
print("lost" if mine else "all", "saw" if seen else "none")
EOF
db=$MP/two.db
py -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("pragma journal_mode=wal"); c.execute("create table u (w, i)"); c.commit()' "$db" >"$OUT" 2>&1
go=$(python3 -c 'import time; print(time.time() + 0.5)')
py "$W/wal2.py" "$db" 1 400 "$go" >"$W/t1" 2>&1 &
t1=$!
py "$W/wal2.py" "$db" 2 400 "$go" >"$W/t2" 2>&1
wait $t1
got=$(cat "$W/t1" "$W/t2" | tr '\n' ' ')
end=$(py -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute("select count(*), count(distinct w || \"-\" || i) from u").fetchone(), c.execute("pragma integrity_check").fetchone()[0])' "$db" 2>&1)
if [ "$got" = "all saw all saw " ] && [ "$end" = "(800, 800) ok" ]; then
    pass "sqlite3 WAL (NORMAL): two processes inserting in turns, each seeing the other's rows as it goes: $end"
else echo "$got / $end" >"$OUT"; fail "sqlite3 WAL, two writers" "$OUT"; fi

# --- 3. O_RDWR descriptors of two processes, no fsync ----------------------------------------
# A writes, B reads it; B writes, A reads it; a new file A opened O_RDWR and has not closed
# is there for B by name. Pipes order the steps.
r=$(py -c '
import os, subprocess, sys
mp = sys.argv[1]
a = os.open(mp + "/rw", os.O_RDWR | os.O_CREAT, 0o644)
child = r"""
import os, sys
mp = sys.argv[1]
b = os.open(mp + "/rw", os.O_RDWR)
out = []
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "read": out.append(os.pread(b, 64, 0).decode() or "-")
    if cmd[0] == "write": os.pwrite(b, cmd[2].encode(), int(cmd[1]))
    if cmd[0] == "size": out.append(str(os.fstat(b).st_size))
    print("done", flush=True)
print(" ".join(out), flush=True)
"""
p = subprocess.Popen([sys.executable, "-c", child, mp], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
def ask(s):
    p.stdin.write(s + "\n"); p.stdin.flush(); assert p.stdout.readline() == "done\n"
ask("read")
os.pwrite(a, b"hello", 0)
ask("read"); ask("size")
ask("write 5 world")
mine = os.pread(a, 64, 0).decode()
os.pwrite(a, b"HELLO", 0)
ask("read")
p.stdin.close()
theirs = p.stdout.read().strip()
p.wait()
os.close(a)
print(theirs, "|", mine, "|", open(mp + "/rw").read())
' "$MP" 2>&1)
if [ "$r" = "- hello 5 HELLOworld | helloworld | HELLOworld" ]; then
    pass "O_RDWR in two processes, no fsync: each reads the other's writes at once (a new file is there for the other before its close)"
else echo "$r" >"$OUT"; fail "O_RDWR in two processes, no fsync" "$OUT"; fi

# A file renamed while it has uncommitted writes: another process opening the new name
# reads them (the mark moves with the name). The reader starts first: a fork of the
# writer would commit its writers.
r=$(py -c '
import os, subprocess, sys
mp = sys.argv[1]
open(mp + "/mv1", "w").write("x" * 10)
rd = "import os, sys\nsys.stdin.readline()\nb = os.open(sys.argv[1], os.O_RDWR)\nprint(os.pread(b, 64, 0).decode())"
p = subprocess.Popen([sys.executable, "-c", rd, mp + "/mv2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
a = os.open(mp + "/mv1", os.O_RDWR)
os.pwrite(a, b"before", 0)
os.rename(mp + "/mv1", mp + "/mv2")
os.pwrite(a, b"AFTER", 6)
p.stdin.write("\n"); p.stdin.flush()
got = p.stdout.read().strip(); p.wait()
os.close(a)
print(got, open(mp + "/mv2").read())
' "$MP" 2>&1)
if [ "$r" = "beforeAFTER beforeAFTER" ]; then
    pass "O_RDWR, renamed with writes not committed: another process opening the new name reads them all"
else echo "$r" >"$OUT"; fail "O_RDWR renamed while written" "$OUT"; fi

# --- 4. shared writable mappings of one object in two processes -------------------------------
r=$(py -c '
import mmap, os, subprocess, sys, time
p = sys.argv[1] + "/mm"
open(p, "wb").write(b"." * 8192)
f = open(p, "r+b"); m = mmap.mmap(f.fileno(), 0)
m[0:2] = b"P1"
child = r"""
import mmap, sys
f = open(sys.argv[1], "r+b"); m = mmap.mmap(f.fileno(), 0)
print(m[0:2].decode(), flush=True)
m[4096:4098] = b"C1"
sys.stdin.readline()
print(m[2:4].decode(), flush=True)
m.close(); f.close()
"""
c = subprocess.Popen([sys.executable, "-c", child, p], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
first = c.stdout.readline().strip()
time.sleep(0.2)
seen = m[4096:4098].decode()
m[2:4] = b"P2"
c.stdin.write("\n"); c.stdin.flush()
second = c.stdout.readline().strip()
c.wait()
m.close(); f.close()
d = open(p, "rb").read()
print(first, seen, second, d[0:4].decode(), d[4096:4098].decode(), len(d))
' "$MP" 2>&1)
if [ "$r" = "P1 C1 P2 P1P2 C1 8192" ]; then
    pass "shared writable mappings of one object in two processes: each sees the other's stores at once; both are in the object after the closes"
else echo "$r" >"$OUT"; fail "shared writable mappings in two processes" "$OUT"; fi

# --- 4b. the shared copy held by a process that does not go on (stopped while filling it) ---
# A stand-in for a process stopped while it fills or empties the copy: a write lock on the
# copy file's fill byte, taken from outside. A second process's mmap of the key fails with
# EIO after S3SHIM_BLOCK_SHARE_WAIT_MS and a log line naming the key (it waited forever
# before); once the lock goes, it maps the copy and sees the first process's stores.
r=$(env "${SAN_ENV[@]}" S3SHIM_BLOCK_SHARE_WAIT_MS=400 PRELOAD="$PRELOAD" MP="$MP" D="$D" PY="$PY" TMO="$TMO" "$PY" -c '
import fcntl, glob, mmap, os, subprocess, sys
mp, dev = os.environ["MP"], os.environ["D"]
def shim(code, **kw):
    env = dict(os.environ, S3SHIM_MOUNTS=mp + "=block://" + dev, LD_PRELOAD=os.environ["PRELOAD"])
    return subprocess.Popen(["timeout", os.environ["TMO"], os.environ["PY"], "-c", code, mp + "/mmlock"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
first = shim("import mmap, sys\nopen(sys.argv[1], \"wb\").write(b\".\" * 8192)\nf = open(sys.argv[1], \"r+b\"); m = mmap.mmap(f.fileno(), 0)\nm[0:2] = b\"P1\"\nprint(\"ready\", flush=True)\nsys.stdin.readline()\nm.close(); f.close()")
first.stdout.readline()
def copy_name(key):  # blk_lockfile_open: two 64-bit hashes of the key
    h1, h2, M = 1469598103934665603, 0x6c62272e07bb0142, 2**64
    for b in key:
        h1 = ((h1 ^ b) * 1099511628211) % M
        h2 = ((h2 ^ b) * 0x100000001b3) % M
        h2 ^= h2 >> 29
    return "%016x%016x" % (h1, h2)
dirs = glob.glob("/dev/shm/s3shim-blk-*-%x-*.locks" % os.stat(dev).st_rdev)
fd = os.open(os.path.join(dirs[0], copy_name(b"mmlock\0copy")), os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 2**62)
code = "import mmap, sys, time\nf = open(sys.argv[1], \"r+b\")\nt = time.time()\ntry:\n    m = mmap.mmap(f.fileno(), 0); print(m[0:2].decode(), flush=True)\nexcept OSError as e:\n    print(\"errno%d\" % e.errno, time.time() - t >= 0.35, flush=True)"
second = shim(code)
out, err = second.communicate()
fcntl.lockf(fd, fcntl.LOCK_UN, 1, 2**62)
third = shim(code)
out3, _ = third.communicate()
first.stdin.write("\n"); first.stdin.flush(); first.wait()
print(out.strip(), out3.strip(), "logged" if "mmlock: another process has held its shared mapping" in err else "not-logged:" + err.strip())
' 2>&1)
if [ "$r" = "errno5 True P1 logged" ]; then
    pass "the shared copy of a mapped object held by a process that does not go on: another process's mmap fails with EIO after S3SHIM_BLOCK_SHARE_WAIT_MS and a log line naming the key, and maps it once the holder lets go"
else echo "$r" >"$OUT"; fail "the shared copy held by another process" "$OUT"; fi

# --- 5. a writer stopped, a writer killed ---------------------------------------------------
r=$(S3SHIM_BLOCK_SHARE_WAIT_MS=400 py -c '
import os, signal, subprocess, sys, time
mp = sys.argv[1]
open(mp + "/st", "w").write("old")
w = subprocess.Popen([sys.executable, "-c", "import os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\nos.pwrite(fd, b\"new\", 0)\nprint(\"w\", flush=True)\nsys.stdin.readline()\nos.close(fd)", mp + "/st"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
w.stdout.readline()
os.kill(w.pid, signal.SIGSTOP)
try:  # (the open asks already)
    fd = os.open(mp + "/st", os.O_RDWR)
    got = os.pread(fd, 3, 0).decode()
except OSError as e:
    got = "errno%d" % e.errno
os.kill(w.pid, signal.SIGCONT)
fd = os.open(mp + "/st", os.O_RDWR)
after = os.pread(fd, 3, 0).decode()
w.stdin.write("\n"); w.stdin.flush(); w.wait()
open(mp + "/k", "w").write("old")
k = subprocess.Popen([sys.executable, "-c", "import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR)\nos.pwrite(fd, b\"new\", 0)\nprint(\"w\", flush=True)\ntime.sleep(60)", mp + "/k"], stdout=subprocess.PIPE, text=True)
k.stdout.readline()
t = time.time()
k.kill(); k.wait()
kfd = os.open(mp + "/k", os.O_RDWR)
print(got, after, os.pread(kfd, 3, 0).decode(), time.time() - t < 0.3)
' "$MP" 2>"$W/err")
if [ "$r" = "errno5 new old True" ] && grep -q "did not commit in 400 ms" "$W/err"; then
    pass "a writer stopped (SIGSTOP): another process's open (or read) fails with EIO after S3SHIM_BLOCK_SHARE_WAIT_MS and a log line, and sees the writes once it runs; a writer killed: nothing to wait for, the last commit stands"
else { echo "$r"; cat "$W/err"; } >"$OUT"; fail "a stopped writer, a killed writer" "$OUT"; fi

# --- 6. sqlite3 WAL: writers killed with SIGKILL while another process reads ------------------
# Each round a writer appends numbered rows, one per transaction, and is SIGKILLed at a
# random moment while a reader keeps querying; then a new connection must find every row
# from 0 up to the highest one present, and integrity_check ok. With synchronous=NORMAL the
# -wal's frames are never fsynced: an unlocked O_RDWR writer commits each write while
# another process has the file open, or the wal-index the others read would point at
# frames that died with the writer (a checkpoint then copied them into the database).
cat >"$W/kw.py" <<'EOF'
import os, sqlite3, sys
open(sys.argv[2], "w").write(str(os.getpid()))
c = sqlite3.connect(sys.argv[1], timeout=60)
c.execute("pragma synchronous=" + sys.argv[3])
n = c.execute("select count(*) from k").fetchone()[0]
while True:
    c.execute("insert into k values (?)", (n,)); c.commit(); n += 1
EOF
cat >"$W/kr.py" <<'EOF'
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], timeout=60)
bad = 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    n, lo, hi = c.execute("select count(*), min(i), max(i) from k").fetchone()
    if n and (lo != 0 or hi != n - 1): bad += 1
print(bad)
EOF
for mode in NORMAL FULL; do
    db=$MP/kill$mode.db
    py -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("pragma journal_mode=wal"); c.execute("create table k (i)"); c.commit()' "$db" >"$OUT" 2>&1
    ROUNDS=${COHERENT_KILLS:-10}
    kbad=0
    got=""
    : >"$W/kills"
    for k in $(seq 1 "$ROUNDS"); do
        rm -f "$W/kw.pid"
        py "$W/kr.py" "$db" 0.6 >"$W/kr.out" 2>&1 &
        rp=$!
        py "$W/kw.py" "$db" "$W/kw.pid" "$mode" >>"$W/kills" 2>&1 &
        wp=$!
        sleep "0.$((RANDOM % 4 + 1))"
        [ -s "$W/kw.pid" ] && kill -KILL "$(cat "$W/kw.pid")"
        wait "$wp" 2>/dev/null
        wait "$rp"
        got=$(py -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); n, lo, hi = c.execute("select count(*), min(i), max(i) from k").fetchone(); print(n, n == 0 or (lo == 0 and hi == n - 1), c.execute("pragma integrity_check").fetchone()[0])' "$db" 2>&1)
        if [ "$(cat "$W/kr.out")" != 0 ] || [ "${got#* }" != "True ok" ]; then
            kbad=$((kbad + 1))
            echo "round $k: reader $(cat "$W/kr.out"), after: $got" >>"$W/kills"
        fi
    done
    rows=${got%% *}
    if [ "$kbad" = 0 ] && [ "${rows:-0}" -gt 0 ] 2>/dev/null; then
        pass "sqlite3 WAL (synchronous=$mode): a writer SIGKILLed at a random moment in $ROUNDS rounds while another process reads: every row up to the last one there, integrity ok, the reader never saw a gap ($rows rows)"
    else fail "sqlite3 WAL (synchronous=$mode), writers killed while another process reads" "$W/kills"; fi
done

# --- 7. several processes writing one file at once, each its own parts ------------------------
# As in the kernel, writes of several processes to one file all land: each writer takes
# the key's write lock, follows the newest version, writes and commits before the next.
# Before it, each committed its write onto the version it had followed, and the later
# commit dropped the others' (most parts lost). Writers forked with the descriptor,
# writers that opened the file themselves, O_RDWR and O_WRONLY without O_TRUNC; and a
# parent's write that its forked child reads through the descriptor they share.
cat >"$W/parts.py" <<'EOF2'
import os, subprocess, sys
p, how = sys.argv[1], sys.argv[2]
N, K, B = 4, 150, 512
if len(sys.argv) > 3:  # a worker that opens the file itself
    w = int(sys.argv[3]); fd = os.open(p, os.O_RDWR if how == "rdwr" else os.O_WRONLY)
    for k in range(K): os.pwrite(fd, bytes([65 + w]) * B, (k * N + w) * B)
    os.close(fd); sys.exit(0)
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, N * K * B)
if how == "fork":
    pids = []
    for w in range(N):
        pid = os.fork()
        if pid == 0:
            for k in range(K): os.pwrite(fd, bytes([65 + w]) * B, (k * N + w) * B)
            os._exit(0)
        pids.append(pid)
    for pid in pids: os.waitpid(pid, 0)
    os.close(fd)
else:
    os.close(fd)
    for q in [subprocess.Popen([sys.executable, __file__, p, how, str(w)]) for w in range(N)]: q.wait()
d = open(p, "rb").read()
print(len(d), sum(1 for i in range(N * K) if d[i * B:(i + 1) * B] != bytes([65 + i % N]) * B))
EOF2
for how in fork rdwr wronly; do
    r=$(py "$W/parts.py" "$MP/parts-$how" "$how" 2>&1)
    if [ "$r" = "307200 0" ]; then
        pass "4 processes writing their own 512-byte parts of one file at once ($how): all 600 parts there"
    else echo "$r" >"$OUT"; fail "4 processes writing parts of one file ($how)" "$OUT"; fi
done
r=$(py -c '
import os, sys
p = sys.argv[1] + "/fk"
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"AAAA")
r, w = os.pipe(); r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(r, 1)
    a = os.pread(fd, 4, 0)
    os.pwrite(fd, b"CC", 4)
    os.write(w2, (a + b" ").decode().encode()); os._exit(0)
os.pwrite(fd, b"BBBB", 0)
os.write(w, b"x"); seen = os.read(r2, 5).decode().strip(); os.waitpid(pid, 0)
mine = os.pread(fd, 6, 0).decode(); os.close(fd)
print(seen, mine, open(p).read())
' "$MP" 2>&1)
if [ "$r" = "BBBB BBBBCC BBBBCC" ]; then
    pass "a parent and its forked child writing through the O_RDWR descriptor they share: each reads the other's writes, none is lost"
else echo "$r" >"$OUT"; fail "a parent and its child sharing an O_RDWR descriptor" "$OUT"; fi

# --- 8. appenders in several processes (O_APPEND) ----------------------------------------------
# `>>` from parallel jobs: every line lands, none over another (the end is found under
# the key's write lock; before, three quarters of the lines were lost).
r=$(shim "$D" bash -c '
mp=$1
for i in 1 2 3 4; do ( for j in $(seq 1 60); do echo "$i $j" >> "$mp/shlog"; done ) & done; wait
seq 1 120 | xargs -P 4 -I{} sh -c "echo line {} >> $mp/xlog"
exec 3>>"$mp/flog"; for i in 1 2 3 4; do ( for j in $(seq 1 60); do echo "$i $j" >&3; done ) & done; wait; exec 3>&-
for f in shlog xlog flog; do echo "$(wc -l < "$mp/$f") $(sort -u "$mp/$f" | wc -l)"; done | tr "\n" " "
' _ "$MP" 2>&1)
if [ "$r" = "240 240 120 120 240 240 " ]; then
    pass "O_APPEND from several processes at once (bash >> in 4 subshells, xargs -P4, one >> description shared by 4 subshells): every line there, once"
else echo "$r" >"$OUT"; fail "O_APPEND from several processes" "$OUT"; fi
# Long-lived appenders: python's logging.FileHandler (mode "a") in 4 processes, tee -a
# in 3 (before: 300 of 1,200 and 600 of 900 lines kept).
r=$(py -c '
import logging, multiprocessing as mp, sys
def work(i, p):
    lg = logging.getLogger("w%d" % i); h = logging.FileHandler(p); lg.addHandler(h); lg.setLevel(logging.INFO)
    for j in range(200): lg.info("worker %d line %d", i, j)
    h.close()
if __name__ == "__main__":
    p = sys.argv[1] + "/app.log"
    ps = [mp.Process(target=work, args=(i, p)) for i in range(4)]
    [q.start() for q in ps]; [q.join() for q in ps]
    lines = open(p).read().splitlines()
    print(len(lines), len(set(lines)))
' "$MP" 2>&1)
t=$(shim "$D" bash -c 'for i in 1 2 3; do (seq 1 200 | sed "s/^/$i /" | tee -a "$1/tee.log" >/dev/null) & done; wait; echo "$(wc -l < "$1/tee.log") $(sort -u "$1/tee.log" | wc -l)"' _ "$MP" 2>&1)
if [ "$r" = "800 800" ] && [ "$t" = "600 600" ]; then
    pass "long-lived appenders in several processes at once (python logging.FileHandler in 4, tee -a in 3): every line there, once"
else echo "logging: $r; tee: $t" >"$OUT"; fail "long-lived appenders in several processes" "$OUT"; fi

check_clean "$D" "after sqlite3 WAL from several processes, shared O_RDWR and mappings, a stopped and a killed writer, parallel writers and appenders"
finish
