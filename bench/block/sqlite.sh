#!/usr/bin/env bash
# bench/block/sqlite.sh - sqlite3 on block:// against ext4, same device size, one run each
# (ext4 and block:// alternating per case): commits per second of one process inserting
# one row per transaction (rollback journal and WAL, synchronous=NORMAL), and of a WAL
# database written by one process (synchronous NORMAL, then FULL) while READERS (2) other
# processes query it whole again and again (the case block:// refused before its O_RDWR descriptors became
# coherent between processes), plus the readers' queries per second. With BEFORE (a
# build directory of another version) every block:// case runs with it too.
#
#   BUILD=build bench/block/sqlite.sh            (make bench-block-sqlite)
#   TX=3000 READERS=2 SIZE_MB=1024 BEFORE=DIR bench/block/sqlite.sh
set -u
export LC_ALL=C
# shellcheck source=../../tests/preamble.sh
. "$(dirname "$0")/../../tests/preamble.sh" # TOP, BUILD, LIB, TOOL
TX=${TX:-3000}
READERS=${READERS:-2}
SIZE_MB=${SIZE_MB:-1024}
BEFORE=${BEFORE:-}
# shellcheck source=devices.sh
. "$(dirname "$0")/devices.sh" sqlite # the checks, PY, W, LOOPS, newdev, the cleanup
# writer.py DB N GO SYNC [JOURNAL]: N transactions of one row from time GO on, commits per
# second; with JOURNAL, the table made first in that journal mode (else it is there).
cat >"$W/writer.py" <<'EOF'
import os, sqlite3, sys, time
db, n, go, sync = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
c = sqlite3.connect(db, timeout=60)
if len(sys.argv) > 5:
    c.execute("pragma journal_mode=" + sys.argv[5]); c.execute("create table t (i, pad)"); c.commit()
c.execute("pragma synchronous=" + sync)
while time.time() < go: time.sleep(0.001)
t = time.time()
for i in range(n):
    c.execute("insert into t values (?, ?)", (i, os.urandom(200))); c.commit()
print(int(n / (time.time() - t)))
EOF
cat >"$W/reader.py" <<'EOF'
import sqlite3, sys, time
db, n, go = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = sqlite3.connect(db, timeout=60)
while time.time() < go: time.sleep(0.001)
t, q = time.time(), 0
while c.execute("select count(*), sum(length(pad)) from t").fetchone()[0] < n: q += 1
print(int(q / (time.time() - t)))
EOF
# shared DIR RUN MODE [TAG]: "writer commits/s, readers' queries/s" with READERS readers
shared() {
    local db=$1/wal$3${4:-}.db go pids=() r q=0
    $2 "$PY" -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("pragma journal_mode=wal"); c.execute("create table t (i, pad)"); c.commit()' "$db" || return 1
    go=$("$PY" -c 'import time; print(time.time() + 0.5)')
    for r in $(seq 1 "$READERS"); do
        $2 "$PY" "$W/reader.py" "$db" "$TX" "$go" >"$W/r$r" &
        pids+=($!)
    done
    w=$($2 "$PY" "$W/writer.py" "$db" "$TX" "$go" "$3")
    wait "${pids[@]}"
    for r in $(seq 1 "$READERS"); do q=$((q + $(cat "$W/r$r"))); done
    echo "$w $q"
}
E4=$(newdev ext4) && LOOPS+=("$E4") && mkfs.ext4 -q -F "$E4" && mkdir -p "$W/m4" && mount "$E4" "$W/m4" || exit 1
BK=$(newdev blk) && LOOPS+=("$BK") && "$TOOL" blk format --force "$BK" >/dev/null || exit 1
ours() { env S3SHIM_MOUNTS=/blk=block://$BK LD_PRELOAD=$LIB "$@"; }
theirs() { "$@"; }
before() { env S3SHIM_MOUNTS=/blk=block://$BK LD_PRELOAD=$BEFORE/libs3shim.so "$@"; }
echo "sqlite3, $TX transactions of one row, synchronous=NORMAL; ext4 and block:// on loop devices of $SIZE_MB MiB"
printf '%-44s %10s %10s %7s\n' case ext4 block:// ratio
for mode in delete wal; do
    a=$("$PY" "$W/writer.py" "$W/m4/one-$mode.db" "$TX" 0 NORMAL "$mode")
    b=$(ours "$PY" "$W/writer.py" "/blk/one-$mode.db" "$TX" 0 NORMAL "$mode")
    printf '%-44s %10s %10s %7s\n' "one process, journal_mode=$mode (commits/s)" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')"
    if [ -n "$BEFORE" ]; then
        c=$(before "$PY" "$W/writer.py" "/blk/before-$mode.db" "$TX" 0 NORMAL "$mode")
        printf '%-44s %10s %10s %7s\n' "  the same, BEFORE's build on block://" "" "$c" "$(awk -v a="$c" -v b="$b" 'BEGIN { printf "%.2f (ours/before)", b / a }')"
    fi
done
for mode in NORMAL FULL; do
    read -r aw aq <<<"$(shared "$W/m4" theirs $mode)"
    read -r bw bq <<<"$(shared /blk ours $mode)"
    printf '%-44s %10s %10s %7s\n' "WAL $mode, 1 writer + $READERS readers: commits/s" "$aw" "$bw" "$(awk -v a="$aw" -v b="$bw" 'BEGIN { printf "%.2f", b / a }')"
    printf '%-44s %10s %10s %7s\n' "  readers' whole-table queries/s (sum)" "$aq" "$bq" "$(awk -v a="$aq" -v b="$bq" 'BEGIN { printf "%.2f", b / a }')"
    if [ -n "$BEFORE" ]; then
        read -r cw cq <<<"$(shared /blk before $mode -before)"
        printf '%-44s %10s %10s %7s\n' "  BEFORE's build on block://: commits/s" "" "$cw" "$(awk -v a="$cw" -v b="$bw" 'BEGIN { printf "%.2f (ours/before)", b / a }')"
        printf '%-44s %10s %10s %7s\n' "  BEFORE's build: readers' queries/s" "" "$cq" "$(awk -v a="$cq" -v b="$bq" 'BEGIN { printf "%.2f (ours/before)", b / a }')"
    fi
done
"$TOOL" blk check "$BK" | tail -1
