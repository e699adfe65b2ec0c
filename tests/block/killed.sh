#!/usr/bin/env bash
# tests/block/killed.sh - a group-commit writer of small files SIGKILLed again and again
# before its durable step (S3SHIM_BLOCK_COMMIT_MS, 1 s): each new writer finds the
# published root young and runs no durable step, so every commit builds on a base that
# is only visible and holds what it frees. That used to fill the metadata zone with
# pending-free list blocks within a few dozen kills, after which no commit could be made
# at all. Now a commit made when a quarter of the zone is left is durable (blk_txn.c):
# BLOCK_KILLS (100: the zone used to fill within a few dozen) kills, `blk df`'s metadata use bounded after every tenth, every
# writer's commits working to the end, blk check clean.
#
#   BUILD=build SAN= tests/block/killed.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/killed.sh (ASan+UBSan)
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" killed "s3shim block:// group-commit writers SIGKILLed before their flush"

cat >"$W/w.py" <<'EOF'
import os, sys
mp = sys.argv[1]; i = 0
os.makedirs(mp + "/d", exist_ok=True)
print("up", flush=True)
while True:
    with open("%s/d/f%d" % (mp, i % 500), "w") as f: f.write("x" * (100 + i % 300))
    i += 1
EOF
KILLS=${BLOCK_KILLS:-100}
if [ "$have_loop" = 1 ]; then new_dev 256 && DEV=$dev; else DEV=$W/store.img && truncate -s 256M "$DEV"; fi
[ -n "$DEV" ] || bail "no device"
"$TOOL" blk format "$DEV" >"$OUT" 2>&1 || bail "format the store" "$OUT"
zone=$("$TOOL" blk df "$DEV" | sed -n 's/^metadata *[0-9]* of \([0-9]*\) blocks.*/\1/p')
max=0 errs=0 kills=0
for n in $(seq 1 "$KILLS"); do
    # (env execs python: $! is the writer itself); killed once it is writing
    env S3SHIM_BLOCK_COMMIT_MS=1000 S3SHIM_MOUNTS="$MP=block://$DEV" LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" \
        "$PY" "$W/w.py" "$MP" >"$W/up" 2>>"$W/err" &
    p=$!
    for _ in $(seq 1 200); do [ -s "$W/up" ] && break; sleep 0.02; done
    sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
    kill -9 "$p" 2>/dev/null && kills=$((kills + 1))
    wait "$p" 2>/dev/null
    if [ $((n % 10)) = 0 ] || [ "$n" = "$KILLS" ]; then
        used=$("$TOOL" blk df "$DEV" | sed -n 's/^metadata *\([0-9]*\) of.*/\1/p')
        [ "${used:-0}" -gt "$max" ] && max=$used
    fi
done
grep -q "No space left\|zone is full" "$W/err" && errs=1
df_line="$kills kills, metadata use at most $max of $zone blocks"
if [ "$kills" -ge "$KILLS" ] && [ "$errs" = 0 ] && [ -n "$zone" ] && [ "$max" -le $((zone * 85 / 100)) ]; then
    pass "group-commit writers SIGKILLed before their flush: every commit works, blk df's metadata use stays at most 85% of the zone ($df_line)"
else
    cp "$W/err" "$OUT"
    fail "group-commit writers SIGKILLed before their flush: every commit works, blk df's metadata use stays at most 85% of the zone ($df_line)" "$OUT"
fi
check_clean "$DEV" "after $kills kills"
# and a new process still commits and sees it
shim "$DEV" sh -c 'echo last >"$1/d/last" && cat "$1/d/last"' _ "$MP" >"$OUT" 2>&1
check "a new process commits after the kills" grep -qx last "$OUT"
finish
