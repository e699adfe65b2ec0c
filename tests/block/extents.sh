#!/usr/bin/env bash
# tests/block/extents.sh - block:// objects rewritten at random: every copy-on-write
# overwrite splits an extent, and a leaf item holds at most 32 (docs/block-format.md,
# "Limits"); past that the commit merges the neighbouring extents that span the fewest
# blocks into one new run. Real programs, results compared with the same programs on a
# plain directory: sqlite3 updating random rows in 300 transactions, dd patching 4 KiB at
# 300 random offsets of a 64 MiB object (one process per patch, so one commit each), and
# python patching a sparse object with holes; then the extent counts (s3shim blk ls) and
# `blk check`. A device too full to hold a merged run keeps the previous version and
# says why (ENOSPC), as before.
#
#   BUILD=build SAN= tests/block/extents.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/extents.sh (ASan+UBSan)
TMO=300
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" extents "s3shim block:// extent tests"
IMG=$W/store.img
export S3SHIM_BLOCK_COMMIT_MS=0 # every close durable at once
extents() { "$TOOL" blk ls "$IMG" "$1" | awk -v k="$1" '$NF == k { print $(NF - 1) }'; }
truncate -s 512M "$IMG" && "$TOOL" blk format "$IMG" >"$OUT" 2>&1 || bail "format the store" "$OUT"
mkdir -p "$W/local"

# --- 1. sqlite3: 20,000 rows, then 300 transactions updating 3 random rows each -------------
cat >"$W/sq.py" <<'EOF'
import random, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("create table t(id integer primary key, v blob)")
with db:
    for i in range(20000):
        db.execute("insert into t values(?, ?)", (i, b"x" * 200))
random.seed(7)
for k in range(300):
    with db:
        for j in range(3):
            db.execute("update t set v=? where id=?", (bytes([k % 256]) * 200, random.randrange(20000)))
db.close()
EOF
if shim "$IMG" python3 "$W/sq.py" "$MP/db.sqlite" 2>"$OUT" && python3 "$W/sq.py" "$W/local/db.sqlite" 2>>"$OUT"; then
    a=$(shim "$IMG" sqlite3 "$MP/db.sqlite" .dump | sha256sum) b=$(sqlite3 "$W/local/db.sqlite" .dump | sha256sum)
    n=$(extents db.sqlite)
    if [ "$a" = "$b" ] && [ -n "$n" ] && [ "$n" -le 32 ]; then
        pass "sqlite3, 300 transactions of random updates: .dump = local, $n extents"
    else fail "sqlite3, 300 transactions of random updates: .dump = local, at most 32 extents" "dump: $a / $b" "extents: $n"; fi
else fail "sqlite3, 300 transactions of random updates" "$OUT"; fi

# --- 2. dd: 4 KiB at 300 random offsets of a 64 MiB object, one commit each ---------------------
head -c $((64 << 20)) /dev/urandom >"$W/local/big" && head -c $((300 * 4096)) /dev/urandom >"$W/patches"
shim "$IMG" cp "$W/local/big" "$MP/big" 2>"$OUT" || fail "write the 64 MiB object" "$OUT"
python3 -c 'import random; random.seed(3); print("\n".join(str(random.randrange(16384)) for _ in range(300)))' >"$W/offs"
i=0 bad=0
while read -r off; do
    for dst in "$MP/big" "$W/local/big"; do
        shim "$IMG" dd if="$W/patches" of="$dst" bs=4096 skip=$i seek="$off" count=1 conv=notrunc status=none 2>>"$OUT" || bad=1
    done
    i=$((i + 1))
done <"$W/offs"
n=$(extents big)
if [ $bad = 0 ] && shim "$IMG" cmp "$W/local/big" "$MP/big" >>"$OUT" 2>&1 && [ -n "$n" ] && [ "$n" -le 32 ]; then
    pass "dd conv=notrunc, 4 KiB at 300 random offsets of 64 MiB (300 commits): = local, $n extents"
else fail "dd conv=notrunc at 300 random offsets: = local, at most 32 extents" "$OUT" "extents: $n"; fi

# --- 3. a sparse object: holes between the patched pieces read back as zeros ---------------------
cat >"$W/sparse.py" <<'EOF'
import os, random, sys
random.seed(11)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, 256 << 20)
os.close(fd)
for k in range(120):  # one commit each: a fresh open, a piece written at a random place, close
    fd = os.open(sys.argv[1], os.O_RDWR)
    os.pwrite(fd, bytes([k + 1]) * 8192, random.randrange(0, (256 << 20) - 8192, 512))
    os.close(fd)
EOF
if shim "$IMG" python3 "$W/sparse.py" "$MP/sparse" 2>"$OUT" && python3 "$W/sparse.py" "$W/local/sparse"; then
    n=$(extents sparse)
    if shim "$IMG" cmp "$W/local/sparse" "$MP/sparse" >>"$OUT" 2>&1 && [ -n "$n" ] && [ "$n" -le 32 ]; then
        pass "120 pieces written at random into a 256 MiB sparse object (120 commits): = local, holes zero, $n extents"
    else fail "pieces at random into a sparse object: = local, at most 32 extents" "$OUT" "extents: $n"; fi
else fail "pieces at random into a sparse object" "$OUT"; fi
check_clean "$IMG" "after the random rewrites"

# --- 4. too full to merge: ENOSPC at close, the previous version kept, the log says why -------------
IMG=$W/small.img
truncate -s 8M "$IMG" && "$TOOL" blk format "$IMG" >"$OUT" 2>&1 || bail "format a small store" "$OUT"
head -c $((3 << 20)) /dev/urandom >"$W/three"
shim "$IMG" cp "$W/three" "$MP/obj" 2>"$OUT" || fail "write a 3 MiB object into the 8 MiB store" "$OUT"
# a filler leaves about 1.6 MiB free; every other block of the object rewritten in one
# commit takes 1.5 MiB of it and makes 384 extents, and the merge then needs more room
# than is left
free=$("$TOOL" blk df "$IMG" | awk '$1 == "free" { print $2 }')
head -c $((free - (1600 << 10))) /dev/zero >"$W/filler"
shim "$IMG" cp "$W/filler" "$MP/fill" 2>"$OUT" || fail "fill the small store" "$OUT"
cat >"$W/frag.py" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
for b in range(0, 768, 2):
    os.pwrite(fd, b"\xee" * 4096, b * 4096)
try:
    os.close(fd)
    print("closed")
except OSError as e:
    print("close:", e.strerror)
EOF
r=$(shim "$IMG" python3 "$W/frag.py" "$MP/obj" 2>"$OUT")
if [ "$r" = "close: No space left on device" ] && grep -q "no room to merge" "$OUT" &&
    shim "$IMG" cmp "$W/three" "$MP/obj" >>"$OUT" 2>&1; then
    pass "too fragmented and too full to merge: close says ENOSPC, the log says why, the previous version reads back"
else fail "too fragmented and too full to merge: ENOSPC, the log says why, the previous version" "$r" "$OUT"; fi
check_clean "$IMG" "after ENOSPC on a full store"

finish
