#!/usr/bin/env bash
# The main job, end to end: unmodified programs (cp, sha256sum, ls, gzip, python3) read
# and write objects in S3 through the shim, and the shim prints what it did.
#
# With AWS_ENDPOINT_URL (and credentials) set, that server is used; otherwise a local
# OpenStack Swift with s3api is installed if needed, started, and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BUILD=${BUILD:-build}
S3SHIM="$REPO/$BUILD/s3shim"
[ -x "$S3SHIM" ] || { echo "demo: build first (make)"; exit 1; }

WORK=$(mktemp -d /tmp/s3shim-demo.XXXXXX)
cleanup_work() { rm -rf "$WORK"; }
trap cleanup_work EXIT
export S3_BUCKET=${S3_BUCKET:-s3shim-demo-$$}
# shellcheck source=../tests/s3rig/s3env.sh
. "$REPO/tests/s3rig/s3env.sh"
echo "demo: S3 endpoint $AWS_ENDPOINT_URL, bucket $S3_BUCKET"
head -c $((64 << 20)) /dev/urandom > "$WORK/sample.bin"
echo

"$S3SHIM" run --stats -- bash -c '
set -e
b=/s3/$S3_BUCKET
cp "$1/sample.bin" $b/sample.bin
echo "sha256 read back through the shim: $(sha256sum < $b/sample.bin | cut -c1-64)"
echo "sha256 of the source:              $(sha256sum < "$1/sample.bin" | cut -c1-64)"
mkdir -p $b/logs
seq 1 200000 | gzip -c > $b/logs/numbers.gz
echo "lines in the gzip written through the shim: $(gunzip -c $b/logs/numbers.gz | wc -l)"
ls -l $b $b/logs
python3 -c "import os, sys; b = sys.argv[1]; print(\"python sees:\", sorted(os.listdir(b)), os.path.getsize(b + \"/sample.bin\"))" $b
' demo "$WORK"
echo
echo "demo: what the AWS CLI sees in the bucket:"
s3_aws s3 ls --recursive "s3://$S3_BUCKET/" | sed 's/^/  /'
s3_get sample.bin "$WORK/back.bin" && cmp "$WORK/sample.bin" "$WORK/back.bin" && echo "  aws download: identical to the source"
