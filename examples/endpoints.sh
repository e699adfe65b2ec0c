#!/usr/bin/env bash
# One store, three S3 endpoints, one of them slow: the shim sends each request where it
# expects the answer first, and its statistics show the share each endpoint got.
#
# Starts a local Swift with three proxy servers (one cluster: 127.0.0.1, .2, .3) and
# tests/s3rig/faultproxy.py in front of the third, adding 80 ms to every request; then
# 8 threads of random preads (tests/helpers/s3_preads.c, every byte checked) run once
# with S3SHIM_BALANCE=rr and once with the default, sewt. Everything started is stopped
# at the end. Needs `make` and the rig's packages (`make deps`); about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BUILD=${BUILD:-build}
LIB=$REPO/$BUILD/libs3shim.so
PREADS=$REPO/$BUILD/tests/s3_preads
[ -f "$LIB" ] && [ -x "$PREADS" ] || { echo "endpoints: build first (make all $BUILD/tests/s3_preads)"; exit 1; }
unset AWS_ENDPOINT_URL
. "$REPO/tests/s3rig/lib.sh"
p2=$(s3rig_free_port 127.0.0.2 18500) && p3=$(s3rig_free_port 127.0.0.3 18500)
export S3RIG_SWIFT_PROXIES="127.0.0.2:$p2 127.0.0.3:$p3"
WORK=$(mktemp -d /tmp/s3shim-endpoints.XXXXXX)
proxy=
cleanup() { [ -n "$proxy" ] && kill "$proxy" 2>/dev/null; rm -rf "$WORK"; s3rig_env_cleanup; }
trap cleanup EXIT
export S3_BUCKET=s3shim-endpoints-$$
. "$REPO/tests/s3rig/s3env.sh"
IFS=, read -r -a EP <<<"$S3RIG_ENDPOINTS"

python3 "$REPO/tests/s3rig/faultproxy.py" --listen 127.0.1.9:0 --target "${EP[2]#http://}" --delay-ms 80 \
    --lifetime 300 --quiet >"$WORK/proxy.ready" &
proxy=$!
for _ in $(seq 100); do grep -q READY "$WORK/proxy.ready" && break; sleep 0.05; done
SLOW=http://$(sed -n 's/.*READY listen=\([^ ]*\).*/\1/p' "$WORK/proxy.ready")
echo "endpoints: ${EP[0]} ${EP[1]} and $SLOW (= ${EP[2]} + 80 ms)"

head -c $((32 << 20)) /dev/urandom >"$WORK/obj"
s3_put "$WORK/obj" obj >/dev/null
for policy in rr sewt; do
    echo
    echo "== S3SHIM_BALANCE=$policy: 8 threads x 40 random preads"
    start=$(date +%s.%N)
    LD_PRELOAD=$LIB S3SHIM_ENDPOINTS="${EP[0]},${EP[1]},$SLOW" S3SHIM_BALANCE=$policy S3SHIM_HEDGE=off \
        S3SHIM_STATS_FILE="$WORK/$policy.json" "$PREADS" "/s3/$S3_BUCKET/obj" "$WORK/obj" 40 8
    echo "   took $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s"
    python3 - "$WORK/$policy.json" <<'PY'
import json, sys
for m in json.load(open(sys.argv[1]))["mounts"]:
    for c in m.get("children", []):
        r = c["ops"].get("req")
        if r:
            print("   %-28s %5.1f%% of requests, p50 %6.1f ms, p99 %6.1f ms" % (
                c["uri"], 100 * c.get("share", 0), r["p50_us"] / 1000, r["p99_us"] / 1000))
PY
done
