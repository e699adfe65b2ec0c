#!/usr/bin/env bash
# The main job, end to end: unmodified programs (cp, sha256sum, ls, gzip, python3) work
# on files under a mount through the shim, and the shim prints what it did.
# Today the mount is file:// (a local directory); the S3 backend will take its place.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
S3SHIM="$BUILD/s3shim"
[ -x "$S3SHIM" ] || { echo "demo: build first (make)"; exit 1; }

WORK=$(mktemp -d /tmp/s3shim-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/store"
head -c 8388608 /dev/urandom > "$WORK/sample.bin"
echo "demo: mount /demo -> file://$WORK/store (a prefix that does not exist on disk)"
echo

"$S3SHIM" run --stats --mount "/demo=file://$WORK/store" -- bash -c '
set -e
cp "$1/sample.bin" /demo/sample.bin
echo "sha256 through the shim: $(sha256sum < /demo/sample.bin | cut -c1-64)"
echo "sha256 of the source:    $(sha256sum < "$1/sample.bin" | cut -c1-64)"
mkdir -p /demo/logs
seq 1 200000 | gzip -c > /demo/logs/numbers.gz
echo "lines in the gzip written through the shim: $(gunzip -c /demo/logs/numbers.gz | wc -l)"
ls -l /demo /demo/logs
python3 -c "import os; print(\"python sees:\", sorted(os.listdir(\"/demo\")), os.path.getsize(\"/demo/sample.bin\"))"
' demo "$WORK"
echo
echo "demo: the same bytes are in the backing directory:"
cmp "$WORK/sample.bin" "$WORK/store/sample.bin" && echo "  cmp: identical"
