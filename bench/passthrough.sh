#!/usr/bin/env bash
# passthrough.sh - what LD_PRELOAD=libs3shim.so adds to calls on foreign fds and paths.
#
# Runs $BUILD/bench/passthrough alternately without and with the shim (ROUNDS times
# each, order swapped every round), takes for each test the best (lowest) of the
# per-round medians, and prints a table. Then counts user-space instructions with
# callgrind for a fixed number of calls, which is free of timing noise:
# added instructions per call = (Ir with shim - Ir without) / calls.
#
# The shim is fully active in the "with shim" runs: S3SHIM_MOUNTS maps /benchmnt to a
# file:// directory and the program keeps one shim descriptor open (/benchmnt/f), so
# that the descriptor table is not empty. Every measured call is on a real /tmp file,
# /dev/zero or fd -1, i.e. foreign to the shim.
#
# Environment: BUILD (default build), ROUNDS (7), SECS per test per run (0.3),
# CALLS for callgrind (20000), CPU to pin to (default: the last one; "none" to not pin).
set -u

BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-7}
SECS=${SECS:-0.3}
CALLS=${CALLS:-20000}
BIN=$BUILD/bench/passthrough
LIB=$(cd "$BUILD" && pwd)/libs3shim.so

for f in "$BIN" "$LIB"; do
    [ -e "$f" ] || { echo "passthrough.sh: $f is missing (run: make bench-passthrough)" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/s3shim_bench_XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/real" "$tmp/backing"
printf 'shim-side file\n' >"$tmp/backing/f"
export S3SHIM_MOUNTS="/benchmnt=file://$tmp/backing"
unset S3SHIM_STATS S3SHIM_STATS_FILE S3SHIM_LOG_FILE

PIN=()
CPU=${CPU:-$(($(nproc) - 1))}
if [ "$CPU" != none ] && command -v taskset >/dev/null; then PIN=(taskset -c "$CPU"); fi

run_plain() { "${PIN[@]}" "$BIN" -t "$SECS" -s /benchmnt/f "$tmp/real"; }
run_shim() { LD_PRELOAD="$LIB" "${PIN[@]}" "$BIN" -t "$SECS" -s /benchmnt/f "$tmp/real"; }

echo "# pass-through benchmark: $ROUNDS rounds x {no shim, shim}, ${SECS}s per test per run${PIN:+, pinned to CPU $CPU}"
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Sanity: under the shim the program must get a shim descriptor for /benchmnt/f.
probe=$(LD_PRELOAD="$LIB" "$BIN" -n 1 -o read_ebadf -s /benchmnt/f "$tmp/real") || { echo "passthrough.sh: probe run failed" >&2; exit 1; }
case $probe in
*"shim_fd=-1"*) echo "passthrough.sh: the shim did not serve /benchmnt/f; is it active?" >&2; exit 1 ;;
esac

res=$tmp/results
: >"$res"
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order="plain shim"; else order="shim plain"; fi
    for v in $order; do
        out=$(run_$v) || { echo "passthrough.sh: run ($v) failed" >&2; echo "$out" >&2; exit 1; }
        echo "$out" | awk -v v="$v" -v r="$r" '!/^#/ { for (i = 2; i <= NF; i++) { split($i, a, "="); f[a[1]] = a[2] }
            print v, r, $1, f["ns_per_call"], f["pair_delta"] }' >>"$res"
    done
    printf '.' >&2
done
echo >&2

echo
printf '%-16s %12s %12s %10s %8s %18s\n' test "no shim ns" "shim ns" "delta ns" ratio "spread (no/shim)"
awk '
{ v = $1; t = $3; x = $4 + 0
  if (!(t in seen)) { seen[t] = 1; order[++n] = t }
  k = v SUBSEP t
  if (!(k in lo) || x < lo[k]) lo[k] = x
  if (!(k in hi) || x > hi[k]) hi[k] = x }
END {
  for (i = 1; i <= n; i++) {
    t = order[i]; a = lo["plain", t]; b = lo["shim", t]
    printf "%-16s %12.1f %12.1f %+10.1f %8.3f %8.1f /%8.1f\n", t, a, b, b - a, b / a, hi["plain", t] - a, hi["shim", t] - b
  }
}' "$res"
echo "(ns per call: best of $ROUNDS per-run medians; open_close is per open+close pair;"
echo " spread = worst minus best of the per-run medians, a measure of the timing noise)"

echo
echo "# paired, in one process: (call through the PLT) - (call to libc's own symbol), adjacent batches"
printf '%-16s %14s %14s %16s %18s\n' test "no shim ns" "shim ns" "wrapper cost ns" "range (no/shim)"
awk '
{ v = $1; t = $3
  if (!(t in seen)) { seen[t] = 1; order[++n] = t }
  k = v SUBSEP t; c[k]++; d[k, c[k]] = $5 + 0 }
function med(k,   i, j, m, x, tmp) {
  m = c[k]
  for (i = 1; i <= m; i++) x[i] = d[k, i]
  for (i = 2; i <= m; i++) for (j = i; j > 1 && x[j - 1] > x[j]; j--) { tmp = x[j]; x[j] = x[j - 1]; x[j - 1] = tmp }
  lo_ = x[1]; hi_ = x[m]
  return m % 2 ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2 }
END {
  for (i = 1; i <= n; i++) {
    t = order[i]
    a = med("plain" SUBSEP t); alo = lo_; ahi = hi_
    b = med("shim" SUBSEP t); blo = lo_; bhi = hi_
    printf "%-16s %+14.2f %+14.2f %+16.2f %8.1f /%8.1f\n", t, a, b, b - a, ahi - alo, bhi - blo
  }
}' "$res"
echo "(median over the $ROUNDS runs of each run's median paired difference; \"wrapper cost\" is"
echo " shim minus no shim, which cancels the PLT-versus-pointer difference; range = max - min"
echo " over the runs)"

# --- instruction counts ------------------------------------------------------------
if ! command -v valgrind >/dev/null; then
    echo
    echo "# valgrind not found: no instruction counts"
    exit 0
fi
tests=$("$BIN" -l | cut -f1)
dumps=()
for t in $tests; do dumps+=(--dump-after="loop_$t"); done

# Prints "TEST IR" for each test: Ir of loop(2N) minus Ir of loop(N), i.e. N calls.
count() { # variant args...
    local v=$1 d=$tmp/cg.$1
    shift
    mkdir -p "$d"
    if ! env "$@" valgrind --tool=callgrind --toggle-collect='loop_*' "${dumps[@]}" \
        --callgrind-out-file="$d/out" "$BIN" -n "$CALLS" -o all "${sargs[@]}" "$tmp/real" >"$d/log" 2>&1; then
        echo "passthrough.sh: callgrind run ($v) failed:" >&2
        cat "$d/log" >&2
        return 1
    fi
    for f in "$d"/out.*; do
        awk '/^part:/ { p = $2 } /^desc: Trigger: --dump-after=loop_/ { sub(/.*=loop_/, ""); t = $0 }
             /^totals:/ { print p, t, $2 }' "$f"
    done | sort -n | awk '{ if ($2 in first) print $2, $3 - first[$2]; else first[$2] = $3 }'
}
sargs=(-s /benchmnt/f)
count plain S3SHIM_NONE=1 >"$tmp/ir.plain" || exit 1
sargs=()
count bare -u S3SHIM_MOUNTS LD_PRELOAD="$LIB" >"$tmp/ir.bare" || exit 1
count idle LD_PRELOAD="$LIB" >"$tmp/ir.idle" || exit 1
sargs=(-s /benchmnt/f)
count shim LD_PRELOAD="$LIB" >"$tmp/ir.shim" || exit 1

echo
echo "# user-space instructions per call (callgrind, $CALLS calls; kernel work is not counted)"
printf '%-16s %8s | %-26s | %-26s | %-26s\n' "" "no shim" "shim: no mount" "shim: file:// mount" "shim: mount + 1 shim fd"
printf '%-16s %8s | %12s %13s | %12s %13s | %12s %13s\n' test instr instr added instr added instr added
awk -v n="$CALLS" '
FILENAME ~ /plain$/ { a[$1] = $2; order[++k] = $1 }
FILENAME ~ /bare$/ { b[$1] = $2 }
FILENAME ~ /idle$/ { c[$1] = $2 }
FILENAME ~ /shim$/ { d[$1] = $2 }
END { for (i = 1; i <= k; i++) { t = order[i]
        printf "%-16s %8.2f | %12.2f %+13.2f | %12.2f %+13.2f | %12.2f %+13.2f\n", t, a[t] / n,
               b[t] / n, (b[t] - a[t]) / n, c[t] / n, (c[t] - a[t]) / n, d[t] / n, (d[t] - a[t]) / n } }
' "$tmp/ir.plain" "$tmp/ir.bare" "$tmp/ir.idle" "$tmp/ir.shim"
echo "(\"no mount\": S3SHIM_MOUNTS unset, so the shim owns no descriptor at all; \"file:// mount\":"
echo " the mount's root directory fd is an engine descriptor, so the table is never empty;"
echo " \"+ 1 shim fd\": the program also holds a shim descriptor, as in the timed runs (the fd"
echo " test's filter, a bit per descriptor number modulo 64, still answers for the others)."
echo " \"instr\" includes the benchmark loop and libc's own function, the same in every"
echo " column; \"added\" is the shim's share)"
