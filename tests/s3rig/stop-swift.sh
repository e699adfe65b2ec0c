#!/usr/bin/env bash
# stop-swift.sh [--dir DIR | DIR] [--purge] - stop the Swift instance start-swift.sh left
# in DIR (env S3RIG_SWIFT_DIR, default /tmp/s3rig/swift).
# Signals only the PIDs recorded in DIR/run/pids whose start time still matches (TERM,
# then KILL after 10 s).  --purge also deletes what start-swift.sh made in DIR.
# Succeeds (and says so) when nothing runs there.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RIG_WHO=swift
. "$HERE/lib.sh"
s3rig_stop_main "${S3RIG_SWIFT_DIR:-/tmp/s3rig/swift}" "etc srv log run cache" "$@"
