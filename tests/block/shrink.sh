#!/usr/bin/env bash
# tests/block/shrink.sh - deletes give the index back (tree nodes merged, docs/block-
# format.md "B+tree"): 20,000 objects made through the shim, 19,000 of them removed,
# (every 20th of each directory kept), then `blk df`'s metadata use must have dropped
# under a quarter of what it was (without merging: 472 -> 460 blocks), the index be
# shorter, the 1,000 left read back, and blk check be clean.
#
#   BUILD=build SAN= tests/block/shrink.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/shrink.sh (ASan+UBSan)
TMO=600
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" shrink "s3shim block:// deletes give index nodes back"

if [ "$have_loop" = 1 ]; then new_dev 512 && DEV=$dev; else DEV=$W/store.img && truncate -s 512M "$DEV"; fi
[ -n "$DEV" ] || bail "no device"
"$TOOL" blk format "$DEV" >"$OUT" 2>&1 || bail "format the store" "$OUT"
meta() { "$TOOL" blk df "$DEV" | sed -n 's/^metadata *\([0-9]*\) of.*/\1/p'; }
height() { "$TOOL" blk df "$DEV" | sed -n 's/^index height *\([0-9]*\).*/\1/p'; }
N=${SHRINK_OBJECTS:-20000}
shim "$DEV" "$PY" -c 'import os, sys
mp, n = sys.argv[1], int(sys.argv[2])
for d in range(40): os.mkdir("%s/d%02d" % (mp, d))
for i in range(n):
    with open("%s/d%02d/object-%06d" % (mp, i % 40, i), "w") as f: f.write("o%d" % i)' "$MP" "$N" >"$OUT" 2>&1 ||
    bail "make $N objects" "$OUT"
# (metadata measured once what the load freed is free: more commits, each durable)
S3SHIM_BLOCK_COMMIT_MS=0 shim "$DEV" sh -c 'touch "$1/x" && rm "$1/x" && touch "$1/x" && rm "$1/x"' _ "$MP" 2>>"$OUT"
m0=$(meta) h0=$(height)
shim "$DEV" "$PY" -c 'import os, sys
mp, n = sys.argv[1], int(sys.argv[2])
for j in range(n):
    i = j * 7919 % n  # scattered
    if (i // 40) % 20: os.unlink("%s/d%02d/object-%06d" % (mp, i % 40, i))' "$MP" "$N" >>"$OUT" 2>&1 ||
    bail "remove objects" "$OUT"
S3SHIM_BLOCK_COMMIT_MS=0 shim "$DEV" sh -c 'touch "$1/x" && rm "$1/x" && touch "$1/x" && rm "$1/x"' _ "$MP" 2>>"$OUT"
m1=$(meta) h1=$(height)
line="metadata blocks $m0 -> $m1, index height $h0 -> $h1"
if [ -n "$m0" ] && [ -n "$m1" ] && [ $((m1 * 4)) -lt "$m0" ] && [ "$h1" -lt "$h0" ]; then
    pass "$N objects, all but every 20th of each directory removed: blk df's metadata use drops under a quarter, the index shorter ($line)"
else
    fail "$N objects, all but every 20th of each directory removed: blk df's metadata use drops under a quarter, the index shorter ($line)" "$OUT"
fi
shim "$DEV" "$PY" -c 'import os, sys
mp, n = sys.argv[1], int(sys.argv[2])
bad = sum(1 for i in range(n) if (i // 40) % 20 == 0 and open("%s/d%02d/object-%06d" % (mp, i % 40, i)).read() != "o%d" % i)
left = sum(len(os.listdir("%s/d%02d" % (mp, d))) for d in range(40))
print(bad, left)' "$MP" "$N" >"$OUT" 2>&1
check "the objects left read back, and only they are listed" grep -qx "0 $((N / 20))" "$OUT"
check_clean "$DEV" "after the removals"
finish
