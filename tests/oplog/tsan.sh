#!/usr/bin/env bash
# tests/oplog/tsan.sh - the TSan stress test (tests/tsan/run.sh) again with the op log on,
# then the log it wrote: every process's records there, none lost or missing, every
# session closed by a footer, and the S3 requests of its S3 part. BUILD=build/tsan (make test-tsan). Prints ok/not ok lines
# and one closing "N passed, M failed" line.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build/tsan}
L=$(mktemp -d "${TMPDIR:-/tmp}/s3shim-tsan-oplog.XXXXXX")
trap 'rm -rf "$L"' EXIT
out=$(S3SHIM_OPLOG="$L/" BUILD=$BUILD "$ROOT/tests/tsan/run.sh" 2>&1)
echo "$out" | grep -vE '^[0-9]+ passed, [0-9]+ failed$' | sed 's/^\(not \)\{0,1\}ok - /&op log on: /'
passed=$(echo "$out" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1/p' | tail -1)
failed=$(echo "$out" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\2/p' | tail -1)
passed=${passed:-0} failed=${failed:-1}
# the release command reads the log (the format does not depend on the build)
TOOL=$ROOT/build/s3shim
[ -x "$TOOL" ] || TOOL=$BUILD/s3shim
sum=$("$TOOL" oplog "$L" --summary 2>&1)
first=$(echo "$sum" | head -1)
if echo "$first" | grep -qE ' [1-9][0-9]* records, 0 lost, 0 missing' && ! echo "$sum" | grep -q "without a footer"; then
    echo "ok - the op log of the TSan run: $first"
    passed=$((passed + 1))
else
    echo "not ok - the op log of the TSan run: $(echo "$sum" | head -3 | tr '\n' ' ')"
    failed=$((failed + 1))
fi
# the S3 part ran (tests/tsan/run.sh, with the rig): its requests are in the log too, from
# the HTTP engine threads' streams
if echo "$out" | grep -q '^ok - tsan: S3 data path'; then
    if echo "$first" | grep -qE '; [1-9][0-9]* of the records are S3 requests' &&
       echo "$sum" | grep -qE '^    get-range +[1-9]'; then
        echo "ok - the S3 requests of the TSan run are in its op log: $(echo "$first" | sed 's/.*; //')"
        passed=$((passed + 1))
    else
        echo "not ok - the S3 requests of the TSan run in its op log: $(echo "$sum" | sed -n '1p;/^  S3 requests:/,/^$/p' | tr '\n' ' ')"
        failed=$((failed + 1))
    fi
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
