#!/usr/bin/env bash
# stop-nginx.sh [--dir DIR | DIR] [--purge] - stop the nginx start-nginx.sh left in DIR
# (env S3RIG_NGINX_DIR, default /tmp/s3rig/nginx).  Signals only the recorded master PID
# (TERM = fast shutdown; the master takes its workers down; KILL after 10 s).
# --purge also deletes what start-nginx.sh made in DIR (never the served directory).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RIG_WHO=nginx
. "$HERE/lib.sh"
s3rig_stop_main "${S3RIG_NGINX_DIR:-/tmp/s3rig/nginx}" "conf log run tmp" "$@"
