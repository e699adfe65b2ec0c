#!/usr/bin/env bash
# tests/block/shared.sh - block:// between processes: group commit (a close visible to every
# process at once, durable at the writer's end, at fsync, after the interval, or at the next
# mount once the writer was killed), locks (fcntl, OFD, flock; sqlite3, two at once),
# writers shared across fork and exec, the files in /dev/shm going with the last process
# using the store, open files unlinked or renamed as on a disk, and the stats.
#
#   BUILD=build SAN= tests/block/shared.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/shared.sh (ASan+UBSan)
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" shared "s3shim block:// between processes"

# --- 1. group commit (S3SHIM_BLOCK_COMMIT_MS) ------------------------------------------------------
# A close is visible to every process at once and durable later: at the end of the
# writing process, after the interval (the mount's thread), at an fsync, or at the next
# mount once its writer was killed. `blk df` says "durable: N" while commits are only
# visible; `blk check` notes them.
new_dev 64 && GC=$dev && "$TOOL" blk format --force "$GC" >/dev/null 2>&1
durable_lag() { "$TOOL" blk df "$GC" 2>&1 | grep -c "durable:"; } # 1 while commits are only visible
gc_py() { # gc_py MS CODE: python under the shim with S3SHIM_BLOCK_COMMIT_MS=MS; $1 of CODE = the mount
    local ms=$1
    shift
    S3SHIM_BLOCK_COMMIT_MS=$ms shim "$GC" "$PY" -c "$1" "$MP" "$TOOL" "$GC"
}
r=$(gc_py 60000 '
import os, subprocess, sys
mp, tool, dev = sys.argv[1:4]
with open(mp + "/a", "w") as f: f.write("hello")
seen = subprocess.run(["cat", mp + "/a"], capture_output=True, text=True).stdout
df = subprocess.run([tool, "blk", "df", dev], capture_output=True, text=True).stdout
ck = subprocess.run([tool, "blk", "check", dev], capture_output=True, text=True)
print(seen, "durable:" in df, "not yet durable" in ck.stdout, ck.returncode)
' 2>&1)
if [ "$r" = "hello True True 0" ] && [ "$(durable_lag)" = 0 ]; then
    pass "group commit: a close is visible to another process at once, durable only later (blk df, blk check say so), durable when the writer ends"
else echo "$r; lag after exit: $(durable_lag)" >"$OUT"; fail "group commit: visible at once, durable at exit" "$OUT"; fi
r=$(gc_py 60000 '
import os, subprocess, sys
mp, tool, dev = sys.argv[1:4]
def lag(): return "durable:" in subprocess.run([tool, "blk", "df", dev], capture_output=True, text=True).stdout
with open(mp + "/b", "w") as f: f.write("x")
before = lag()
with open(mp + "/b", "rb") as f: os.fsync(f.fileno())   # a reader: every commit so far made durable
after_reader = lag()
with open(mp + "/c", "w") as f:
    f.write("y"); f.flush(); os.fsync(f.fileno())   # a writer: its commit durable
after_writer = lag()
os.rename(mp + "/c", mp + "/d")   # a namespace change: visible only
print(before, after_reader, after_writer, lag())
' 2>&1)
if [ "$r" = "True False False True" ]; then pass "group commit: fsync of a reader makes every commit durable, fsync of a writer its own; a rename is visible only until then"
else echo "$r" >"$OUT"; fail "group commit: fsync" "$OUT"; fi
r=$(gc_py 200 '
import os, subprocess, sys, time
mp, tool, dev = sys.argv[1:4]
with open(mp + "/e", "w") as f: f.write("z")
for i in range(100):   # the mount thread makes it durable after 200 ms (waits up to 10 s on a busy machine)
    if "durable:" not in subprocess.run([tool, "blk", "df", dev], capture_output=True, text=True).stdout: break
    time.sleep(0.1)
print(i < 99)
' 2>&1)
if [ "$r" = "True" ]; then pass "group commit: S3SHIM_BLOCK_COMMIT_MS=200: the mount's thread makes a close durable while the writer still runs"
else echo "$r" >"$OUT"; fail "group commit: the interval" "$OUT"; fi
gc_py 60000 '
import os, signal, sys
with open(sys.argv[1] + "/f", "w") as f: f.write("killed")
os.kill(os.getpid(), signal.SIGKILL)
' >/dev/null 2>&1
lag1=$(durable_lag)
sleep 0.3
S3SHIM_BLOCK_COMMIT_MS=200 shim "$GC" cat "$MP/f" >"$OUT" 2>&1
if [ "$lag1" = 1 ] && [ "$(cat "$OUT")" = killed ] && [ "$(durable_lag)" = 0 ]; then
    pass "group commit: a writer killed after its close leaves the object visible; the next mount makes it durable"
else echo "lag after the kill: $lag1, after the next mount: $(durable_lag)" >>"$OUT"; fail "group commit: killed writer" "$OUT"; fi
S3SHIM_BLOCK_COMMIT_MS=0 shim "$GC" sh -c "echo now > $MP/g" && lag0=$(durable_lag)
vr=$("$TOOL" blk df "$GC" | awk '/^visible roots/ {print $3}')
rm -f "$vr" && mkdir "$vr" # a process that cannot publish commits durably
shim "$GC" sh -c "echo direct > $MP/h; cat $MP/h" >"$OUT" 2>&1
lagd=$(durable_lag)
rmdir "$vr"
if [ "$lag0" = 0 ] && [ "$(cat "$OUT")" = direct ] && [ "$lagd" = 0 ]; then
    pass "group commit: S3SHIM_BLOCK_COMMIT_MS=0, and a process that cannot use $(dirname "$vr"), commit durably at once"
else echo "lag with 0: $lag0, without the file: $lagd" >>"$OUT"; fail "group commit: durable at once" "$OUT"; fi
check_clean "$GC" "after the group-commit tests"

# --- 2. locks, writers across exec, the files in /dev/shm ---------------------------------
# fcntl (F_SETLK/F_SETLKW/F_GETLK), OFD and flock locks on block:// descriptors are the
# kernel's, taken on a lock file per key in /dev/shm: seen by every process using the
# store, released at close and at death. sqlite3 works on them, two at once too.
new_dev 64 && LK=$dev && "$TOOL" blk format --force "$LK" >/dev/null 2>&1
LKVR=$("$TOOL" blk df "$LK" | awk '/^visible roots/ {print $3}')
if command -v sqlite3 >/dev/null; then
    shim "$LK" sqlite3 "$MP/db" "create table t(w, i); insert into t values(0, 1), (0, 2); select count(*) from t;" >"$OUT" 2>&1
    shim "$LK" sqlite3 "$MP/db" "insert into t values(0, 3); select sum(i) from t;" >>"$OUT" 2>&1
    if [ "$(tr '\n' ' ' <"$OUT")" = "2 6 " ]; then pass "sqlite3: create, insert, select on a new database, then again in a new process"
    else fail "sqlite3 create/insert/select" "$OUT"; fi
    for w in 1 2; do
        for i in $(seq 1 40); do echo "insert into t values($w, $i);"; done >"$W/ins.$w.sql"
        shim "$LK" sqlite3 -cmd ".timeout 60000" "$MP/db" <"$W/ins.$w.sql" >"$W/sq.$w.out" 2>&1 &
    done
    wait
    shim "$LK" sqlite3 "$MP/db" "select count(*), count(distinct w || '-' || i) from t where w > 0; pragma integrity_check;" >"$OUT" 2>&1
    if [ "$(tr '\n' ' ' <"$OUT")" = "80|80 ok " ] && [ ! -s "$W/sq.1.out" ] && [ ! -s "$W/sq.2.out" ]; then
        pass "two sqlite3 processes inserting into one database at once (busy timeout): all 80 rows, integrity ok"
    else fail "two sqlite3 processes at once" "$OUT" "$W/sq.1.out" "$W/sq.2.out"; fi
else
    skip "sqlite3 on block://" "no sqlite3"
fi
# git: init (chmod of its new config.lock before the first commit, mmap of config and
# index), add, commit, clone inside the store, the clone's files equal to the source's.
if command -v git >/dev/null; then
    rm -rf "$W/gsrc" && mkdir -p "$W/gsrc/d" && seq 1000 >"$W/gsrc/a" && head -c 300000 /dev/urandom >"$W/gsrc/d/b"
    shim "$LK" sh -c 'git init -q "$1/repo" && cp -r "$2/." "$1/repo/" && cd "$1/repo" && git add -A &&
        git -c user.name=t -c user.email=t@t commit -qm one && git clone -q "$1/repo" "$1/clone" &&
        cmp "$1/clone/d/b" "$2/d/b" && git -C "$1/clone" log --oneline | wc -l' _ "$MP" "$W/gsrc" >"$OUT" 2>&1
    # git probes links (init: symlink; objects and a local clone: link), takes the EPERM and
    # goes on without them; each of its processes says once why (the s3shim line).
    if [ "$(grep -v 'refused with EPERM: this store keeps no hard or symbolic links' "$OUT")" = 1 ]; then
        pass "git init, add, commit and clone inside the store (links refused with EPERM, git goes on without)"
    else fail "git on block://" "$OUT"; fi
else
    skip "git on block://" "no git"
fi
# A holds a POSIX lock, an OFD lock and a flock; B (another process) sees them; B's
# blocking F_SETLKW gets its lock once A closes; a lock of a SIGKILLed process is gone.
cat >"$W/locks.py" <<'PY'
import fcntl, os, struct, subprocess, sys, time
mp, log = sys.argv[1], sys.argv[2]
def getlk(fd, cmd, start):
    r = fcntl.fcntl(fd, cmd, struct.pack("hhqqi", fcntl.F_WRLCK, 0, start, 1, 0))
    t, _, _, _, pid = struct.unpack("hhqqi", r)
    return t, pid
def note(s):
    with open(log, "a") as f: f.write(s + "\n")
if sys.argv[3] == "A":
    fd = os.open(mp + "/lk", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 100)            # POSIX, bytes 100..109
    fcntl.fcntl(fd, 37, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 500, 1, 0))  # F_OFD_SETLK, byte 500
    fl = os.open(mp + "/fl", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fl, fcntl.LOCK_EX)
    b = subprocess.Popen([sys.executable, sys.argv[0], mp, log, "B", str(os.getpid())])
    while "B waits" not in open(log).read(): time.sleep(0.05)
    time.sleep(0.3)
    note("A closes")
    os.close(fd)
    sys.exit(b.wait())
else:
    apid = int(sys.argv[4])
    fd = os.open(mp + "/lk", os.O_RDWR)
    t, pid = getlk(fd, fcntl.F_GETLK, 105)
    ot, opid = getlk(fd, 36, 500)                                      # F_OFD_GETLK
    fl = os.open(mp + "/fl", os.O_RDWR)
    try:
        fcntl.flock(fl, fcntl.LOCK_EX | fcntl.LOCK_NB); fk = "flock granted"
    except BlockingIOError: fk = "flock busy"
    free = getlk(fd, fcntl.F_GETLK, 200)[0] == fcntl.F_UNLCK
    print("getlk", t == fcntl.F_WRLCK, pid == apid, "ofd", ot == fcntl.F_WRLCK, opid, fk, "elsewhere free", free)
    note("B waits")
    fcntl.lockf(fd, fcntl.LOCK_EX, 10, 100)                            # F_SETLKW
    note("B got it")
PY
rm -f "$W/locks.log" && touch "$W/locks.log"
shim "$LK" "$PY" "$W/locks.py" "$MP" "$W/locks.log" A >"$OUT" 2>&1
if [ "$(cat "$OUT")" = "getlk True True ofd True -1 flock busy elsewhere free True" ] &&
    [ "$(tr '\n' ' ' <"$W/locks.log")" = "B waits A closes B got it " ]; then
    pass "locks between processes: F_GETLK names the holder's pid, F_OFD_GETLK sees an OFD lock, flock conflicts, F_SETLKW waits until the holder closes"
else fail "locks between processes" "$OUT" "$W/locks.log"; fi
shim "$LK" "$PY" -c '
import fcntl, os, signal, sys
fd = os.open(sys.argv[1] + "/lk", os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 0, 0)
os.kill(os.getpid(), signal.SIGKILL)' "$MP" >/dev/null 2>&1
shim "$LK" "$PY" -c '
import fcntl, os, sys
fd = os.open(sys.argv[1] + "/lk", os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 0, 0); print("granted")' "$MP" >"$OUT" 2>&1
if [ "$(cat "$OUT")" = granted ]; then pass "a lock of a process killed with SIGKILL is released"
else fail "lock released at SIGKILL" "$OUT"; fi
shim "$LK" "$PY" -c '
import fcntl, os, sys
fd = os.open(sys.argv[1] + "/ro", os.O_WRONLY | os.O_CREAT, 0o644); os.close(fd)
fd = os.open(sys.argv[1] + "/ro", os.O_RDONLY)
try: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 0, 0); print("granted")
except OSError as e: print(e.errno == 9)' "$MP" >"$OUT" 2>&1
if [ "$(cat "$OUT")" = True ]; then pass "a write lock on a descriptor open read-only fails with EBADF, as on a file"
else fail "write lock on a read-only descriptor" "$OUT"; fi

# Writers across exec: a shell's builtin and the programs it runs write through one
# description (exec 3>), in both orders; the result committed whole.
shim "$LK" bash -c "exec 3>$MP/x1; echo a >&3; /bin/echo b >&3; exec 3>&-" >"$OUT" 2>&1
shim "$LK" bash -c "exec 3>$MP/x2; /bin/echo a >&3; echo b >&3; /bin/echo c >&3; exec 3>&-" >>"$OUT" 2>&1
shim "$LK" bash -c "exec 3>>$MP/x2; /bin/echo d >&3; echo e >&3; exec 3>&-" >>"$OUT" 2>&1
shim "$LK" bash -c "exec 3>$MP/x3; echo a >&3; exec /bin/echo b >&3" >>"$OUT" 2>&1
r=$(shim "$LK" cat "$MP/x1" "$MP/x2" "$MP/x3" 2>&1 | tr '\n' ' ')
if [ "$r" = "a b a b c d e a b " ] && [ ! -s "$OUT" ]; then
    pass "a shell builtin and the programs it execs write through one exec 3> descriptor, in either order, appending, exec'ing last"
else echo "got: $r" >>"$OUT"; fail "writers across exec" "$OUT"; fi
shim "$LK" "$PY" -c '
import os, sys
fd = os.open(sys.argv[1] + "/fw", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)   # close-on-exec
os.write(fd, b"parent\n")
pid = os.fork()
if pid == 0:
    os.write(fd, b"child\n"); os._exit(0)
os.waitpid(pid, 0)
os.write(fd, b"parent again\n"); os.close(fd)
print(repr(open(sys.argv[1] + "/fw").read()))' "$MP" >"$OUT" 2>&1
if [ "$(cat "$OUT")" = "'parent\nchild\nparent again\n'" ]; then
    pass "a forked child and its parent write through one description in turn: nothing overwritten"
else fail "parent and forked child writing through one description" "$OUT"; fi
shim "$LK" "$PY" -c '
import os, sys
fd = os.open(sys.argv[1] + "/ex", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)   # close-on-exec
os.write(fd, b"kept at exec\n")
os.execv("/bin/cat", ["cat", sys.argv[1] + "/ex"])' "$MP" >"$OUT" 2>&1
if [ "$(cat "$OUT")" = "kept at exec" ]; then pass "what a program wrote through a close-on-exec descriptor is committed when it execs"
else fail "a close-on-exec writer at exec" "$OUT"; fi
check_clean "$LK" "after the lock and shared-writer tests"

# The files in /dev/shm (visible roots, lock files) go with the last process using the
# store, also after a writer killed with its commits only visible.
shim "$LK" "$PY" -c '
import os, sys
os.stat(sys.argv[1]); print(os.path.exists(sys.argv[2]))' "$MP" "$LKVR" >"$OUT" 2>&1
if [ "$(cat "$OUT")" = True ] && [ ! -e "$LKVR" ] && [ ! -e "$LKVR.locks" ]; then
    pass "$LKVR exists while a process uses the store, and goes with its lock files when the last one ends"
else ls -ld "$LKVR"* >>"$OUT" 2>&1; fail "the /dev/shm files go with the last process" "$OUT"; fi
S3SHIM_BLOCK_COMMIT_MS=60000 shim "$LK" "$PY" -c '
import os, signal, sys
with open(sys.argv[1] + "/k", "w") as f: f.write("killed")
os.kill(os.getpid(), signal.SIGKILL)' "$MP" >/dev/null 2>&1
left=$([ -e "$LKVR" ] && echo yes)
S3SHIM_BLOCK_COMMIT_MS=0 shim "$LK" cat "$MP/k" >"$OUT" 2>&1
if [ "$left" = yes ] && [ "$(cat "$OUT")" = killed ] && [ ! -e "$LKVR" ] && ! "$TOOL" blk df "$LK" | grep -q "durable:"; then
    pass "a writer killed with commits only visible leaves $LKVR; the next process makes them durable and removes it"
else ls -ld "$LKVR"* >>"$OUT" 2>&1; fail "the /dev/shm file after a killed writer" "$OUT"; fi
"$TOOL" blk df "$LK" >/dev/null 2>&1
if [ ! -e "$LKVR" ]; then pass "s3shim blk df (not a mount) leaves nothing in /dev/shm either"
else fail "blk df leaves $LKVR"; fi

# Open files and the namespace, as on a disk: a file this process is creating is listed;
# unlinked while open it is gone (Python's TemporaryFile, mkstemp + unlink) and its
# writes are never committed; renamed while open (a new one, a committed one, or the
# directory above it) its later writes and its close follow the new name.
shim "$LK" "$PY" -c '
import os, sys, tempfile
d = sys.argv[1]
os.mkdir(d + "/ns"); os.mkdir(d + "/ns/sub")
out = []
f = open(d + "/ns/new", "w"); f.write("x")
out.append("listed" if "new" in os.listdir(d + "/ns") else "not listed")
f.close()
with tempfile.TemporaryFile(dir=d + "/ns") as t:
    t.write(b"t" * 100000); t.seek(0); out.append("tmp %d" % len(t.read()))
fd, p = tempfile.mkstemp(dir=d + "/ns"); os.unlink(p); os.write(fd, b"abc"); os.close(fd)
out.append("mkstemp gone" if not os.path.exists(p) else "mkstemp back")
open(d + "/ns/c", "w").write("old")
g = open(d + "/ns/c", "r+"); g.write("NEW"); os.unlink(d + "/ns/c"); g.close()
out.append("c gone" if not os.path.exists(d + "/ns/c") else "c back")
h = open(d + "/ns/r.tmp", "w"); h.write("abc"); h.flush(); os.rename(d + "/ns/r.tmp", d + "/ns/r")
out.append(open(d + "/ns/r").read()); h.write("def"); h.close()
k = open(d + "/ns/k", "w"); os.rename(d + "/ns/k", d + "/ns/k2"); k.close()
open(d + "/ns/o", "w").write("111")
q = open(d + "/ns/o", "r+"); os.rename(d + "/ns/o", d + "/ns/o2"); q.write("222"); q.close()
s = open(d + "/ns/sub/in", "w"); s.write("in"); os.rename(d + "/ns/sub", d + "/ns/sub2"); s.write("side"); s.close()
names = sorted(os.listdir(d + "/ns"))
out.append(" ".join(names))
out.append(" ".join(open(d + "/ns/" + n).read() for n in ("r", "k2", "o2", "sub2/in")))
print("; ".join(out))' "$MP" >"$OUT" 2>&1
want="listed; tmp 100000; mkstemp gone; c gone; abc; k2 new o2 r sub2; abcdef  222 inside"
if [ "$(cat "$OUT")" = "$want" ]; then pass "open files and the namespace: listed while new, unlinked or renamed while open as on a disk"
else echo "want: $want" >>"$OUT"; fail "open files unlinked or renamed" "$OUT"; fi
check_clean "$LK" "after unlinking and renaming open files"

# --- 3. small objects: blocks from the mount's kept reservation ------------------------------------
# A small object written at its close takes its blocks from a run the mount keeps reserved
# (an OFD write lock on a descriptor of its own, core/block/block_pool.c): the lock is
# there while the writer lives, goes when it is SIGKILLed (nothing on disk recorded it),
# and processes (and a forked child) carving at once never share a block.
new_dev 64 && KR=$dev && "$TOOL" blk format --force "$KR" >/dev/null 2>&1
probe_py='
import fcntl, os, struct, sys
def held(dev):   # any OFD write lock on the device past its first blocks (the commit lock is byte 0),
    # below the published-root marks at 2^61 (read locks, docs/block-format.md)
    fd = os.open(dev, os.O_RDONLY)
    fl = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, struct.pack("hh4xqqi4x", fcntl.F_WRLCK, 0, 12288, (1 << 61) - 12288, 0))
    os.close(fd)
    return struct.unpack("hh4xqqi4x", fl)[0] == fcntl.F_WRLCK
'
{ S3SHIM_BLOCK_COMMIT_MS=60000 shim "$KR" "$PY" -c "$probe_py"'
import signal
mp, dev = sys.argv[1:3]
os.mkdir(mp + "/kr")
for i in range(20):
    with open("%s/kr/%d" % (mp, i), "w") as f: f.write("small %d\n" % i * 50)
print("held" if held(dev) else "none", flush=True)
os.kill(os.getpid(), signal.SIGKILL)' "$MP" "$KR" >"$OUT"; } 2>/dev/null
"$PY" -c "$probe_py"'
print("held" if held(sys.argv[1]) else "none")' "$KR" >>"$OUT" 2>&1
shim "$KR" "$PY" -c '
import sys
mp = sys.argv[1]
print(all(open("%s/kr/%d" % (mp, i)).read() == "small %d\n" % i * 50 for i in range(20)))' "$MP" >>"$OUT" 2>&1
if [ "$(tr '\n' ' ' <"$OUT")" = "held none True " ]; then
    pass "small objects: the mount keeps a reservation (an OFD lock) while the writer lives; SIGKILLed, the lock is gone and its 20 closed files are all there"
else fail "small objects: kept reservation at SIGKILL" "$OUT"; fi
check_clean "$KR" "after a writer with a kept reservation was SIGKILLed"
carve_py='
import os, sys
mp, tag = sys.argv[1:3]
os.makedirs(mp + "/c", exist_ok=True)
for i in range(10):   # before the fork: the parent has a kept run the child must not carve from
    with open("%s/c/%sx%d" % (mp, tag, i), "w") as f: f.write((tag + "x" + str(i)) * (i % 40 + 1) * 30)
pid = os.fork()   # the child carves from a reservation of its own, the parent from its own
me = tag + ("c" if pid == 0 else "p")
for i in range(150):
    with open("%s/c/%s%d" % (mp, me, i), "w") as f: f.write((me + str(i)) * (i % 40 + 1) * 30)
if pid == 0: os._exit(0)
os.waitpid(pid, 0)
'
shim "$KR" "$PY" -c "$carve_py" "$MP" a >"$OUT" 2>&1 &
ca=$!
shim "$KR" "$PY" -c "$carve_py" "$MP" b >>"$OUT" 2>&1
wait "$ca"
shim "$KR" "$PY" -c '
import os, sys
mp = sys.argv[1]
bad = [n for n in os.listdir(mp + "/c") if open(mp + "/c/" + n).read() != (n * (int(n[2:]) % 40 + 1) * 30)]
print(len(os.listdir(mp + "/c")), len(bad))' "$MP" >>"$OUT" 2>&1
if [ "$(cat "$OUT")" = "620 0" ]; then
    pass "small objects: two processes and their forked children writing 620 small files at once: every file reads back its own bytes"
else fail "small objects: carving at once" "$OUT"; fi
check_clean "$KR" "after four processes carved small objects at once"
# A closed file's descriptor of the device is kept for the next open, its locks dropped:
# after 60 files written and read back twice, the only OFD lock on the device is the
# mount's kept run (no pin or claimed name left behind), and no descriptor piles up.
shim "$KR" "$PY" -c '
import os, sys
mp, dev = sys.argv[1:3]
st = os.stat(dev)
me = "%02x:%02x:%d" % (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
def locks():   # on the device blocks (not the published-root marks from 2^61 up)
    return sum(1 for l in open("/proc/locks") if l.split()[1] == "OFDLCK" and l.split()[5] == me and int(l.split()[6]) < 1 << 61)
def fds(): return len(os.listdir("/proc/self/fd"))
os.mkdir(mp + "/fd")
n = []
for r in range(2):
    for i in range(30):
        with open("%s/fd/%d.%d" % (mp, r, i), "x") as f: f.write("r%d" % i)   # O_EXCL: a claimed name
    ok = all(open("%s/fd/%d.%d" % (mp, r, i)).read() == "r%d" % i for i in range(30))
    ok = ok and all(open("%s/fd/%d.%d" % (mp, r, i)).read() == "r%d" % i for i in range(30))
    n.append((ok, locks(), fds()))
print(n[0][0], n[1][0], n[0][1], n[1][1], n[0][2] == n[1][2])' "$MP" "$KR" >"$OUT" 2>&1
if [ "$(cat "$OUT")" = "True True 1 1 True" ]; then
    pass "device descriptors kept across opens: after 60 small files written (O_EXCL) and read back, one OFD lock left (the kept run), no descriptor piled up"
else fail "device descriptors kept across opens" "$OUT"; fi

# --- 4. stats ---------------------------------------------------------------------------------------
S3SHIM_STATS=1 shim "$LK" sh -c "echo s >$MP/stats; cat $MP/stats" >/dev/null 2>"$OUT"
if grep -q "block" "$OUT" && grep -q "commits" "$OUT"; then pass "S3SHIM_STATS: the mount and its block child (device requests, commits, metadata reads)"
else fail "stats of a block:// mount" "$OUT"; fi

finish
