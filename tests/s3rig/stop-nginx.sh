#!/usr/bin/env bash
# stop-nginx.sh [--dir DIR | DIR] [--purge] - stop the nginx start-nginx.sh left in DIR
# (env S3RIG_NGINX_DIR, default /tmp/s3rig/nginx).  Signals only the recorded master PID
# (TERM = fast shutdown; the master takes its workers down; KILL after 10 s).
# --purge also deletes what start-nginx.sh made in DIR (never the served directory).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RIG_WHO=nginx
. "$HERE/lib.sh"
DIR=${S3RIG_NGINX_DIR:-/tmp/s3rig/nginx}
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR=$2; shift 2 ;;
        --purge) PURGE=1; shift ;;
        -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
if [ $PURGE = 1 ] && [ -f "$DIR/.s3rig-nginx" ]; then
    rm -rf "$DIR/conf" "$DIR/log" "$DIR/run" "$DIR/tmp" "$DIR/.s3rig-nginx"
    rmdir "$DIR" 2>/dev/null || true
fi
exit 0
