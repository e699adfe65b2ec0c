#!/usr/bin/env bash
# curl-ranges.sh URL SIZE N [CURL_ARGS...] - read bytes 0..SIZE-1 of URL as N parallel
# ranged GETs (one curl process each, N equal slices, bodies to /dev/null): the "curl with
# parallel ranges" peer of bench/s3/run.sh.  CURL_ARGS go to every curl (signing options).
#
# Prints one line:  bytes=B rss_kb_sum=R rss_kb_max=M cpu_s=C
# (B = bytes received in total, R/M = sum/max of the curls' max RSS, C = their user+sys
# CPU).  Exit status 0 when every curl got a 206 and the bytes add up to SIZE.
set -uo pipefail
[ $# -ge 3 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
url=$1 size=$2 n=$3
shift 3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/curl-ranges.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
per=$(((size + n - 1) / n))
pids=()
for ((i = 0; i < n; i++)); do
    a=$((i * per))
    [ $a -lt "$size" ] || break
    b=$((a + per - 1))
    [ $b -lt "$size" ] || b=$((size - 1))
    /usr/bin/time -o "$tmp/time.$i" -f '%M %U %S' \
        curl -sS --max-time 300 -o /dev/null -r "$a-$b" -w '%{http_code} %{size_download}\n' "$@" "$url" \
        > "$tmp/out.$i" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
cat "$tmp"/time.* "$tmp"/out.* > /dev/null 2>&1 || rc=1
awk -v size="$size" -v rc="$rc" '
    FILENAME ~ /time\./ && NF == 3 { rss += $1; if ($1 > max) max = $1; cpu += $2 + $3 }
    FILENAME ~ /out\./ { if ($1 != 206) bad = 1; bytes += $2 }
    END { printf "bytes=%d rss_kb_sum=%d rss_kb_max=%d cpu_s=%.2f\n", bytes, rss, max, cpu
          exit (rc || bad || bytes != size) ? 1 : 0 }' "$tmp"/time.* "$tmp"/out.*
