#!/usr/bin/env bash
# bench/block/append.sh - appending to one file on block:// against ext4, same device size,
# one run each: a log written one line per open (python `open(p, "a")`, write, close;
# bash `echo ... >> log`), and PROCS processes appending at once (python, one open each,
# a line per write): microseconds per append, appends per second, and whether every line
# is there (on a disk it always is; block:// kept the last committer's lines only before
# its writers in several processes took the key's write lock). With BEFORE (a build
# directory of another version) the block:// cases run with it too.
#
#   BUILD=build bench/block/append.sh            (make bench-block-append)
#   N=3000 PROCS=4 SIZE_MB=256 BEFORE=DIR bench/block/append.sh
set -u
export LC_ALL=C
# shellcheck source=../../tests/preamble.sh
. "$(dirname "$0")/../../tests/preamble.sh" # TOP, BUILD, LIB, TOOL
N=${N:-3000}
PROCS=${PROCS:-4}
SIZE_MB=${SIZE_MB:-256}
BEFORE=${BEFORE:-}
# shellcheck source=devices.sh
. "$(dirname "$0")/devices.sh" append # the checks, PY, W, LOOPS, newdev, the cleanup
# one.py LOG N: N appends, one open each; microseconds per append
cat >"$W/one.py" <<'EOF'
import sys, time
p, n = sys.argv[1], int(sys.argv[2])
t = time.perf_counter()
for i in range(n):
    with open(p, "a") as f: f.write("line %d\n" % i)
print("%.1f" % ((time.perf_counter() - t) / n * 1e6))
EOF
# many.py LOG N PROCS: PROCS processes, N appends each through one O_APPEND descriptor,
# started together; "appends/s lines-kept"
cat >"$W/many.py" <<'EOF'
import os, subprocess, sys, time
p, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if k < 0:
    go = float(sys.argv[4]); fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    while time.time() < go: time.sleep(0.001)
    for i in range(n): os.write(fd, b"%d %d\n" % (-k, i))
    sys.exit(0)
go = time.time() + 0.3
ps = [subprocess.Popen([sys.executable, __file__, p, str(n), str(-w - 1), str(go)]) for w in range(k)]
for q in ps: q.wait()
dt = time.time() - go
lines = set(open(p, "rb").read().splitlines())
print(int(n * k / dt), len(lines))
EOF
cat >"$W/bash.sh" <<'EOF'
s=$(date +%s%N); for i in $(seq 1 "$2"); do echo "line $i" >> "$1"; done; e=$(date +%s%N)
echo $(( (e - s) / 1000 / $2 ))
EOF
E4=$(newdev ext4) && LOOPS+=("$E4") && mkfs.ext4 -q -F "$E4" && mkdir -p "$W/m4" && mount "$E4" "$W/m4" || exit 1
BK=$(newdev blk) && LOOPS+=("$BK") && "$TOOL" blk format --force "$BK" >/dev/null || exit 1
ours() { env S3SHIM_MOUNTS=/blk=block://$BK LD_PRELOAD=$LIB "$@"; }
before() { env S3SHIM_MOUNTS=/blk=block://$BK LD_PRELOAD=$BEFORE/libs3shim.so "$@"; }
row() { printf '%-52s %10s %10s %7s\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" -v inv="$4" 'BEGIN { printf "%.2f", inv ? a / b : b / a }')"; }
echo "appending to one file; ext4 and block:// on loop devices of $SIZE_MB MiB; N=$N, PROCS=$PROCS"
printf '%-52s %10s %10s %7s\n' case ext4 block:// ratio
a=$("$PY" "$W/one.py" "$W/m4/one.log" "$N")
b=$(ours "$PY" "$W/one.py" /blk/one.log "$N")
row "python open(a)-write-close: us per append" "$a" "$b" 1
[ -z "$BEFORE" ] || row "  BEFORE's build on block:// (ratio: the speed-up)" "$(before "$PY" "$W/one.py" /blk/one-before.log "$N")" "$b" 1
a=$(bash "$W/bash.sh" "$W/m4/sh.log" "$N")
b=$(ours bash "$W/bash.sh" /blk/sh.log "$N")
row "bash echo >> log: us per append" "$a" "$b" 1
[ -z "$BEFORE" ] || row "  BEFORE's build on block:// (ratio: the speed-up)" "$(before bash "$W/bash.sh" /blk/sh-before.log "$N")" "$b" 1
read -r ar al <<<"$("$PY" "$W/many.py" "$W/m4/many.log" "$N" "$PROCS")"
read -r br bl <<<"$(ours "$PY" "$W/many.py" /blk/many.log "$N" "$PROCS")"
row "$PROCS processes appending at once: appends/s" "$ar" "$br" 0
printf '%-52s %10s %10s\n' "  lines kept (of $((N * PROCS)))" "$al" "$bl"
if [ -n "$BEFORE" ]; then
    read -r cr cl <<<"$(before "$PY" "$W/many.py" /blk/many-before.log "$N" "$PROCS")"
    printf '%-52s %10s %10s\n' "  BEFORE's build: appends/s, lines kept" "$cr" "$cl"
fi
"$TOOL" blk check "$BK" | tail -1
