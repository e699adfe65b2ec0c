#!/usr/bin/env bash
# bench/block/shared_fd.sh - 4 KiB random preads from N threads on ONE read-only
# descriptor of a block:// object (a 1 GiB object in a store on an image file under
# /var/tmp), against the same with BEFORE=<another libs3shim.so>: reads per second, arms
# alternated, ROUNDS rounds, for 1 and N threads.
#
#   BEFORE=/path/old/libs3shim.so [THREADS=8] [ROUNDS=3] [SECS=1.5] bench/block/shared_fd.sh
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
LIB=${LIB:-$TOP/build/libs3shim.so}
TOOL=${TOOL:-$TOP/build/s3shim}
THREADS=${THREADS:-8} ROUNDS=${ROUNDS:-3} SECS=${SECS:-1.5}
W=$(mktemp -d "${TMPDIR:-/var/tmp}/s3shim-sharedfd.XXXXXX")
trap 'rm -rf "$W"' EXIT
truncate -s 1200M "$W/store.img"
"$TOOL" blk format "$W/store.img" >/dev/null
head -c 1G /dev/urandom >"$W/src"
S3SHIM_MOUNTS="/b=block://$W/store.img" LD_PRELOAD=$LIB cp "$W/src" /b/obj
rm -f "$W/src"
cat >"$W/thr.py" <<'PY'
import os, random, sys, threading, time
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
n, secs = int(sys.argv[2]), float(sys.argv[3])
cnt = [0] * n
def run(i):
    r, c, end = random.Random(i), 0, time.time() + secs
    while time.time() < end:
        os.pread(fd, 4096, r.randrange(size // 4096) * 4096)
        c += 1
    cnt[i] = c
th = [threading.Thread(target=run, args=(i,)) for i in range(n)]
for t in th: t.start()
for t in th: t.join()
print(int(sum(cnt) / secs))
PY
echo "# $(date -u '+%F %H:%M') UTC, load $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS rounds of $SECS s"
printf '%-8s %8s %10s\n' arm threads "reads/s"
for r in $(seq "$ROUNDS"); do
    for arm in ${BEFORE:+before} ours; do
        lib=$LIB; [ $arm = before ] && lib=$BEFORE
        for n in 1 "$THREADS"; do
            printf '%-8s %8s %10s\n' $arm "$n" \
                "$(S3SHIM_MOUNTS="/b=block://$W/store.img" LD_PRELOAD=$lib python3 "$W/thr.py" /b/obj "$n" "$SECS")"
        done
    done
done
