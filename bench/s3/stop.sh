#!/usr/bin/env bash
# stop.sh WORK [SHM] - undo what bench/s3/run.sh started in its work directory WORK (and
# delete its tmpfs directory SHM): unmount its FUSE mounts, stop its FUSE daemons, nginx
# and Swift by their recorded PIDs (never by name), delete both directories.  Idempotent;
# run.sh calls it at exit and from a detached watchdog if run.sh itself is killed.  Only
# directories named s3shim-bench-s3.* are deleted.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RIG=$(cd "$HERE/../../tests/s3rig" && pwd)
S3RIG_WHO=bench-s3
. "$RIG/lib.sh"
WORK=${1:?usage: stop.sh WORK [SHM]}
SHM=${2:-}
[ -d "$WORK" ] || { [ -z "$SHM" ] || rm -rf -- "$SHM"; exit 0; }
for m in "$WORK"/mnt-*; do
    [ -d "$m" ] || continue
    if mountpoint -q "$m" 2>/dev/null; then
        fusermount -u "$m" 2>/dev/null || fusermount3 -u "$m" 2>/dev/null || fusermount -uz "$m" 2>/dev/null
    fi
done
for pf in "$WORK"/run/*.pids; do
    [ -f "$pf" ] || continue
    for _ in $(seq 1 50); do s3rig_any_alive "$pf" || break; sleep 0.1; done
    s3rig_stop_tracked "$pf" 10
done
[ -d "$WORK/nginx" ] && "$RIG/stop-nginx.sh" --dir "$WORK/nginx" --purge >/dev/null 2>&1
[ -d "$WORK/swift" ] && "$RIG/stop-swift.sh" --dir "$WORK/swift" --purge >/dev/null 2>&1
for m in "$WORK"/mnt-*; do
    if [ -d "$m" ] && mountpoint -q "$m" 2>/dev/null; then
        s3rig_log "$m is still mounted: not deleting $WORK"
        WORK=""
    fi
done
for d in "$WORK" "$SHM"; do
    [ -n "$d" ] && [ -d "$d" ] || continue
    case "${d##*/}" in
        s3shim-bench-s3.*) rm -rf -- "$d" ;;
        *) s3rig_log "not deleting $d (not a bench directory)" ;;
    esac
done
exit 0
