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
DIR=${S3RIG_SWIFT_DIR:-/tmp/s3rig/swift}
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR=$2; shift 2 ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) s3rig_die "unknown option $1" ;;
        *) DIR=$1; shift ;;
    esac
done
DIR=${DIR%/}
if [ -f "$DIR/run/pids" ]; then
    s3rig_stop_tracked "$DIR/run/pids" 10
    s3rig_log "stopped ($DIR)"
else
    s3rig_log "nothing running in $DIR"
fi
if [ $PURGE = 1 ] && [ -f "$DIR/.s3rig-swift" ]; then
    rm -rf "$DIR/etc" "$DIR/srv" "$DIR/log" "$DIR/run" "$DIR/cache" "$DIR/.s3rig-swift"
    rmdir "$DIR" 2>/dev/null || true
fi
exit 0
