#!/usr/bin/env bash
# tests/block/run.sh - block:// (an object store on a raw block device) with real programs:
# `s3shim blk format` refusing devices that hold something, mounting a device that is not
# a store, odd-size writes and byte-for-byte random reads, O_RDWR/append/truncate
# (copy-on-write) against a plain directory, the namespace (mkdir, mv over a file, mv of a
# directory, rm -r, rmdir) against a plain directory, `blk check` after all of it, a flipped
# bit in every kind of metadata block caught by check, a full device (ENOSPC at the call,
# nothing half-visible), names over the limit, several processes at once, and writers
# killed with SIGKILL, the power-loss simulation (s3shim blk crashtest, 10,500 states),
# group commit (visible at close, durable at exit, fsync, after the interval, next mount),
# locks (fcntl, OFD, flock; sqlite3, two at once), writers shared across fork and exec,
# and the files in /dev/shm going with the last process using the store.
#
#   BUILD=build SAN= tests/block/run.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/run.sh (ASan+UBSan)
#
# Needs root and losetup for the loop devices (made on files under $TMPDIR or /var/tmp,
# detached on exit); without them the store lives in a plain file and the device-only
# checks print "ok - ... # skip". Output: "ok"/"not ok" lines, then "N passed, M failed".
set -u
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$HERE/../preamble.sh"
DIO_CMP=$BUILD/tests/dio_cmp
PREADS=$BUILD/tests/preads
TMO=120
KILLS=${BLOCK_TEST_KILLS:-200}

# shellcheck source=../variant.sh
. "$TOP/tests/variant.sh" "s3shim block:// tests"
# shellcheck source=../report.sh
. "$TOP/tests/report.sh"

W=$(mktemp -d "${TMPDIR:-/var/tmp}/s3shim-block.XXXXXX")
# shellcheck source=../loopdev.sh
. "$TOP/tests/loopdev.sh"
KPID=""
trap 'release_devices; rm -rf $W' EXIT
trap 'exit 130' INT TERM

MP=/s3shim-block-$$
shim() { # shim DEV CMD... : CMD under the shim with $MP mounted on DEV
    local dev=$1
    shift
    timeout -k 5 "$TMO" env S3SHIM_MOUNTS="$MP=block://$dev" LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" "$@"
}
OUT=$W/out.txt

[ "$(stat -f -c %T "$W")" = tmpfs ] && bail "$W must be on a filesystem that does O_DIRECT (set TMPDIR)"

# new_dev SIZE_MIB [SECTOR]: a loop device (or a plain file without loop devices) in $dev.
new_dev() {
    if [ $have_loop = 1 ]; then
        new_loop "$@"
    else
        dev=$W/img.$RANDOM.$1
        truncate -s "$1M" "$dev" || dev=""
    fi
    [ -n "$dev" ]
}
check_clean() { # check_clean DEV LABEL
    if "$TOOL" blk check "$1" >"$OUT" 2>&1; then pass "$2: s3shim blk check finds the store clean ($(tail -1 "$OUT" | cut -d: -f2- | cut -c1-90))"
    else fail "$2: s3shim blk check finds the store clean" "$OUT"; fi
}

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

# Blocks kept across commits (blk_cache.c): two processes (a fork, so both start with the
# same kept blocks) take turns; in each turn one of them makes 1 to 4 commits (rewrites of
# other sizes, deletes, new keys), so the root moves by one or more under the other,
# which then reads all 300 keys and must see exactly the other's last commit.
r=$(shim "$FD" "$PY" -c '
import os, sys
d = sys.argv[1] + "/kept"
os.makedirs(d)
model = {}
for i in range(300):
    model["k%04d" % i] = "0" * (i % 7)
    with open(d + "/k%04d" % i, "w") as f: f.write(model["k%04d" % i])
p2c, c2p = os.pipe(), os.pipe()
child = os.fork()
me, rd, wr = (1, p2c[0], c2p[1]) if child == 0 else (0, c2p[0], p2c[1])
bad = 0
for rnd in range(40):
    if rnd % 2 == me:
        msg = []
        for j in range(rnd % 4 + 1):
            k = "k%04d" % ((rnd * 37 + j * 11) % 320)
            if k in model and (rnd + j) % 5 == 0:
                os.unlink(d + "/" + k); del model[k]; msg.append(k + "=")
            else:
                model[k] = "%d.%d" % (rnd, j) * (1 + (rnd + j) % 300)
                with open(d + "/" + k, "w") as f: f.write(model[k])
                msg.append(k + "=" + model[k])
        b = "\n".join(msg).encode() + b"\0"
        os.write(wr, b)
    else:
        b = b""
        while not b.endswith(b"\0"): b += os.read(rd, 1 << 20)
        for kv in b[:-1].decode().split("\n"):
            k, v = kv.split("=", 1)
            if v: model[k] = v
            else: model.pop(k, None)
        got = {}
        for k in sorted(os.listdir(d)):
            with open(d + "/" + k) as f: got[k] = f.read()
        bad += got != model
if child == 0:
    os._exit(bad)
_, st = os.waitpid(child, 0)
print("bad turns:", bad, os.waitstatus_to_exitcode(st))
' "$MP" 2>&1)
if [ "$r" = "bad turns: 0 0" ]; then pass "two processes taking turns at 1-4 commits each: each sees exactly the other's last commit in all 300 keys, 40 turns"
else echo "$r" >"$OUT"; fail "two processes taking turns at commits see each other's last commit" "$OUT"; fi
check_clean "$FD" "after the turns of two processes"

finish
