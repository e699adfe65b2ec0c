#!/usr/bin/env bash
# tests/block/engine.sh - block:// where io_uring is refused (a container's default
# seccomp profile, kernel.io_uring_disabled; tests/helpers/no_uring.c refuses it with
# EPERM as they do): the store's I/O goes to the pool of threads of core/uring.c, and
# every program sees the same bytes and the same store as with io_uring. Then valgrind
# (which cannot use io_uring either) runs programs on the store, and the store written
# through the pool is read back with io_uring.
#
#   BUILD=build SAN= tests/block/engine.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/engine.sh (ASan+UBSan; valgrind skipped)
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" engine "s3shim block:// without io_uring"
NOU=$BUILD/tests/no_uring
new_dev 256 || bail "a 256 MiB device"
"$TOOL" blk format "$dev" >"$OUT" 2>&1 || bail "format $dev" "$OUT"
mkdir -p "$W/src/a/b"
head -c $((5 << 20)) /dev/urandom >"$W/src/big"
for i in $(seq 1 200); do head -c $((i * 37)) /dev/urandom >"$W/src/a/f$i"; done
head -c 4097 /dev/urandom >"$W/src/a/b/odd"

# 1. writing and reading with io_uring refused
if S3SHIM_LOG=info S3SHIM_STATS=1 shim "$dev" "$NOU" cp -r "$W/src" "$MP/t" >"$OUT" 2>&1 &&
    grep -q "io_uring is not available (Operation not permitted" "$OUT"; then
    pass "io_uring refused: cp -r of 202 files (5 MiB, 200 small, one of 4097 bytes) succeeds and says it uses threads"
else fail "io_uring refused: cp -r into the store" "$OUT"; fi
if shim "$dev" "$NOU" diff -r "$W/src" "$MP/t" >"$OUT" 2>&1; then
    pass "io_uring refused: diff -r finds every file the same"
else fail "io_uring refused: diff -r" "$OUT"; fi
shim "$dev" "$NOU" python3 - "$MP/t/big" "$W/src/big" >"$OUT" 2>&1 <<'PY'
import os, random, sys
a = os.open(sys.argv[1], os.O_RDWR)
b = os.open(sys.argv[2], os.O_RDWR)
r = random.Random(5)
for _ in range(300):  # overwrites at odd offsets, read back on the same fd
    off, n = r.randrange(5 << 20), r.randrange(1, 70000)
    d = os.urandom(n)
    os.pwrite(a, d, off); os.pwrite(b, d, off)
    o2 = r.randrange(5 << 20)
    if os.pread(a, 9000, o2) != os.pread(b, 9000, o2):
        sys.exit("mismatch at %d" % o2)
os.fsync(a); os.close(a); os.close(b)
print("ok")
PY
if [ "$(cat "$OUT")" = ok ] && shim "$dev" "$NOU" cmp "$MP/t/big" "$W/src/big" >>"$OUT" 2>&1; then
    pass "io_uring refused: 300 overwrites at random offsets through O_RDWR, read back at once and after close"
else fail "io_uring refused: O_RDWR overwrites" "$OUT"; fi
if shim "$dev" diff -r "$W/src" "$MP/t" >"$OUT" 2>&1; then
    pass "what the pool of threads wrote reads back the same with io_uring"
else fail "io_uring reads what the threads wrote" "$OUT"; fi
check_clean "$dev" "after the writes without io_uring"

# 2. valgrind on programs using the store
if valgrind_usable "valgrind on programs using the store"; then
    TMO=300 shim "$dev" valgrind -q --error-exitcode=9 --trace-children=yes bash -c '
        cp "$2" "$1/vg" && cmp "$1/vg" "$2" && cat "$1/t/a/f7" "$1/t/a/b/odd" | cmp - <(cat "$3/a/f7" "$3/a/b/odd") &&
        mv "$1/vg" "$1/vg2" && rm "$1/vg2"' _ "$MP" "$W/src/big" "$W/src" >"$OUT" 2>&1
    rc=$?
    if [ $rc = 0 ]; then pass "valgrind --trace-children: cp, cmp, cat, mv, rm on the store: no error, no hang"
    else fail "valgrind on block:// programs: exit $rc (9: valgrind found errors, 124/137: hung)" "$OUT"; fi
    check_clean "$dev" "after the programs under valgrind"
fi
finish
