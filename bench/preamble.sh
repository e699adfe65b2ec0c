# bench/preamble.sh - sourced first by the benchmark drivers that start their own servers
# (s3/seq.sh, s3/first.sh, endpoints/run.sh): REPO, RIG, the S3 rig's helpers (lib.sh, its
# log lines tagged with the caller's S3RIG_WHO), BUILD made absolute and LIB; without a
# build the driver exits 2 with one line.
# shellcheck shell=bash
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RIG=$REPO/tests/s3rig
. "$RIG/lib.sh"
BUILD=${BUILD:-build}
[ -d "$BUILD" ] || BUILD=$REPO/$BUILD
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "${0##*/}: no build directory (run make)" >&2; exit 2; }
LIB=$BUILD/libs3shim.so
