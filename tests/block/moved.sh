#!/usr/bin/env bash
# tests/block/moved.sh - block:// objects open for writing in one process while another
# process renames, removes or replaces them: the writer's bytes follow the object as they
# would follow the inode on a disk. Renamed: the writes land under the new name (found by
# inode number at the commit); removed: they go nowhere, as an unlinked file's, and close
# still returns 0; replaced (mv over it): the new object stays. Each case is run on a plain
# directory too and the results compared; `blk check` is clean after all of it.
#
#   BUILD=build SAN= tests/block/moved.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/moved.sh (ASan+UBSan)
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" moved "s3shim block:// objects moved while open"
IMG=$W/store.img
truncate -s 128M "$IMG" && "$TOOL" blk format "$IMG" >"$OUT" 2>&1 || bail "format the store" "$OUT"
mkdir -p "$W/local"

# The writer: opens DIR/k (existing), writes, [fsyncs,] lets another process (a separate
# `sh -c` under the shim, so not this process) run ACTION on DIR, writes again, closes.
cat >"$W/writer.py" <<'EOF'
import os, subprocess, sys
d, action, sync = sys.argv[1], sys.argv[2], sys.argv[3] == "sync"
fd = os.open(d + "/k", os.O_WRONLY)
os.pwrite(fd, b"first:" * 1000, 0)
if sync:
    os.fsync(fd)
if action == "-":  # the test runs it in a process of its own: wait for its word
    print("ready", flush=True)
    sys.stdin.readline()
else:             # a child of this process (it shares the open file across the fork)
    subprocess.run(["sh", "-c", action, "_", d], check=True)
os.pwrite(fd, b"second" * 1000, 6000)
os.close(fd)
print("closed")
EOF
# run_case NAME ACTION SYNC [child]: the same on $MP and on a plain directory; then every
# name under both compared. ACTION runs in a process of its own, or with `child` in a
# child the writer forks (which shares the open file).
run_case() {
    local name=$1 action=$2 sync=$3 how=${4:-apart} d r
    for d in "$MP/$name" "$W/local/$name"; do
        shim "$IMG" sh -c 'mkdir -p "$1" && head -c 20000 /dev/zero | tr "\0" o >"$1/k"' _ "$d" 2>>"$OUT"
        if [ "$how" = child ]; then
            r=$(shim "$IMG" python3 "$W/writer.py" "$d" "$action" "$sync" 2>>"$OUT")
        else # an unrelated process does it, while the writer waits
            coproc WR { shim "$IMG" python3 "$W/writer.py" "$d" - "$sync" 2>>"$OUT"; }
            read -r r <&"${WR[0]}"
            shim "$IMG" sh -c "$action" _ "$d" 2>>"$OUT"
            echo go >&"${WR[1]}"
            read -r r <&"${WR[0]}"
            wait "$WR_PID"
        fi
        [ "$r" = closed ] || { echo "$d: writer said '$r'" >>"$OUT"; return 1; }
    done
    local a b
    local list='cd "$1" && for f in $(find "$2" "$2.d" -type f 2>/dev/null | sort); do echo "$f $(sha256sum <"$f")"; done'
    a=$(shim "$IMG" sh -c "$list" _ "$MP" "$name")
    b=$(sh -c "$list" _ "$W/local" "$name")
    echo "block: $a" >>"$OUT"
    echo "local: $b" >>"$OUT"
    [ -n "$a" ] && [ "$a" = "$b" ] || { shim "$IMG" sh -c "cd \"\$1\" && find \"\$2\" -type f -exec head -c 64 {} \\; -exec echo \\;" _ "$MP" "$name" >>"$OUT"; false; }
}

: >"$OUT"
if run_case renamed 'mv "$1/k" "$1/k2"' nosync; then pass "renamed by another process while open for writing: the writes land under the new name (= a plain directory)"
else fail "renamed by another process while open: the writes follow the new name" "$OUT"; fi
: >"$OUT"
if run_case renamed_sync 'mv "$1/k" "$1/k2"' sync; then pass "the same after an fsync (one commit under the old name first) = a plain directory"
else fail "renamed after an fsync: the writes follow the new name" "$OUT"; fi
: >"$OUT"
if run_case removed 'rm "$1/k" && touch "$1/other"' nosync; then pass "removed by another process while open for writing: close returns 0, the name stays gone (= a plain directory)"
else fail "removed by another process while open: nothing comes back" "$OUT"; fi
: >"$OUT"
if run_case replaced 'echo new >"$1/t" && mv "$1/t" "$1/k"' sync; then pass "replaced by another process (mv over it) while open for writing: the new object stays (= a plain directory)"
else fail "replaced by another process while open: the new object stays" "$OUT"; fi
: >"$OUT"
if run_case dir_renamed 'mkdir "$1/../dir_renamed.d" && mv "$1/k" "$1/../dir_renamed.d/k"' nosync; then
    pass "moved into another directory by another process while open: the writes follow it"
else fail "moved into another directory while open: the writes follow it" "$OUT"; fi
: >"$OUT"
if run_case renamed_child 'mv "$1/k" "$1/k2"' sync child && run_case replaced_child 'echo new >"$1/t" && mv "$1/t" "$1/k"' sync child; then
    pass "renamed, and replaced, by a child of the writer (sharing the open file): the same as a plain directory"
else fail "renamed or replaced by a child of the writer: the same as a plain directory" "$OUT"; fi
if "$TOOL" blk check "$IMG" >"$OUT" 2>&1; then pass "s3shim blk check finds the store clean (nothing leaked by the dropped writes)"
else fail "s3shim blk check finds the store clean" "$OUT"; fi

finish
