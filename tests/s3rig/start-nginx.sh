#!/usr/bin/env bash
# start-nginx.sh - serve a directory read-only over HTTP with nginx (Debian nginx-light):
# GET/HEAD only, byte ranges (206, multi-range, 416), ETag and Last-Modified, optional
# bandwidth limit per connection (slow endpoints).  Loopback only.  Uses its own config,
# pid file, logs and temp dirs under DIR; nothing in /etc/nginx or /var is touched.
#
# Usage: start-nginx.sh --root SERVE_DIR [options]
#   --root D          directory to serve (env S3RIG_NGINX_ROOT); URL /a/b = D/a/b
#   --dir DIR         base dir for config, pid, logs (env S3RIG_NGINX_DIR,
#                     default /tmp/s3rig/nginx); one nginx instance per DIR
#   --listen A:P[@R]  listen on loopback address A port P (auto = first free port from
#                     8081; the READY line tells which); @R limits each response to
#                     R bytes/s (nginx limit_rate syntax: 512k, 2m).  Repeat for several
#                     endpoints (127.0.0.2:8081, 127.0.0.3:8081@100k ...) served by the
#                     one instance.  Default 127.0.0.1:8081 (env S3RIG_NGINX_LISTEN,
#                     space separated)
#   --rate R          limit_rate for every --listen without its own @R
#   --workers N       worker processes (default 2)
#   --no-access-log   do not write DIR/log/access.log (benchmarks)
#   --fresh           restart an instance already running in DIR
#   --no-install      fail instead of running install.sh when nginx is missing
#   --timeout S       seconds to wait for readiness (default 20)
# Idempotent: an instance already running in DIR with the same settings is kept
# (reused=1).  On success prints on stdout
#   READY url=http://A:P urls=URL[,URL...] dir=DIR reused=0|1 secs=N
# When run as root the workers run as root too, so directories made by mktemp -d (mode
# 0700) can be served.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RIG_WHO=nginx
. "$HERE/lib.sh"

ROOT=${S3RIG_NGINX_ROOT:-}
DIR=${S3RIG_NGINX_DIR:-/tmp/s3rig/nginx}
LISTEN=(${S3RIG_NGINX_LISTEN:-})
RATE=""
WORKERS=2
ACCESS_LOG=1
FRESH=0
INSTALL=1
TIMEOUT=20
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT=$2; shift 2 ;;
        --dir) DIR=$2; shift 2 ;;
        --listen) LISTEN+=("$2"); shift 2 ;;
        --rate) RATE=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --no-access-log) ACCESS_LOG=0; shift ;;
        --fresh) FRESH=1; shift ;;
        --no-install) INSTALL=0; shift ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) s3rig_die "unknown argument $1 (see --help)" ;;
    esac
done
[ -n "$ROOT" ] || s3rig_die "--root DIR is required"
[ -d "$ROOT" ] || s3rig_die "$ROOT is not a directory"
ROOT=$(cd "$ROOT" && pwd)
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
DIR=${DIR%/}
[ -n "$DIR" ] && [ "$DIR" != /tmp ] || s3rig_die "refusing DIR='$DIR'"
[ ${#LISTEN[@]} -gt 0 ] || LISTEN=(127.0.0.1:8081)
RUN=$DIR/run PIDS=$DIR/run/pids
t0=$(date +%s%N)

if [ ! -x /usr/sbin/nginx ]; then
    [ $INSTALL = 1 ] || s3rig_die "nginx missing (run $HERE/install.sh nginx)"
    "$HERE/install.sh" nginx >&2
fi

# ADDR PORT RATE per endpoint
eps=() addrs=() ports=() rates=()
for l in "${LISTEN[@]}"; do
    r=$RATE
    case "$l" in *@*) r=${l#*@}; l=${l%%@*} ;; esac
    case "$l" in *:*) ;; *) l="127.0.0.1:$l" ;; esac
    s3rig_check_loopback "${l%:*}"
    if [ "${l##*:}" = auto ]; then
        l="${l%:*}:$(s3rig_free_port "${l%:*}" 8081)" || s3rig_die "no free port on ${l%:*}"
    fi
    [[ ${l##*:} =~ ^[0-9]+$ ]] || s3rig_die "bad port in '$l'"
    [ -z "$r" ] || [[ $r =~ ^[0-9]+[kKmMgG]?$ ]] || s3rig_die "bad rate '$r' (e.g. 512k, 2m)"
    eps+=("$l") addrs+=("${l%:*}") ports+=("${l##*:}") rates+=("${r:-0}")
done
sig="root=$ROOT listen=${LISTEN[*]} rate=$RATE workers=$WORKERS access_log=$ACCESS_LOG"
urls=()
for ep in "${eps[@]}"; do urls+=("http://$ep"); done
url_list=$(IFS=,; echo "${urls[*]}")

if [ -f "$PIDS" ]; then
    if [ $FRESH = 0 ] && s3rig_all_alive "$PIDS" && [ "$(cat "$RUN/settings" 2>/dev/null)" = "$sig" ] &&
       [ -s "$RUN/urls" ]; then
        url_list=$(cat "$RUN/urls")
        echo "READY url=${url_list%%,*} urls=$url_list dir=$DIR reused=1 secs=$(s3rig_elapsed "$t0")"
        exit 0
    fi
    if s3rig_any_alive "$PIDS"; then
        [ $FRESH = 1 ] || [ "$(cat "$RUN/settings" 2>/dev/null)" = "$sig" ] ||
            s3rig_die "an nginx with other settings runs in $DIR; stop it first or pass --fresh"
        s3rig_stop_tracked "$PIDS" 10
    fi
fi
if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ] && [ ! -f "$DIR/.s3rig-nginx" ]; then
    s3rig_die "$DIR exists, is not empty and was not made by this script"
fi
rm -rf "$DIR/conf" "$DIR/log" "$RUN" "$DIR/tmp"
mkdir -p "$DIR/conf" "$DIR/log" "$RUN" "$DIR/tmp"
touch "$DIR/.s3rig-nginx"
for ep in "${eps[@]}"; do
    s3rig_port_busy "${ep%:*}" "${ep##*:}" && s3rig_die "$ep is busy"
done
echo "$sig" > "$RUN/settings"
echo "$url_list" > "$RUN/urls"

user_line=""
[ "$(id -u)" = 0 ] && user_line="user root root;"
if [ $ACCESS_LOG = 1 ]; then
    access="access_log $DIR/log/access.log;"
else
    access="access_log off;"
fi
CONF=$DIR/conf/nginx.conf
{
    cat <<EOF
# generated by start-nginx.sh; run as: nginx -p $DIR/ -c $CONF -e $DIR/log/error.log
$user_line
worker_processes $WORKERS;
daemon off;
master_process on;
pid $RUN/nginx.pid;
error_log $DIR/log/error.log warn;
events { worker_connections 4096; }
http {
    default_type application/octet-stream;
    $access
    client_body_temp_path $DIR/tmp/body;
    proxy_temp_path $DIR/tmp/proxy;
    fastcgi_temp_path $DIR/tmp/fastcgi;
    uwsgi_temp_path $DIR/tmp/uwsgi;
    scgi_temp_path $DIR/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    server_tokens off;
    etag on;
EOF
    for i in "${!eps[@]}"; do
        cat <<EOF
    server {
        listen ${addrs[$i]}:${ports[$i]};
        root $ROOT;
        autoindex off;
        limit_rate ${rates[$i]};
        location / {
            limit_except GET { deny all; }
        }
    }
EOF
    done
    echo "}"
} > "$CONF"

nginx_cmd=(/usr/sbin/nginx -p "$DIR/" -c "$CONF" -e "$DIR/log/error.log")
"${nginx_cmd[@]}" -t -q 2> "$DIR/log/configtest.log" || { cat "$DIR/log/configtest.log" >&2; s3rig_die "config test failed ($CONF)"; }
: > "$PIDS"
s3rig_spawn "$PIDS" nginx "$DIR/log/stdout.log" "${nginx_cmd[@]}"

deadline=$((SECONDS + TIMEOUT))
pending=("${eps[@]}")
while :; do
    read -r _ pid st < "$PIDS"
    if ! s3rig_tracked_alive "$pid" "$st"; then
        tail -n 20 "$DIR/log/error.log" >&2 || true
        s3rig_die "nginx exited during start"
    fi
    left=()
    for ep in "${pending[@]}"; do
        # any HTTP answer (404 for "/" is fine) means the listener is up
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$ep/" 2>/dev/null) || code=000
        [ "$code" != 000 ] || left+=("$ep")
    done
    [ ${#left[@]} -eq 0 ] && break
    pending=("${left[@]}")
    if [ $SECONDS -ge $deadline ]; then
        s3rig_stop_tracked "$PIDS" 5
        s3rig_die "not answering after ${TIMEOUT}s: ${left[*]}"
    fi
    sleep 0.05
done
echo "READY url=${urls[0]} urls=$url_list dir=$DIR reused=0 secs=$(s3rig_elapsed "$t0")"
