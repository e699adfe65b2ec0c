#!/usr/bin/env bash
# tests/block/discard.sh - block:// giving freed blocks back: S3SHIM_BLOCK_DISCARD=1 (as
# commits make freed space reusable) and `s3shim blk trim` (every free range at once), on
# an image file (punched holes) and on a loop device (BLKDISCARD, which the loop driver
# turns into holes in its backing file). What is measured is the space the image holds
# on disk (st_blocks); what must never happen is a discard of bytes still in use: the
# objects kept, and an object unlinked while a reader holds it open, read back byte for
# byte, and `blk check` clean after each step.
#
#   BUILD=build SAN= tests/block/discard.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/discard.sh (ASan+UBSan)
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" discard "s3shim block:// discard tests"
export S3SHIM_BLOCK_COMMIT_MS=0 # every close durable at once
mib_on_disk() { echo $(($(stat -c %b "$1") * 512 / 1048576)); } # MiB the file holds

head -c $((24 << 20)) /dev/urandom >"$W/a" && head -c $((24 << 20)) /dev/urandom >"$W/b" &&
    head -c $((24 << 20)) /dev/urandom >"$W/keep" || bail "make the source files"

# fill DEV DISCARD: three 24 MiB objects, then two of them removed and two more commits
# (freed in commit N, reusable once N+1 is durable); the image's MiB on disk before and
# after the removals in $before and $after.
fill() {
    local dev=$1 d=$2 img=${3:-$1}
    shim "$dev" S3SHIM_BLOCK_DISCARD="$d" cp "$W/a" "$W/b" "$W/keep" "$MP/" 2>"$OUT" ||
        { fail "discard=$d: write three objects" "$OUT"; return 1; }
    before=$(mib_on_disk "$img")
    shim "$dev" S3SHIM_BLOCK_DISCARD="$d" sh -c 'rm "$1/a" "$1/b" && touch "$1/t1" && touch "$1/t2" && touch "$1/t3"' \
        _ "$MP" 2>"$OUT" || { fail "discard=$d: remove two objects" "$OUT"; return 1; }
    after=$(mib_on_disk "$img")
}
kept_intact() { # kept_intact DEV LABEL
    if shim "$1" cmp "$W/keep" "$MP/keep" >"$OUT" 2>&1; then pass "$2: the kept object reads back byte for byte"
    else fail "$2: the kept object reads back byte for byte" "$OUT"; fi
}

# --- 1. an image file, S3SHIM_BLOCK_DISCARD=1: the freed 48 MiB leave the file ------------
img=$W/on.img
truncate -s 256M "$img" && "$TOOL" blk format "$img" >"$OUT" 2>&1 || bail "format an image file" "$OUT"
if fill "$img" 1; then
    if [ $((before - after)) -ge 44 ]; then
        pass "image file, S3SHIM_BLOCK_DISCARD=1: two 24 MiB objects removed, the file holds $((before - after)) MiB less ($before -> $after MiB)"
    else fail "image file, S3SHIM_BLOCK_DISCARD=1: the freed space leaves the file" "on disk: $before -> $after MiB"; fi
fi
kept_intact "$img" "image file, discard on"
check_clean "$img" "image file, discard on"

# --- 2. the same without the setting: nothing leaves; then blk trim gives it back -------------
img=$W/off.img
truncate -s 256M "$img" && "$TOOL" blk format "$img" >"$OUT" 2>&1 || bail "format an image file" "$OUT"
if fill "$img" 0; then
    if [ $((before - after)) -le 2 ]; then pass "image file, discard off (the default): the file keeps its blocks ($before -> $after MiB)"
    else fail "image file, discard off: the file keeps its blocks" "on disk: $before -> $after MiB"; fi
    if "$TOOL" blk trim "$img" >"$OUT" 2>&1 && grep -q "bytes discarded in" "$OUT" &&
        [ $((after - $(mib_on_disk "$img"))) -ge 44 ]; then
        pass "s3shim blk trim: $(cat "$OUT" | sed "s|$W/||"), the file holds $((after - $(mib_on_disk "$img"))) MiB less"
    else fail "s3shim blk trim gives the free space back" "$(cat "$OUT")" "on disk: $after -> $(mib_on_disk "$img") MiB"; fi
fi
kept_intact "$img" "after blk trim"
check_clean "$img" "after blk trim"
n0=$(mib_on_disk "$img")
if "$TOOL" blk trim "$img" >"$OUT" 2>&1 && [ "$(mib_on_disk "$img")" = "$n0" ]; then
    pass "s3shim blk trim twice: the second finds nothing more to give back ($(sed "s|$W/||" "$OUT"))"
else fail "s3shim blk trim twice" "$(cat "$OUT")"; fi
if "$TOOL" blk trim "$W/a" >"$OUT" 2>&1; then fail "s3shim blk trim refuses a file that is not a store" "$OUT"
elif grep -q "not a block:// store" "$OUT"; then pass "s3shim blk trim refuses a file that is not a store: $(sed "s|$W/||" "$OUT")"
else fail "s3shim blk trim refuses a file that is not a store, saying so" "$OUT"; fi

# --- 3. an object unlinked while a reader holds it open is never discarded under it ---------
img=$W/pin.img
truncate -s 256M "$img" && "$TOOL" blk format "$img" >"$OUT" 2>&1 || bail "format an image file" "$OUT"
shim "$img" cp "$W/a" "$MP/held" 2>"$OUT" || fail "write the held object" "$OUT"
cat >"$W/reader.py" <<'EOF'
import os, subprocess, sys
mp, src = sys.argv[1], sys.argv[2]
fd = os.open(mp + "/held", os.O_RDONLY)
first = os.read(fd, 4096)
# another process removes it and commits twice more, discarding what becomes reusable
subprocess.run(["sh", "-c", 'rm "$1/held" && touch "$1/x1" && touch "$1/x2" && touch "$1/x3"', "_", mp], check=True)
os.lseek(fd, 0, os.SEEK_SET)
got = b""
while True:
    b = os.read(fd, 1 << 20)
    if not b:
        break
    got += b
want = open(src, "rb").read()
print("same" if got == want and first == want[:4096] else "differ: %d of %d bytes" % (len(got), len(want)))
EOF
n0=$(mib_on_disk "$img")
r=$(shim "$img" S3SHIM_BLOCK_DISCARD=1 python3 "$W/reader.py" "$MP" "$W/a" 2>"$OUT")
if [ "$r" = same ]; then pass "discard on: an object removed by another process while open reads back byte for byte (its blocks held)"
else fail "discard on: an object removed while open reads back byte for byte" "$r" "$(cat "$OUT")"; fi
n1=$(mib_on_disk "$img")
if [ $((n0 - n1)) -ge 20 ]; then pass "discard on: once the reader closed it, its blocks are discarded ($n0 -> $n1 MiB)"
else fail "discard on: the held object's blocks are discarded when the reader closes it" "on disk: $n0 -> $n1 MiB"; fi
check_clean "$img" "after the held object"

# --- 4. a loop device: BLKDISCARD ----------------------------------------------------------
if [ $have_loop = 1 ] && new_loop 256 && [ -n "$dev" ]; then
    back=$(losetup -n -O BACK-FILE "$dev" | sed 's/ *$//')
    "$TOOL" blk format "$dev" >"$OUT" 2>&1 || fail "format a loop device" "$OUT"
    if [ "$(cat "/sys/block/$(basename "$dev")/queue/discard_max_bytes" 2>/dev/null)" = 0 ]; then
        skip "loop device, S3SHIM_BLOCK_DISCARD=1" "this kernel's loop device does not discard"
    elif fill "$dev" 1 "$back"; then
        if [ $((before - after)) -ge 44 ]; then
            pass "loop device, S3SHIM_BLOCK_DISCARD=1 (BLKDISCARD): its backing file holds $((before - after)) MiB less ($before -> $after MiB)"
        else fail "loop device, S3SHIM_BLOCK_DISCARD=1: the freed space is discarded" "backing file: $before -> $after MiB"; fi
        kept_intact "$dev" "loop device, discard on"
        check_clean "$dev" "loop device, discard on"
    fi
else
    skip "loop device, S3SHIM_BLOCK_DISCARD=1" "${why:-no loop device}"
fi

finish
