#!/usr/bin/env bash
# The same unmodified programs on O_DIRECT files: a direct:// mount over a fresh scratch
# directory made inside BASE (default /var/tmp, which must not be tmpfs). cp, dd,
# cat, sha256sum and python3 read and write through io_uring without the page cache; the
# stats show the calls and, below them, the device requests (io_uring line: alignment,
# queue depth). Removes what it made. Needs `make`.
set -euo pipefail
cd "$(dirname "$0")/.."
S3SHIM=$PWD/${BUILD:-build}/s3shim
[ -x "$S3SHIM" ] || { echo "direct: build first (make)"; exit 1; }
DIR=$(mktemp -d "${BASE:-/var/tmp}/s3shim-direct.XXXXXX")
SRC=$(mktemp /tmp/s3shim-direct-src.XXXXXX)
trap 'rm -rf "$DIR" "$SRC"' EXIT
head -c $((256 << 20)) /dev/urandom >"$SRC"
echo "direct: /data is direct://$DIR ($(stat -f -c %T "$DIR"))"
"$S3SHIM" run --mount "/data=direct://$DIR" --stats -- bash -c '
set -e
cp "$1" /data/copy.bin
dd if=/data/copy.bin of=/data/dd.bin bs=1M status=none
echo "sha256 of the source:        $(sha256sum < "$1" | cut -c1-64)"
echo "sha256 read back by cat:     $(cat /data/dd.bin | sha256sum | cut -c1-64)"
python3 -c "
import os, sys
with open(\"/data/odd.txt\", \"w\") as f:
    for i in range(1000): f.write(\"line %d\\n\" % i)
print(\"python wrote\", os.path.getsize(\"/data/odd.txt\"), \"bytes (not a multiple of any block size)\")
"
' direct "$SRC"
