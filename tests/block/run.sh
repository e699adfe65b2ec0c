#!/usr/bin/env bash
# tests/block/run.sh - block:// (an object store on a raw block device) with real programs:
# `s3shim blk format` refusing devices that hold something, mounting a device that is not
# a store, odd-size writes and byte-for-byte random reads, large objects through every
# read and write path (straight, readahead, write-behind; extents, holes), write errors of
# a failing device reaching the program, O_RDWR/append/truncate
# (copy-on-write) against a plain directory, the namespace (mkdir, mv over a file, mv of a
# directory, rm -r, rmdir) against a plain directory, `blk check` after all of it, a flipped
# bit in every kind of metadata block caught by check, a full device (ENOSPC at the call,
# nothing half-visible), names over the limit, several processes at once (and two taking
# turns, each checking every listing and content after every step), writers
# killed with SIGKILL, and the power-loss simulation (s3shim blk crashtest, 12,000
# states). What processes share (group commit, locks, shared writers, /dev/shm, stats)
# is tests/block/shared.sh.
#
#   BUILD=build SAN= tests/block/run.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/run.sh (ASan+UBSan)
#
# Needs root and losetup for the loop devices (made on files under $TMPDIR or /var/tmp,
# detached on exit); without them the store lives in a plain file and the device-only
# checks print "ok - ... # skip". Output: "ok"/"not ok" lines, then "N passed, M failed".
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" block "s3shim block:// tests"
DIO_CMP=$BUILD/tests/dio_cmp
PREADS=$BUILD/tests/preads
KILLS=${BLOCK_TEST_KILLS:-200}
KPID=""
trap '[ -n "$KPID" ] && kill -9 "$KPID" 2>/dev/null; forget_stores; release_devices; rm -rf "$W"' EXIT

# --- 1. format refuses what holds something --------------------------------------------------
if [ $have_loop = 1 ]; then
    new_dev 64
    mkfs.ext4 -q -F "$dev" >/dev/null 2>&1
    if "$TOOL" blk format "$dev" >"$OUT" 2>&1; then fail "format refuses a device holding ext4" "$OUT"
    elif grep -q "ext4" "$OUT" && [ "$(wc -l <"$OUT")" = 1 ]; then pass "format refuses a device holding ext4, in one line: $(cat "$OUT")"
    else fail "format refuses ext4 with one line naming it" "$OUT"; fi
    mnt=$W/mnt
    mkdir -p "$mnt"
    if mount "$dev" "$mnt" 2>"$OUT"; then
        MNTS+=("$mnt")
        if "$TOOL" blk format --force "$dev" >"$OUT" 2>&1; then fail "format --force refuses a mounted device" "$OUT"
        else pass "format --force still refuses a mounted device: $(head -1 "$OUT")"; fi
        umount "$mnt" && MNTS=()
    else fail "mount the ext4 loop device" "$OUT"; fi
    if "$TOOL" blk format --force "$dev" >"$OUT" 2>&1 && "$TOOL" blk check "$dev" >>"$OUT" 2>&1; then
        pass "format --force overwrites ext4 and the new store checks clean"
    else fail "format --force over ext4" "$OUT"; fi
    parted=$W/pt.img
    truncate -s 16M "$parted"
    printf 'label: gpt\n,\n' | sfdisk -q "$parted" >/dev/null 2>&1
    if "$TOOL" blk format "$parted" >"$OUT" 2>&1; then fail "format refuses a partition table" "$OUT"
    else pass "format refuses an image holding a partition table: $(cat "$OUT")"; fi
else
    skip "format refuses ext4, a mounted device, a partition table; --force" "$why"
fi
new_dev 32
"$TOOL" blk format "$dev" >/dev/null 2>&1
if "$TOOL" blk format "$dev" >"$OUT" 2>&1; then fail "format refuses a device that already holds a store" "$OUT"
else pass "format refuses a device that already holds a store: $(cat "$OUT")"; fi
truncate -s 100K "$W/tiny.img"
if "$TOOL" blk format "$W/tiny.img" >"$OUT" 2>&1; then fail "format refuses a 100 KiB file" "$OUT"
else pass "format refuses a device too small: $(cat "$OUT")"; fi

# --- 2. mounting what is not a store ----------------------------------------------------------
new_dev 16
head -c $((16 << 20)) /dev/urandom | dd of="$dev" bs=1M oflag=direct status=none 2>/dev/null
shim "$dev" cat "$MP/x" >"$OUT" 2>&1
if grep -q "not a block:// store" "$OUT" && [ "$(grep -c "not a block:// store" "$OUT")" = 1 ]; then
    pass "a mount of random bytes is refused with one clear line: $(grep "not a block" "$OUT" | head -1 | cut -c1-150)"
else fail "a mount of a device that is not a store gives one clear line" "$OUT"; fi
if shim "$dev" cat /etc/hostname >/dev/null 2>&1; then pass "paths outside the refused mount keep working"
else fail "paths outside a refused mount keep working"; fi
new_dev 32
"$TOOL" blk format "$dev" >/dev/null 2>&1
dd if=/dev/urandom of="$dev" bs=4096 count=1 conv=notrunc status=none 2>/dev/null
if shim "$dev" sh -c "echo hi > $MP/f && cat $MP/f" >"$OUT" 2>&1 && grep -q hi "$OUT"; then
    pass "a damaged primary superblock: the copy at the end of the device is used"
else fail "mount with the primary superblock damaged (copy)" "$OUT"; fi
if "$TOOL" blk check "$dev" >"$OUT" 2>&1; then fail "check reports the damaged primary superblock" "$OUT"
elif "$TOOL" blk check --repair "$dev" >>"$OUT" 2>&1; [ $? = 1 ] && "$TOOL" blk check "$dev" >>"$OUT" 2>&1; then
    pass "check reports the damaged superblock (4), --repair rewrites it (1), then clean (0)"
else fail "check/repair of the damaged superblock" "$OUT"; fi

# --- 3. data: odd sizes, random reads, threads --------------------------------------------------
new_dev 256
DEV=$dev
"$TOOL" blk format "$DEV" >/dev/null 2>&1
SRC=$W/src
mkdir -p "$SRC"
for n in 0 1 511 4095 4096 4097 1048579; do head -c "$n" /dev/urandom >"$SRC/s$n"; done
head -c $((5 * 1048576 + 1234)) /dev/urandom >"$SRC/big"
ok=1
: >"$OUT"
for n in 0 1 511 4095 4096 4097 1048579; do
    shim "$DEV" bash -c '
        cp "$1" "$2/c$3" && $5 if="$1" of="$2/d$3" bs=777 status=none &&
        dd if="$1" of="$2/m$3" bs=1M status=none &&
        "$4" -c "import sys
d = open(sys.argv[1], \"rb\").read()
with open(sys.argv[2], \"wb\") as f:
    for i in range(0, len(d), 333): f.write(d[i:i + 333])" "$1" "$2/p$3"' _ "$SRC/s$n" "$MP" "$n" "$PY" "$ODD_DD" >>"$OUT" 2>&1 || ok=0
    for k in c d m p; do shim "$DEV" cat "$MP/$k$n" | cmp - "$SRC/s$n" >>"$OUT" 2>&1 || ok=0; done
done
if [ $ok = 1 ]; then pass "cp, dd bs=777, dd bs=1M, python 333-byte writes of 0, 1, 511, 4095, 4096, 4097, 1 MiB+3 bytes; cat reads them back"
else fail "odd-size writes read back byte for byte" "$OUT"; fi
shim "$DEV" cp "$SRC/big" "$MP/ref" >"$OUT" 2>&1
for t in 1 16; do
    if shim "$DEV" "$DIO_CMP" "$MP/ref" "$SRC/big" "$t" 300 >"$OUT" 2>&1; then
        pass "random preads (1-byte, across blocks and chunks, past EOF) and odd read() runs, $t thread(s): $(head -c 80 "$OUT")"
    else fail "random reads, $t thread(s), byte for byte" "$OUT"; fi
done
if shim "$DEV" "$PREADS" "$MP/ref" "$SRC/big" 200 >"$OUT" 2>&1; then
    pass "16 threads on one descriptor: pread, shared-offset read, own opens, dup+preadv"
else fail "16 threads on one descriptor (preads)" "$OUT"; fi
mkdir -p "$W/plain"
"$PY" "$TOP/tests/direct/rdwr.py" "$W/plain" >"$W/rdwr.want" 2>&1
if shim "$DEV" "$PY" "$TOP/tests/direct/rdwr.py" "$MP" >"$W/rdwr.got" 2>&1 && diff "$W/rdwr.want" "$W/rdwr.got" >"$OUT" 2>&1 &&
    shim "$DEV" cat "$MP/rw.bin" | cmp - "$W/plain/rw.bin" >>"$OUT" 2>&1; then
    pass "O_RDWR overwrites read back on one fd, O_APPEND, r+b, truncate, fsync (copy-on-write): same as a plain directory"
else
    cat "$W/rdwr.got" >>"$OUT"
    fail "O_RDWR / O_APPEND / truncate like a plain directory" "$OUT"
fi
# The program's own asynchronous I/O: POSIX AIO is served by the engine; io_uring and
# Linux AIO need a kernel file, which an object store has not: EBADF, and a line that says so.
if shim "$DEV" "$BUILD/tests/aio_calls" "$MP" "$W" >"$OUT" 2>&1; then
    pass "POSIX AIO: aio_read/write/fsync/cancel, lio_listio with a plain file's request, notifications: $(tail -1 "$OUT")"
else fail "POSIX AIO calls (aio_calls)" "$OUT"; fi
shim "$DEV" fio --name=kio --filename="$MP/kio" --rw=randwrite --bs=4k --size=1M --ioengine=libaio --iodepth=4 \
    --direct=1 >"$OUT" 2>&1
if grep -q 'Bad file descriptor' "$OUT" && grep -q 'io_uring and Linux AIO requests the program makes on it fail with EBADF: block:// keeps no kernel file' "$OUT"; then
    pass "fio libaio: EBADF, with one line saying block:// keeps no kernel file"
else fail "fio libaio on block://: EBADF and the reason" "$OUT"; fi
# A reader keeps its version: the object unlinked and its space wanted by other writers
# (other processes, many commits) while the reader is half way through.
pin=$(shim "$DEV" "$PY" -c '
import os, sys, subprocess, hashlib
mp, src = sys.argv[1], sys.argv[2]
subprocess.run(["cp", src, mp + "/pinned"], check=True)
f = open(mp + "/pinned", "rb")
h = hashlib.md5(f.read(1 << 20))
subprocess.run(["rm", mp + "/pinned"], check=True)
for i in range(12):
    subprocess.run(["cp", src, mp + "/filler%d" % i], check=True)
h.update(f.read())
f.close()
for i in range(12): os.unlink(mp + "/filler%d" % i)
print(h.hexdigest() == hashlib.md5(open(src, "rb").read()).hexdigest())' "$MP" "$SRC/big" 2>&1)
if [ "$pin" = True ]; then pass "an object unlinked while open keeps its bytes for the reader while 12 other writers (processes) fill the device"
else echo "$pin" >"$OUT"; fail "a reader keeps an unlinked object's bytes" "$OUT"; fi
st=$(shim "$DEV" stat -c '%s %F %h' "$MP/ref" 2>&1)
if [ "$st" = "$(stat -c '%s' "$SRC/big") regular file 1" ]; then pass "stat of an object: $st"
else echo "$st" >"$OUT"; fail "stat of an object" "$OUT"; fi
# mmap: mappings from a copy of the mapped range (block_map.c); a mapping made after a
# write has it; a shared writable one is written back at close.
mm=$(shim "$DEV" "$PY" -c '
import mmap, os, sys
mp, src = sys.argv[1], sys.argv[2]
want = open(src, "rb").read()
f = open(mp + "/ref", "rb")
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
off = mmap.ALLOCATIONGRANULARITY * 3
part = mmap.mmap(f.fileno(), 5000, prot=mmap.PROT_READ, offset=off)
priv = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
priv[0:4] = b"XXXX"
r = [m[:] == want, part[:] == want[off:off + 5000], priv[4:] == want[4:], m[:4] == want[:4]]
try:
    mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    r.append("shared writable mapping of a read-only file")
except OSError as e:
    r.append(e.errno == 13)
g = open(mp + "/mm", "w+b"); g.write(b"a" * 10000); g.flush()
m1 = mmap.mmap(g.fileno(), 0, prot=mmap.PROT_READ)
g.seek(9990); g.write(b"b" * 20); g.flush()
m2 = mmap.mmap(g.fileno(), 0, prot=mmap.PROT_READ)
r += [len(m1) == 10000 and m1[-1:] == b"a", len(m2) == 10010 and m2[-20:] == b"b" * 20]
m1.close(); m2.close(); g.close()  # mmap holds a dup: the object commits at its last close
g = open(mp + "/mm", "r+b")
w = mmap.mmap(g.fileno(), 0)  # shared, writable
w[0:3] = b"XYZ"; w[-3:] = b"END"
g.seek(3); g.write(b"123"); g.flush()  # a write through the file shows in the mapping
r.append(w[0:6] == b"XYZ123")
def committed():
    fd = os.open(mp + "/mm", os.O_RDONLY); b = os.read(fd, 6); os.close(fd); return b
w[0:1] = b"Q"
r.append(committed() == b"aaaaaa")  # another descriptor: the committed version
w.flush()  # msync: a commit point, as fsync
r.append(committed() == b"QYZ123")
w.close(); g.close()
got = open(mp + "/mm", "rb").read()
r.append(got[:6] == b"QYZ123" and got[-3:] == b"END" and len(got) == 10010)
os.unlink(mp + "/mm")
print(r)' "$MP" "$SRC/big" 2>&1)
if [ "$mm" = "[True, True, True, True, True, True, True, True, True, True, True]" ]; then
    pass "mmap: whole and partial read-only mappings, MAP_PRIVATE copy-on-write, a later mapping sees a write; shared writable: EACCES on a read-only file, committed at msync and written back at close (and the file's own writes show in it)"
else echo "$mm" >"$OUT"; fail "mmap of an object" "$OUT"; fi
# Shared writable mappings of one object by two open files (another process, a second
# open in this one) map one copy for the host (they once each wrote into a copy of their
# own, and sqlite3's -shm in WAL mode from two processes lost committed rows); a forked
# child shares its parent's mapping; after the last close the object holds every store.
# Between processes at once: tests/block/coherent.sh.
mm2=$(shim "$DEV" "$PY" -c '
import mmap, os, subprocess, sys
p = sys.argv[1] + "/mm2"
open(p, "wb").write(b"0" * 8192)
g = open(p, "r+b"); w = mmap.mmap(g.fileno(), 0)
w[0:2] = b"P1"
other = "import mmap, sys\ng = open(sys.argv[1], \"r+b\")\nw = mmap.mmap(g.fileno(), 0); print(w[0:2].decode()); w[6:8] = b\"O1\""
r = [subprocess.run([sys.executable, "-c", other, p], capture_output=True, text=True).stdout.split(), w[6:8] == b"O1"]
h = open(p, "r+b"); w2 = mmap.mmap(h.fileno(), 0)
w2[8:10] = b"S1"
r.append(w[8:10] == b"S1")
pid = os.fork()
if pid == 0:
    w[2:4] = b"C1"; os._exit(0)
os.waitpid(pid, 0)
r.append(w[0:4] == b"P1C1")
w2.close(); h.close(); w.close(); g.close()
r.append(open(p, "rb").read(10).decode())
os.unlink(p)
print(r)' "$MP" 2>&1)
if [ "$(echo "$mm2" | tail -1)" = "[['P1'], True, True, True, 'P1C100O1S1']" ]; then
    pass "mmap: shared writable mappings of one object by another process and by a second open file share one copy; a forked child shares the mapping; the object holds every store after the closes"
else echo "$mm2" >"$OUT"; fail "mmap: two shared writable mappings of one object" "$OUT"; fi
# sqlite3 in WAL mode, one process, a -shm file that grows past its first 32 KiB and is
# mapped again: the mapping's copy grows with the file (it faulted with SIGBUS).
wal=$(shim "$DEV" "$PY" -c '
import os, sqlite3, sys
p = sys.argv[1] + "/walbig.db"
c = sqlite3.connect(p); c.execute("pragma journal_mode=wal"); c.execute("pragma wal_autocheckpoint=0")
c.execute("create table t (a)")
for i in range(30):
    c.executemany("insert into t values (?)", [(os.urandom(3000),) for _ in range(400)]); c.commit()
r = [c.execute("select count(*) from t").fetchone()[0], c.execute("pragma integrity_check").fetchone()[0], os.path.getsize(p + "-shm") > 32768]
c.close()
r.append(sqlite3.connect(p).execute("select count(*) from t").fetchone()[0])
for s in ("", "-wal", "-shm"):
    if os.path.exists(p + s): os.unlink(p + s)
print(r)' "$MP" 2>&1)
if [ "$wal" = "[12000, 'ok', True, 12000]" ]; then pass "sqlite3 WAL, one process, a -shm grown past 32 KiB and mapped again: 12,000 rows, integrity ok"
else echo "$wal" >"$OUT"; fail "sqlite3 WAL with a growing -shm" "$OUT"; fi
# fallocate: grows the object (zeros after its bytes); past the store's free space ENOSPC
# and past 2^63 EFBIG, the object as it was.
fa=$(shim "$DEV" "$PY" -c '
import os, sys
p = sys.argv[1] + "/fa.bin"
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644); os.write(fd, b"abc")
os.posix_fallocate(fd, 0, 10000); r = [os.fstat(fd).st_size, os.pread(fd, 4, 0)]
for a in ((0, 1 << 45), (1 << 62, 1 << 62)):
    try: os.posix_fallocate(fd, *a); r.append("grew")
    except OSError as e: r.append(e.strerror)
os.close(fd); r.append(os.stat(p).st_size); os.unlink(p)
print(r)' "$MP" 2>&1)
if [ "$fa" = "[10000, b'abc\\x00', 'No space left on device', 'File too large', 10000]" ]; then
    pass "fallocate grows an object with zeros; ENOSPC past the free space, EFBIG past 2^63, the object as it was"
else echo "$fa" >"$OUT"; fail "fallocate on block://" "$OUT"; fi
check_clean "$DEV" "after the data tests"

# --- 3b. large objects: the sequential data path ---------------------------------------------------
# Reads straight into an aligned buffer (dd bs=1M and 4M, iflag=direct, python preadv at
# sector offsets), readahead for smaller and unaligned sequential reads (cat, dd bs=777),
# random reads from 1 and 16 threads; across extents (two objects written at once, so
# their extents interleave) and holes. Writes straight from an aligned buffer, gathered
# ones sent in the background (with rewrites of what is still in flight), overwrites of a
# committed object (copy-on-write). Built the same way in a plain directory and compared.
new_dev 256 512 # 512-byte sectors: reads at a sector, not a block, boundary go straight too
LDEV=$dev
"$TOOL" blk format "$LDEV" >/dev/null 2>&1
head -c $((40 * 1048576 + 4321)) /dev/urandom >"$W/lsrc"
cat >"$W/large.py" <<'EOF'
import mmap, os, sys
d, src = sys.argv[1], open(sys.argv[2], "rb").read()
M = 1 << 20
buf = mmap.mmap(-1, 4 * M) # page aligned: written straight from it
def put(fd, data, off):
    buf[:len(data)] = data
    os.pwrite(fd, memoryview(buf)[:len(data)], off)
a = os.open(d + "/la", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
b = os.open(d + "/lb", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(16): # both at once: a straight (1 MiB, aligned), b gathered (100000 bytes)
    put(a, src[i * M:(i + 1) * M], i * M)
    os.write(b, src[i * 100000:(i + 1) * 100000])
os.pwrite(a, src[16 * M:22 * M + 4321], 18 * M)         # after a 2 MiB hole, unaligned bytes
put(a, src[30 * M:34 * M], 25 * M)                        # 4 MiB straight after another hole
os.pwrite(b, src[7:300007], 1400000 - 12345)              # over what may still be in flight
for i in range(16, 300): os.write(b, src[i * 100000 + 3:(i + 1) * 100000 + 3])
os.close(a)
os.close(b)
c = os.open(d + "/la", os.O_WRONLY)                       # the committed version, changed
put(c, src[5 * M:7 * M], 3 * M)                           # straight, over shared blocks
os.pwrite(c, src[7:700007], 9 * M + 5)                    # gathered, over shared blocks
os.close(c)
e = os.open(d + "/lc", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(8): # a chunk gathered and sent in the background, then its blocks again
    os.pwrite(e, src[i + 1:i + 1 + M], 0)
    os.pwrite(e, src[i + 9:i + 9 + M], M)
os.close(e)
EOF
mkdir -p "$W/lplain"
"$PY" "$W/large.py" "$W/lplain" "$W/lsrc" >"$OUT" 2>&1 || fail "large objects: the plain-directory reference" "$OUT"
if shim "$LDEV" "$PY" "$W/large.py" "$MP" "$W/lsrc" >"$OUT" 2>&1; then
    ok=1
    for k in la lb lc; do
        for how in "dd bs=1M" "dd bs=4M" "dd bs=1M iflag=direct" "odd bs=777" "cat" "dd bs=1M skip=3" "dd bs=4k skip=777"; do
            case $how in
            cat) shim "$LDEV" cat "$MP/$k" >"$W/lgot" 2>>"$OUT" ;;
            odd*) shim "$LDEV" $ODD_DD bs=777 if="$MP/$k" of="$W/lgot" status=none 2>>"$OUT" ;; # libasan refuses dd's
            *) shim "$LDEV" $how if="$MP/$k" of="$W/lgot" status=none 2>>"$OUT" ;;
            esac
            case $how in
            *skip=3) tail -c +$((3 * 1048576 + 1)) "$W/lplain/$k" >"$W/lwant" ;;
            *skip=777) tail -c +$((777 * 4096 + 1)) "$W/lplain/$k" >"$W/lwant" ;;
            *) cp "$W/lplain/$k" "$W/lwant" ;;
            esac
            cmp "$W/lgot" "$W/lwant" >>"$OUT" 2>&1 || { ok=0; echo "$k: $how differs" >>"$OUT"; }
        done
    done
    for t in 1 16; do
        shim "$LDEV" "$DIO_CMP" "$MP/la" "$W/lplain/la" "$t" 300 >>"$OUT" 2>&1 || { ok=0; echo "dio_cmp $t" >>"$OUT"; }
    done
    shim "$LDEV" "$PY" -c '
import mmap, os, random, sys
want = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_RDONLY)
buf = mmap.mmap(-1, 3 << 20)
r = random.Random(7)
for _ in range(300): # aligned buffers at sector offsets: straight reads, some across extents and holes
    off = r.randrange(0, len(want) + 4096, 512)
    n = r.choice([512, 4096, 5 * 512, 1 << 20, 3 << 20])
    got = os.preadv(fd, [memoryview(buf)[:n]], off)
    assert buf[:got] == want[off:off + n], (off, n, got)
print("ok")' "$MP/la" "$W/lplain/la" >>"$OUT" 2>&1 || { ok=0; echo "preadv at sector offsets" >>"$OUT"; }
    if [ $ok = 1 ]; then
        pass "large objects across extents and holes: written straight (aligned 1-4 MiB), gathered and sent in the background (rewrites of what is in flight), overwritten after the commit; read back with dd 1M/4M/direct/777/4k, cat, random preads (1 and 16 threads) and sector-aligned preadv: byte for byte"
    else fail "large objects written and read by every path, byte for byte" "$OUT"; fi
else fail "large objects: writing them under the shim" "$OUT"; fi
check_clean "$LDEV" "after the large-object tests"

# A device whose writes fail (its backing file on a full tmpfs: the loop device answers
# with an error): a straight write (dd bs=1M) fails at the call, gathered writes sent in
# the background fail at a later write or the close; either way the object keeps its
# previous version, and the store is clean.
if [ $have_loop = 1 ] && mkdir -p "$W/full" && mount -t tmpfs -o size=6m tmpfs "$W/full"; then
    MNTS+=("$W/full")
    truncate -s 64M "$W/full/img"
    dd if=/dev/zero of="$W/full/img" bs=1M count=3 conv=notrunc status=none           # the metadata zone
    dd if=/dev/zero of="$W/full/img" bs=1M seek=63 count=1 conv=notrunc status=none   # the superblock copy
    FDEV=$(losetup -f --show -b 4096 "$W/full/img") && LOOPS+=("$FDEV")
    "$TOOL" blk format "$FDEV" >/dev/null 2>&1
    head -c 1048576 "$W/lsrc" >"$W/v1"
    shim "$FDEV" dd if="$W/v1" of="$MP/v" bs=1M status=none >"$OUT" 2>&1 || fail "the first version on the small device" "$OUT"
    frc=0
    shim "$FDEV" dd if="$W/lsrc" of="$MP/v" bs=1M count=12 status=none >"$OUT" 2>&1 || frc=1
    shim "$FDEV" "$PY" -c '
import sys
src = open(sys.argv[1], "rb").read()
try:
    with open(sys.argv[2], "wb") as f:
        for i in range(120): f.write(src[i * 100000:(i + 1) * 100000])
except OSError as e:
    print("gathered writes failed:", e); sys.exit(1)' "$W/lsrc" "$MP/v" >>"$OUT" 2>&1 || frc=$((frc + 2))
    if [ $frc = 3 ] && shim "$FDEV" cat "$MP/v" | cmp - "$W/v1" >>"$OUT" 2>&1; then
        pass "write errors: straight (dd bs=1M) and in the background (python) reach the program ($(grep -o 'failed: .*' "$OUT" | head -1 | cut -c1-60)), the object keeps its previous version"
    else echo "rc $frc" >>"$OUT"; fail "write errors reach the program and leave the previous version" "$OUT"; fi
    check_clean "$FDEV" "after the write errors"
else
    skip "write errors on a failing device" "$([ $have_loop = 1 ] && echo "no tmpfs mount" || echo "$why")"
fi

# --- 4. the namespace against a plain directory ---------------------------------------------------
ns_script='set -e
mkdir -p a/b/c "sp ace" emptydir
echo one >a/1.txt; echo two >a/b/2.txt; echo three >a/b/c/3.txt; seq 1 5000 >"sp ace/seq"
cp a/1.txt a/b/copy.txt
mv a/b/copy.txt a/1.txt              # over an existing object
mv a/b a/moved                       # a directory with everything below it
cp -r a a2 && rm -r a2/moved
rmdir emptydir; mkdir emptydir2
rmdir a 2>/dev/null && echo rmdir-nonempty-succeeded || echo rmdir-nonempty-refused
rm a/moved/c/3.txt; ls a/moved/c | wc -l   # an emptied directory stays
touch -d @1600000000 a/1.txt; stat -c "%n %s %Y" a/1.txt
tar cf - --sort=name a "sp ace" | tar tvf - --full-time | awk "{print \$1, \$3, \$6}"
find . | sort; ls -la --time-style=+ . | awk "{print \$1, \$5, \$NF}" | grep -v " \.\.\$" | sort
python3 -c "import os; print(sorted((r, sorted(d), sorted(f)) for r, d, f in os.walk(\".\")))"
cat a/1.txt; md5sum "sp ace/seq"'
mkdir -p "$W/nsreal"
(cd "$W/nsreal" && bash -c "$ns_script") >"$W/ns.want" 2>&1
shim "$DEV" bash -c "cd $MP && mkdir ns && cd ns && $ns_script" >"$W/ns.got" 2>&1
if diff "$W/ns.want" "$W/ns.got" >"$OUT" 2>&1; then pass "mkdir -p, mv over an object, mv of a directory, cp -r, rm -r, rmdir, touch -d, tar, find, ls -la, os.walk: same as a plain directory"
else fail "namespace operations like a plain directory" "$OUT"; fi
if shim "$DEV" sh -c "mv $MP/ns/a $MP/ns/a/inside" >"$OUT" 2>&1; then fail "mv of a directory into itself is refused" "$OUT"
else pass "mv of a directory into itself is refused: $(head -1 "$OUT" | cut -c1-100)"; fi
# A directory's mtime moves with every file created in it, also the second and later ones
# in a row (their commits take the parent's entry from what this thread kept of it,
# core/block/backend_block.c, "bm_file_parents"), and after the directory was changed
# another way (utime: a commit that is not a file's, so nothing kept holds).
dmt=$(shim "$DEV" "$PY" -c '
import os, sys, time
d = sys.argv[1] + "/dmt/x"
os.makedirs(d)
old = 1600000000 * 10**9
out = []
for i in range(3):
    os.utime(d, ns=(old, old))
    open(os.path.join(d, "a%d" % i), "wb").write(b"x")
    out.append(os.stat(d).st_mtime_ns > old)
prev = os.stat(d).st_mtime_ns
for i in range(5):
    time.sleep(0.002)
    open(os.path.join(d, "b%d" % i), "wb").write(b"x")
    m = os.stat(d).st_mtime_ns
    out.append(m > prev)
    prev = m
print("ok" if all(out) else out, oct(os.stat(d).st_mode))
' "$MP" 2>&1)
if [ "$dmt" = "ok 0o40755" ] || [ "$dmt" = "ok 0o40775" ]; then pass "a directory's mtime moves with every file created in it, its mode kept ($dmt)"
else fail "a directory's mtime moves with every file created in it" "$dmt"; fi
long=$(printf 'd%.0s' $(seq 1 200))
if shim "$DEV" sh -c "mkdir -p $MP/$long/$long/$long/$long && echo x > $MP/$long/$long/$long/$long/$long/$long" >"$OUT" 2>&1; then
    fail "a key over 1024 bytes is refused" "$OUT"
elif grep -q "too long" "$OUT"; then pass "a key over 1024 bytes is refused (ENAMETOOLONG): $(tail -1 "$OUT" | cut -c1-60)..."
else fail "a key over 1024 bytes gives ENAMETOOLONG" "$OUT"; fi
excl=$(shim "$DEV" "$PY" -c '
import os, sys
p = sys.argv[1] + "/excl.lock"
a = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
out = []
def try_excl(who):
    try:
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)); out.append(who + ":won")
    except FileExistsError: out.append(who + ":EEXIST")
try_excl("same")
pid = os.fork()
if pid == 0:
    try_excl("child"); print(" ".join(out)); os._exit(0)
os.waitpid(pid, 0)
os.close(a)
try_excl("after")
print(" ".join(out))' "$MP" 2>&1)
if [ "$excl" = "$(printf 'same:EEXIST child:EEXIST\nsame:EEXIST after:EEXIST')" ]; then
    pass "O_CREAT|O_EXCL: of two creators of one new name (same process, another process) one wins; after the close the name exists"
else echo "$excl" >"$OUT"; fail "O_CREAT|O_EXCL exclusive" "$OUT"; fi
# A new object opened again by name while its writer is still open (git's index-pack reads
# back the tmp_pack it writes): found, with what was written so far, as on a disk.
reopen=$(shim "$DEV" "$PY" -c '
import os, sys
p = sys.argv[1] + "/ns/tmp_pack"
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b"PACK" * 1000)
r = os.open(p, os.O_RDONLY)
got = os.read(r, 8)
os.write(fd, b"tail"); os.close(fd); os.close(r)
print(got, os.path.getsize(p)); os.remove(p)' "$MP" 2>&1)
if [ "$reopen" = "b'PACKPACK' 4004" ]; then pass "an object still being written opened again by name: found, its bytes so far; complete after the close"
else echo "$reopen" >"$OUT"; fail "an object still being written opened again by name" "$OUT"; fi
# Owners are the process's own ids (cached: core/sys.h); a process that changes them sees
# the new ones at its next stat, on an object, a directory and the mount itself.
ids=$(shim "$DEV" "$PY" -c '
import os, sys
paths = [sys.argv[1] + "/ns/a/1.txt", sys.argv[1] + "/ns/a", sys.argv[1]]
before = [(os.stat(p).st_uid, os.stat(p).st_gid) for p in paths]
os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
after = [(os.stat(p).st_uid, os.stat(p).st_gid) for p in paths]
print(before == [(0, 0)] * 3, after == [(65534, 65534)] * 3, before, after)' "$MP" 2>&1)
case "$ids" in
"True True "*) pass "st_uid/st_gid follow setresuid/setresgid (object, directory, the mount): ${ids#True True }" ;;
*) echo "$ids" >"$OUT"; fail "st_uid/st_gid follow setresuid/setresgid (as root)" "$OUT" ;;
esac
check_clean "$DEV" "after the namespace tests"
if "$TOOL" blk ls "$DEV" ns/a/ >"$OUT" 2>&1 && [ "$(awk '{print $1, $2, $NF}' "$OUT" | tr '\n' ' ')" = "d0755 0 ns/a/ -0644 4 ns/a/1.txt d0755 0 ns/a/moved/ -0644 4 ns/a/moved/2.txt d0755 0 ns/a/moved/c/ " ]; then
    pass "s3shim blk ls DEV PREFIX: modes, sizes and keys of the entries under it"
else fail "s3shim blk ls DEV PREFIX" "$OUT"; fi
objs=$(shim "$DEV" find "$MP" -type f | wc -l)
if "$TOOL" blk df "$DEV" >"$OUT" 2>&1 && grep -q "^objects *$objs\$" "$OUT" &&
    [ "$(awk '/^free/ {print $2}' "$OUT")" = "$(shim "$DEV" stat -f -c '%f' "$MP" | awk '{print $1 * 4096}')" ]; then
    pass "s3shim blk df DEV: $objs objects (as find counts them), free space equal to statvfs through the shim"
else echo "find counts $objs objects" >>"$OUT"; fail "s3shim blk df DEV" "$OUT"; fi

# --- 4b. index leaves stay full ------------------------------------------------------------------
# 2000 empty objects (55-byte entries: 28 full leaves) created one commit each: in key
# order, round-robin over 8 directories (8 writers filling at once), and in a random
# order. Nodes split half full would take about 55 leaves for the first two; a split
# after keys arriving in order leaves them full, and an overflow not in order goes to a
# neighbour with room (about 3/4 full instead of 2/3). Then half of them are deleted.
index_blocks() { "$TOOL" blk check "$1" 2>&1 | tail -1 | sed -n 's/.* \([0-9]*\) index blocks.*/\1/p'; }
new_dev 64 && FD=$dev && "$TOOL" blk format --force "$FD" >/dev/null 2>&1
fill_py() { # fill_py ORDER: 2000 objects under $MP/ORDER
    shim "$FD" "$PY" -c '
import os, random, sys
mp, order = sys.argv[1:3]
names = ["%s/f%06d" % (order, i) for i in range(2000)]
if order == "dirs": names = ["dirs/c%d/f%06d" % (i % 8, i) for i in range(2000)]
if order == "random": random.Random(7).shuffle(names)
for n in names:
    os.makedirs(os.path.dirname(mp + "/" + n), exist_ok=True)
    open(mp + "/" + n, "w").close()
' "$MP" "$1" >"$OUT" 2>&1
}
ib0=$(index_blocks "$FD")
fill_py sorted && ib1=$(index_blocks "$FD") && fill_py dirs && ib2=$(index_blocks "$FD") && fill_py random &&
    ib3=$(index_blocks "$FD") || fail "2000 objects three times for the fill test" "$OUT"
echo "index blocks: empty ${ib0:-?}, +sorted ${ib1:-?}, +dirs ${ib2:-?}, +random ${ib3:-?}" >"$OUT"
if [ -n "${ib3:-}" ] && [ $((ib1 - ib0)) -le 31 ]; then pass "2000 objects created in key order take $((ib1 - ib0)) index blocks (28 full leaves)"
else fail "objects created in key order leave full leaves" "$OUT"; fi
if [ -n "${ib3:-}" ] && [ $((ib2 - ib1)) -le 38 ]; then pass "2000 objects created round-robin over 8 directories take $((ib2 - ib1)) index blocks (split half full: 49)"
else fail "objects created over 8 directories at once leave full leaves" "$OUT"; fi
if [ -n "${ib3:-}" ] && [ $((ib3 - ib2)) -le 36 ]; then pass "2000 objects created in a random order take $((ib3 - ib2)) index blocks (without moving items to a neighbour: 41)"
else fail "objects created in a random order leave leaves about 3/4 full" "$OUT"; fi
shim "$FD" "$PY" -c '
import os, random, sys
mp = sys.argv[1]
names = ["%s/f%06d" % (o, i) for o in ("sorted", "random") for i in range(2000)] + ["dirs/c%d/f%06d" % (i % 8, i) for i in range(2000)]
random.Random(8).shuffle(names)
for n in names[:3000]: os.unlink(mp + "/" + n)
print("\n".join(sorted(names[3000:])))
' "$MP" >"$W/fill.want" 2>&1
shim "$FD" find "$MP" -type f | sed "s|^$MP/||" | sort >"$W/fill.got"
if [ "$(wc -l <"$W/fill.got")" = 3000 ] && diff "$W/fill.want" "$W/fill.got" >"$OUT" 2>&1; then
    pass "3000 of the 6000 deleted in a random order: the 3000 others listed, no more"
else fail "3000 of 6000 objects deleted in a random order" "$OUT"; fi
check_clean "$FD" "after the fill test"

# --- 5. a flipped bit in every kind of metadata block -----------------------------------------------
# Enough keys for a tree of two levels (branch nodes), then a copy of the device per flip.
shim "$DEV" "$PY" -c '
import os, sys
d = sys.argv[1] + "/many"
os.makedirs(d, exist_ok=True)
for i in range(600):
    with open("%s/%s-%05d" % (d, "k" * 60, i), "wb") as f: f.write(b"%d" % i)
for i in range(0, 600, 3): os.unlink("%s/%s-%05d" % (d, "k" * 60, i))
' "$MP" >"$OUT" 2>&1 || fail "600 small objects for the bit-flip test" "$OUT"
# One more commit, durable at once: the root before it (the one a damaged newest root
# falls back to) then holds the 400 objects, which group commit made durable together
# when the python process ended.
S3SHIM_BLOCK_COMMIT_MS=0 shim "$DEV" touch "$MP/many/last" >"$OUT" 2>&1 || fail "a durable commit after the 600" "$OUT"
"$TOOL" blk check --blocks "$DEV" >"$W/blocks" 2>&1
flips=0 caught=0
missed=""
for kind in super root branch leaf bitmap bitmapdir pendingfree; do
    addrs=$(awk -v k="$kind" '$1 == "block" && $2 == k {print $3}' "$W/blocks" | head -3)
    if [ -z "$addrs" ]; then missed="$missed $kind(none live)"; continue; fi
    for a in $addrs; do
        img=$W/flip.img
        dd if="$DEV" of="$img" bs=1M iflag=direct status=none
        bit=$((RANDOM % 32768))
        "$PY" -c '
import sys
f = open(sys.argv[1], "r+b"); off = int(sys.argv[2]) * 4096 + int(sys.argv[3]) // 8
f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ (1 << (int(sys.argv[3]) % 8))]))' "$img" "$a" "$bit"
        flips=$((flips + 1))
        "$TOOL" blk check "$img" >"$W/flip.out" 2>&1
        if [ $? = 4 ]; then caught=$((caught + 1)); else missed="$missed $kind@$a/bit$bit"; fi
    done
done
rm -f "$W/flip.img"
if [ -z "$missed" ] && [ $flips -ge 7 ]; then pass "a flipped bit in each kind of metadata block (superblocks, root, branch, leaf, bitmap, bitmap directory, pending-free list): $caught of $flips caught by check (exit 4)"
else echo "missed:$missed" >"$OUT"; fail "flipped bits caught by check ($caught of $flips)" "$OUT"; fi
# A flipped bit in the newest root: the mount falls back to the previous commit.
dd if="$DEV" of="$W/fb.img" bs=1M iflag=direct status=none
root=$(awk '$2 == "root" {print $3}' "$W/blocks")
printf '\xff' | dd of="$W/fb.img" bs=1 seek=$((root * 4096 + 200)) conv=notrunc status=none
if shim "$W/fb.img" sh -c "ls $MP/many | wc -l" >"$OUT" 2>&1 && [ "$(tail -1 "$OUT")" -ge 399 ]; then
    pass "a damaged newest root: the mount falls back to the other root ($(tail -1 "$OUT") entries listed)"
else fail "fall back to the other root" "$OUT"; fi
rm -f "$W/fb.img"

# --- 6. a full device ------------------------------------------------------------------------------
new_dev 8
"$TOOL" blk format "$dev" >/dev/null 2>&1
head -c $((12 << 20)) /dev/urandom >"$W/12m"
shim "$dev" cp "$W/12m" "$MP/toobig" >"$OUT" 2>&1
rc=$?
if [ $rc != 0 ] && grep -q "No space left" "$OUT" && ! shim "$dev" ls "$MP/toobig" >/dev/null 2>&1; then
    pass "ENOSPC reaches cp on a full device, and nothing of the object is visible"
else echo "cp rc=$rc" >>"$OUT"; fail "ENOSPC on a full device, nothing half-visible" "$OUT"; fi
if shim "$dev" sh -c "head -c 1000000 $W/12m > $MP/fits && cmp $MP/fits <(head -c 1000000 $W/12m)" >"$OUT" 2>&1 ||
    shim "$dev" bash -c "head -c 1000000 $W/12m > $MP/fits && cmp $MP/fits <(head -c 1000000 $W/12m)" >"$OUT" 2>&1; then
    pass "after ENOSPC the space is free again: a 1 MB object fits and reads back"
else fail "space reusable after ENOSPC" "$OUT"; fi
check_clean "$dev" "after ENOSPC"

# Space freed by commit F is free for writers once commit F+1 is durable (the two root
# slots then hold F and F+1, which reach none of it), not before. A nearly full store: A
# takes all but 64 KiB; rm A is commit F, and blk df does not count A's space free while F
# is the newest root. B (A's size) still fits: its writer, finding no free block, makes an
# empty durable commit F+1 itself (blk_reclaim) and then takes A's space; B is F+2.
new_dev 8
"$TOOL" blk format "$dev" >/dev/null 2>&1
df_free() { "$TOOL" blk df "$dev" | awk '/^free/ {print $2}'; }
df_commit() { "$TOOL" blk df "$dev" | awk '/^commit/ {print $2}'; }
asz=$(($(df_free) - 65536))
head -c "$asz" /dev/urandom >"$W/a.bin"
S3SHIM_BLOCK_COMMIT_MS=0 shim "$dev" cp "$W/a.bin" "$MP/A" >"$OUT" 2>&1
S3SHIM_BLOCK_COMMIT_MS=0 shim "$dev" rm "$MP/A" >>"$OUT" 2>&1
free_f=$(df_free) c_f=$(df_commit)
S3SHIM_BLOCK_COMMIT_MS=0 shim "$dev" cp "$W/a.bin" "$MP/B" >>"$OUT" 2>&1
rc_b=$?
c_b=$(df_commit)
if [ "$free_f" = 65536 ] && [ "$rc_b" = 0 ] && [ "$c_b" = $((c_f + 2)) ] &&
    shim "$dev" cmp "$W/a.bin" "$MP/B" >>"$OUT" 2>&1; then
    pass "space freed by commit F: not free while F is the newest root (blk df free $free_f); a writer that needs it makes F+1 durable itself and takes it (commit $c_f, then $c_b)"
else
    echo "after rm: free $free_f commit $c_f; cp rc $rc_b, commit $c_b (want $((c_f + 2)))" >>"$OUT"
    fail "space freed by commit F reusable once F+1 is durable, made so by the writer that needs it" "$OUT"
fi
check_clean "$dev" "after reusing freed space"
# One process under group commit, rewriting an object of a third of the store faster
# than its commits become durable: every version it replaced is held until a durable
# root after it (B's space among it), so without the writer's durable commit at ENOSPC the
# first write already fails.
head -c $((asz / 3)) /dev/urandom >"$W/t.bin"
if shim "$dev" "$PY" -c '
import os, sys
if os.path.exists(sys.argv[2][:-1] + "B"): os.unlink(sys.argv[2][:-1] + "B")
d = open(sys.argv[1], "rb").read()
for i in range(30):
    with open(sys.argv[2], "wb") as w: w.write(d)
assert open(sys.argv[2], "rb").read() == d' "$W/t.bin" "$MP/T" >"$OUT" 2>&1; then
    pass "one process rewriting a third of the store 30 times under group commit: no ENOSPC"
else fail "one process rewriting a third of the store 30 times under group commit" "$OUT"; fi
check_clean "$dev" "after rewriting in one process"
# A reader that read to the end follows each new version (tail -f): it lets go of the
# blocks of the versions it leaves, or the rewrites above would run out of space.
if shim "$dev" "$PY" -c '
import os, sys
d = open(sys.argv[1], "rb").read()
r = open(sys.argv[2], "rb"); r.read()
for i in range(30):
    with open(sys.argv[2], "wb") as w: w.write(d[i:] + d[:i])
    assert os.fstat(r.fileno()).st_size == len(d)
r.seek(0); assert r.read() == d[29:] + d[:29]' "$W/t.bin" "$MP/T" >"$OUT" 2>&1; then
    pass "a reader at the end follows 30 rewrites of a third of the store, each version's blocks let go: no ENOSPC, the last one read"
else fail "a reader at the end following 30 rewrites" "$OUT"; fi
check_clean "$dev" "after a reader followed the rewrites"
# fallocate asks for the space those rewrites hold, as a write does, before ENOSPC.
if shim "$dev" "$PY" -c '
import os, sys
d = open(sys.argv[1], "rb").read()
for i in range(4):
    with open(sys.argv[2], "wb") as w: w.write(d)
fd = os.open(sys.argv[2] + ".fa", os.O_WRONLY | os.O_CREAT, 0o644)
os.posix_fallocate(fd, 0, len(d) * 3 // 2); os.close(fd); os.unlink(sys.argv[2] + ".fa")' "$W/t.bin" "$MP/T" >"$OUT" 2>&1; then
    pass "posix_fallocate of half the store right after rewrites that hold a third: the held space is taken, no ENOSPC"
else fail "posix_fallocate after rewrites that hold space" "$OUT"; fi
check_clean "$dev" "after fallocate took held space"

# Too many objects: a 1 MiB store's metadata zone fills; ENOSPC at the close, the store stays clean.
new_dev 1
"$TOOL" blk format "$dev" >/dev/null 2>&1
tm=$(shim "$dev" "$PY" -c '
import os, sys, errno
n = 0
try:
    while n < 100000:
        open("%s/obj-%06d-%s" % (sys.argv[1], n, "x" * 100), "wb").close(); n += 1
    print(n, "no error")
except OSError as e:
    print(n, errno.errorcode[e.errno])
n2 = len(os.listdir(sys.argv[1]))
print(n2)' "$MP" 2>/dev/null)
set -- $tm
if [ "${2:-}" = ENOSPC ] && [ "${3:-}" = "$1" ] && "$TOOL" blk check "$dev" >"$OUT" 2>&1; then
    pass "too many objects: ENOSPC at close after $1 objects in a 1 MiB store, each of them listed, check clean"
else echo "$tm" >>"$OUT"; fail "too many objects: ENOSPC, store clean" "$OUT"; fi

# --- 7. several processes at once -----------------------------------------------------------------
new_dev 256
CDEV=$dev
"$TOOL" blk format "$CDEV" >/dev/null 2>&1
shim "$CDEV" bash -c '
for w in 1 2 3 4; do
  ( mkdir -p "$1/w$w"
    for i in $(seq 1 25); do
      head -c $((i * 4099)) /etc/services > "$1/w$w/f$i.tmp" && mv "$1/w$w/f$i.tmp" "$1/w$w/f$i"
      [ $((i % 5)) = 0 ] && rm "$1/w$w/f$((i - 1))"
      cp "$1/w$w/f$i" "$1/w$w/c$i" && cmp -s "$1/w$w/f$i" "$1/w$w/c$i" || echo "mismatch w$w $i"
    done ) &
done
"$2" -c "
import os, sys, multiprocessing as mp
def work(k):
    d = sys.argv[1] + \"/py%d\" % k
    os.makedirs(d, exist_ok=True)
    for i in range(30):
        p = \"%s/o%d\" % (d, i)
        with open(p, \"wb\") as f: f.write(bytes([k, i]) * (1000 + i))
        if open(p, \"rb\").read() != bytes([k, i]) * (1000 + i): print(\"bad\", k, i)
with mp.Pool(3) as pool: pool.map(work, range(3))
" "$1"
wait' _ "$MP" "$PY" >"$OUT" 2>&1
n=$(shim "$CDEV" find "$MP" -type f | wc -l)
if [ ! -s "$OUT" ] && [ "$n" = $((4 * (25 - 5 + 25) + 90)) ]; then
    pass "4 shells (head, mv, rm, cp, cmp) and 3 python processes at once: every object there ($n), every one intact"
else echo "objects: $n (want $((4 * 45 + 90)))" >>"$OUT"; fail "several processes at once" "$OUT"; fi
check_clean "$CDEV" "after several processes at once"

# --- 7b. two processes taking turns, each with its cache of metadata blocks (interleave.sh)
# shellcheck source=interleave.sh
. "$TOP/tests/block/interleave.sh"

# --- 8. writers killed with SIGKILL -----------------------------------------------------------------
cat >"$W/killer.py" <<'EOF'
import os, sys
d, log = sys.argv[1], sys.argv[2]
os.makedirs(d, exist_ok=True)
i = 0
with open(log, "a") as lg:
    while True:
        i += 1
        name = "%s/o%d-%d" % (d, os.getpid(), i)
        data = (b"%d:%d;" % (os.getpid(), i)) * (1 + (i * 7919) % 20000)
        with open(name + ".tmp", "wb") as f:
            f.write(data)
        os.rename(name + ".tmp", name)
        if i % 3 == 0: os.unlink("%s/o%d-%d" % (d, os.getpid(), i - 1))
        lg.write("%s %d %d\n" % (name, len(data), i % 3 == 2)); lg.flush()
EOF
bad=0
: >"$W/kill.log"
for round in $(seq 1 "$KILLS"); do
    # no timeout wrapper: $! must be the writer itself (env execs it)
    env S3SHIM_MOUNTS="$MP=block://$CDEV" LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" "$PY" "$W/killer.py" "$MP/kill" \
        "$W/kill.log" >/dev/null 2>&1 &
    pid=$!
    KPID=$pid
    # every other round kills only after the writer's first rename (a loaded machine can
    # take longer than the random sleep to start python: no round would commit anything)
    if [ $((round % 2)) = 0 ]; then
        n0=$(wc -l <"$W/kill.log")
        for _ in $(seq 100); do
            [ "$(wc -l <"$W/kill.log")" -gt "$n0" ] && break
            kill -0 "$pid" 2>/dev/null || break # ended (a full device: ENOSPC)
            sleep 0.1
        done
    fi
    sleep "0.$((RANDOM % 3))$((RANDOM % 10))"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if ! "$TOOL" blk check "$CDEV" >"$W/kcheck" 2>&1; then bad=$((bad + 1)); cat "$W/kcheck" >>"$OUT"; fi
done
# every rename that completed (logged) and was not deleted after: whole, the right bytes
verify=$(shim "$CDEV" "$PY" -c '
import os, sys
ok = bad = 0
for line in open(sys.argv[1]):
    name, n, deleted_later = line.split()
    pid, i = name.rsplit("/o", 1)[1].split("-")
    if int(i) % 3 == 2: continue          # deleted by the next round
    try: data = open(name, "rb").read()
    except FileNotFoundError:
        continue                           # killed between the rename and the next unlink: fine
    want = (b"%s:%s;" % (pid.encode(), i.encode())) * (1 + (int(i) * 7919) % 20000)
    if data == want: ok += 1
    else: bad += 1
print(ok, bad)' "$W/kill.log" 2>&1)
# (with a handful of rounds every kill may come before the first commit: no object to see)
if [ $bad = 0 ] && [ "${verify#* }" = 0 ] && { [ "${verify% *}" -gt 0 ] || [ "$KILLS" -lt 20 ]; }; then
    pass "$KILLS writers killed with SIGKILL at random moments: check clean after each, $((${verify% *})) committed objects intact, none mixed"
else echo "check failures: $bad; verify: $verify" >>"$OUT"; fail "SIGKILL rounds" "$OUT"; fi

# --- 9. power-loss simulation ------------------------------------------------------------------
# Eight workloads (create, overwrite, append, rename-over, unlink, many small, two writers,
# rewrite to full), every write and flush recorded; at BLOCK_TEST_STATES cut points each
# (1500: 12,000 states)
# the device is rebuilt with the unflushed writes dropped, reordered or torn, then checked.
STATES=${BLOCK_TEST_STATES:-1500}
if timeout -k 5 900 env "${SAN_ENV[@]}" "$TOOL" blk crashtest --states "$STATES" "$W/crash.img" >"$OUT" 2>&1 &&
    grep -q "crash states tried, 0 inconsistent" "$OUT"; then
    pass "power-loss simulation: $(tail -1 "$OUT" | sed 's/^crashtest: //') ($(grep -c "crash states," "$OUT") workloads)"
else fail "power-loss simulation (s3shim blk crashtest)" "$OUT"; fi
rm -f "$W/crash.img"

finish
