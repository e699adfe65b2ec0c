#!/usr/bin/env bash
# start-swift.sh - a single-node OpenStack Swift with s3api + tempauth: a local S3 server
# that checks SigV4 strictly.  Loopback only.  Stop it with stop-swift.sh.
#
# Usage: start-swift.sh [options] [DIR [PORT]]
#   --dir DIR        base directory: configs, rings, data, logs, pids
#                    (env S3RIG_SWIFT_DIR, default /tmp/s3rig/swift)
#   --port PORT      S3 endpoint http://127.0.0.1:PORT; "auto" = first free port from
#                    8080 up (env S3RIG_SWIFT_PORT, default 8080)
#   --proxy A:P      one more proxy-server on loopback address A, port P (A defaults
#                    to 127.0.0.1 when only a port is given), sharing the storage servers,
#                    rings and memcached: several S3 endpoints of one cluster.  Repeat it
#                    for more (env S3RIG_SWIFT_PROXIES, space separated)
#   --storage-ports N  object, container, account servers on 127.0.0.1:N, N+1, N+2 and
#                    memcached on N+3; "auto" = first free block from 6210
#                    (env S3RIG_SWIFT_STORAGE_PORT_BASE, default 6210; the stock Debian
#                    services use 6200-6202, so the two never collide)
#   --workers N      proxy worker processes, 0 = no fork (env S3RIG_SWIFT_WORKERS, 1)
#   --no-memcached   run without memcached (every request then logs memcache errors
#                    and small requests are about 2.5x slower)
#   --log-level L    Swift log level (env S3RIG_SWIFT_LOG_LEVEL, default INFO)
#   --fresh          stop an instance already running in DIR and start anew (wipes data)
#   --no-install     fail instead of running install.sh when packages are missing
#   --timeout S      seconds to wait for readiness (env S3RIG_SWIFT_TIMEOUT, default 60)
# Users (env S3RIG_SWIFT_USERS, default "test:tester:testing test2:tester2:testing2"):
# space separated ACCOUNT:USER:SECRET; the S3 access key is ACCOUNT:USER.
#
# Idempotent: when DIR already holds a running, healthy instance with the same settings
# it is left alone (data kept) and READY is printed with reused=1.  Otherwise every start
# begins with empty storage.
#
# On success prints one line on stdout
#   READY endpoint=http://127.0.0.1:PORT endpoints=URL[,URL...] env=DIR/run/env dir=DIR reused=0|1 secs=N
# and leaves the servers running.  DIR/run/env holds KEY=VALUE lines (AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, S3RIG_ENDPOINTS,
# S3RIG_SWIFT_DIR, S3RIG_NETRC): load them with  set -a; . DIR/run/env; set +a
# DIR/run/netrc lets curl sign requests (the access key contains ':', which curl's --user
# cannot carry):  curl --aws-sigv4 aws:amz:us-east-1:s3 --netrc-file DIR/run/netrc ...
# PIDs are in DIR/run/pids, logs in DIR/log/.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RIG_WHO=swift
. "$HERE/lib.sh"

DIR=${S3RIG_SWIFT_DIR:-/tmp/s3rig/swift}
PORT=${S3RIG_SWIFT_PORT:-8080}
PROXIES=(${S3RIG_SWIFT_PROXIES:-})
PBASE=${S3RIG_SWIFT_STORAGE_PORT_BASE:-6210}
WORKERS=${S3RIG_SWIFT_WORKERS:-1}
MEMCACHED=1
LOG_LEVEL=${S3RIG_SWIFT_LOG_LEVEL:-INFO}
FRESH=0
INSTALL=1
TIMEOUT=${S3RIG_SWIFT_TIMEOUT:-60}
USERS=${S3RIG_SWIFT_USERS:-"test:tester:testing test2:tester2:testing2"}
REGION=us-east-1
positional=()
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) DIR=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --proxy) PROXIES+=("$2"); shift 2 ;;
        --storage-ports) PBASE=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --no-memcached) MEMCACHED=0; shift ;;
        --log-level) LOG_LEVEL=$2; shift 2 ;;
        --fresh) FRESH=1; shift ;;
        --no-install) INSTALL=0; shift ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) s3rig_die "unknown option $1 (see --help)" ;;
        *) positional+=("$1"); shift ;;
    esac
done
[ ${#positional[@]} -ge 1 ] && DIR=${positional[0]}
[ ${#positional[@]} -ge 2 ] && PORT=${positional[1]}
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
DIR=${DIR%/}
[ -n "$DIR" ] && [ "$DIR" != /tmp ] || s3rig_die "refusing DIR='$DIR'"
RUN=$DIR/run ETC=$DIR/etc PIDS=$DIR/run/pids
t0=$(date +%s%N)

# ------------------------------------------------------------------ packages
if [ ! -x /usr/bin/swift-ring-builder ] || [ ! -x /usr/bin/swift-proxy-server ] ||
   [ ! -x /usr/bin/swift-object-server ] || [ ! -x /usr/bin/swift-container-server ] ||
   [ ! -x /usr/bin/swift-account-server ] || { [ $MEMCACHED = 1 ] && [ ! -x /usr/bin/memcached ]; }; then
    [ $INSTALL = 1 ] || s3rig_die "Swift packages missing (run $HERE/install.sh swift)"
    "$HERE/install.sh" swift >&2
fi

# ------------------------------------------------------------------ an instance already there?
# settings that must match for a running instance to be reused ("auto" ports match
# whatever the running instance chose)
want_sig="workers=$WORKERS memcached=$MEMCACHED users=$USERS log=$LOG_LEVEL proxies=${PROXIES[*]:-}"
if [ -f "$PIDS" ]; then
    if [ $FRESH = 0 ] && s3rig_all_alive "$PIDS" && [ -f "$RUN/settings" ] && [ -f "$RUN/env" ]; then
        have_sig=$(sed -n 's/^sig=//p' "$RUN/settings")
        have_port=$(sed -n 's/^port=//p' "$RUN/settings")
        have_pbase=$(sed -n 's/^storage=//p' "$RUN/settings")
        if [ "$have_sig" = "$want_sig" ] && { [ "$PORT" = auto ] || [ "$PORT" = "$have_port" ]; } &&
           { [ "$PBASE" = auto ] || [ "$PBASE" = "$have_pbase" ]; }; then
            ep=$(sed -n 's/^AWS_ENDPOINT_URL=//p' "$RUN/env")
            eps=$(sed -n 's/^S3RIG_ENDPOINTS=//p' "$RUN/env")
            if [ "$(curl -s -m 3 "$ep/healthcheck" 2>/dev/null)" = OK ]; then
                echo "READY endpoint=$ep endpoints=$eps env=$RUN/env dir=$DIR reused=1 secs=$(s3rig_elapsed "$t0")"
                exit 0
            fi
            s3rig_log "instance in $DIR runs but does not answer; restarting it"
        else
            s3rig_die "an instance with other settings runs in $DIR ($have_sig port=$have_port storage=$have_pbase); stop it first or pass --fresh"
        fi
    fi
    if s3rig_any_alive "$PIDS"; then
        s3rig_log "stopping the previous instance in $DIR"
        s3rig_stop_tracked "$PIDS" 10
    fi
fi
if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ] && [ ! -f "$DIR/.s3rig-swift" ]; then
    s3rig_die "$DIR exists, is not empty and was not made by this script"
fi
rm -rf "$ETC" "$DIR/srv" "$DIR/log" "$RUN" "$DIR/cache"
mkdir -p "$ETC" "$DIR/srv/node/d1" "$DIR/log" "$RUN" "$DIR/cache"
touch "$DIR/.s3rig-swift"

# ------------------------------------------------------------------ ports
# "auto" ports: two starts at the same moment must not pick the same free ports, so the
# choice is made under a lock that is held until every server has bound its port.
if [ "$PBASE" = auto ] || [ "$PORT" = auto ]; then
    exec 9> "${TMPDIR:-/tmp}/s3rig-ports.lock"
    flock -w 120 9 || s3rig_die "could not get ${TMPDIR:-/tmp}/s3rig-ports.lock in 120 s"
fi
if [ "$PBASE" = auto ]; then
    PBASE=$(s3rig_free_port 127.0.0.1 6210 4 10) || s3rig_die "no free block of 4 ports from 6210"
fi
OBJ_PORT=$PBASE CONT_PORT=$((PBASE + 1)) ACC_PORT=$((PBASE + 2)) MC_PORT=$((PBASE + 3))
if [ "$PORT" = auto ]; then
    PORT=8080
    while :; do
        PORT=$(s3rig_free_port 127.0.0.1 "$PORT") || s3rig_die "no free port from 8080"
        [ "$PORT" -ge "$OBJ_PORT" ] && [ "$PORT" -le "$MC_PORT" ] && { PORT=$((MC_PORT + 1)); continue; }
        break
    done
fi
# every proxy endpoint as ADDR:PORT, the main one first
endpoints=("127.0.0.1:$PORT")
for p in "${PROXIES[@]}"; do
    case "$p" in *:*) ;; *) p="127.0.0.1:$p" ;; esac
    s3rig_check_loopback "${p%:*}"
    endpoints+=("$p")
done
[ "$(printf '%s\n' "${endpoints[@]}" | sort | uniq -d)" = "" ] || s3rig_die "duplicate proxy endpoint in ${endpoints[*]}"
for p in "$OBJ_PORT" "$CONT_PORT" "$ACC_PORT"; do
    s3rig_port_busy 127.0.0.1 "$p" && s3rig_die "port 127.0.0.1:$p busy (choose --storage-ports N or auto)"
done
[ $MEMCACHED = 1 ] && s3rig_port_busy 127.0.0.1 "$MC_PORT" && s3rig_die "memcached port 127.0.0.1:$MC_PORT busy"
for ep in "${endpoints[@]}"; do
    s3rig_port_busy "${ep%:*}" "${ep##*:}" && s3rig_die "proxy address $ep busy (a stock swift-proxy uses 8080: choose --port)"
done
printf 'sig=%s\nport=%s\nstorage=%s\n' "$want_sig" "$PORT" "$PBASE" > "$RUN/settings"

# ------------------------------------------------------------------ configuration
cat > "$ETC/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = s3rig-$RANDOM$RANDOM
swift_hash_path_prefix = s3rig

[storage-policy:0]
name = Policy-0
default = yes

[swift-constraints]
EOF

storage_conf() { # KIND PORT
    cat <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $2
workers = 0
user = $(id -un)
swift_dir = $ETC
devices = $DIR/srv/node
mount_check = false
disable_fallocate = true
recon_cache_path = $DIR/cache
log_name = $1-server
log_level = $LOG_LEVEL

[pipeline:main]
pipeline = healthcheck $1-server

[app:$1-server]
use = egg:swift#$1

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
}
storage_conf object "$OBJ_PORT" > "$ETC/object-server.conf"
storage_conf container "$CONT_PORT" > "$ETC/container-server.conf"
storage_conf account "$ACC_PORT" > "$ETC/account-server.conf"

auth_lines=""
for u in $USERS; do
    IFS=: read -r acct usr key <<< "$u"
    [ -n "$acct" ] && [ -n "$usr" ] && [ -n "$key" ] || s3rig_die "bad user entry '$u' (ACCOUNT:USER:SECRET)"
    case "$acct$usr" in *_*) s3rig_die "no '_' allowed in account or user name ('$u')" ;; esac
    auth_lines+="user_${acct}_${usr} = ${key} .admin"$'\n'
done
cache_filter=cache
[ $MEMCACHED = 1 ] || cache_filter=""

proxy_conf() { # ADDR PORT
    cat <<EOF
[DEFAULT]
bind_ip = $1
bind_port = $2
workers = $WORKERS
user = $(id -un)
swift_dir = $ETC
log_name = proxy-server
log_level = $LOG_LEVEL

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging $cache_filter listing_formats bulk s3api tempauth copy slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
# one node only: never wait long for handoffs that do not exist
conn_timeout = 2
node_timeout = 30

[filter:s3api]
use = egg:swift#s3api
location = $REGION
storage_domain = localhost
s3_acl = false
dns_compliant_bucket_names = true
allowable_clock_skew = 900

[filter:tempauth]
use = egg:swift#tempauth
${auth_lines}
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MC_PORT

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
[filter:symlink]
use = egg:swift#symlink
EOF
}
n=0
for ep in "${endpoints[@]}"; do
    proxy_conf "${ep%:*}" "${ep##*:}" > "$ETC/proxy-server-$n.conf"
    n=$((n + 1))
done

# ------------------------------------------------------------------ start
fail() {
    s3rig_log "$1"
    for f in "$DIR"/log/*.log; do
        s3rig_log "--- tail of $f"
        tail -n 15 "$f" >&2
    done
    s3rig_stop_tracked "$PIDS" 5
    exit 1
}
: > "$PIDS"
# eventlet's green DNS resolver pulls in dnspython: a quarter of a second of CPU per
# process at import, and nothing here resolves names (every address is an IP)
export EVENTLET_NO_GREENDNS=yes
launch() { # NAME COMMAND...   (the port lock on fd 9 is not inherited either)
    s3rig_spawn "$PIDS" "$1" "$DIR/log/$1.log" "${@:2}"
}
if [ $MEMCACHED = 1 ]; then
    mc_user=()
    [ "$(id -u)" = 0 ] && mc_user=(-u root)
    launch memcached /usr/bin/memcached -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 64 -c 4096 "${mc_user[@]}"
fi
for kind in account container object; do
    launch "$kind" /usr/bin/python3 "$HERE/swift-launch.py" "$ETC/swift.conf" "$kind" "$ETC/$kind-server.conf"
done
# Rings: one device each, 2^8 partitions, 1 replica.  A ring only depends on the storage
# ports, so built rings are kept in a cache directory and copied; a miss builds them in
# one python process (the swift-ring-builder CLI costs about 2 s per ring) while the
# storage servers, which do not read rings, start up.  Only the proxies need them.
RING_CACHE=${S3RIG_RING_CACHE:-${TMPDIR:-/tmp}/s3rig-ring-cache}/v1-$OBJ_PORT-$CONT_PORT-$ACC_PORT
if ! cp "$RING_CACHE"/{object,container,account}.ring.gz "$ETC/" 2>/dev/null; then
    /usr/bin/python3 - "$ETC" "$OBJ_PORT" "$CONT_PORT" "$ACC_PORT" <<'PY' || fail "building the rings failed"
import os, sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
for kind, port in zip(('object', 'container', 'account'), map(int, sys.argv[2:5])):
    rb = RingBuilder(8, 1, 1)
    rb.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port,
                'replication_ip': '127.0.0.1', 'replication_port': port,
                'device': 'd1', 'weight': 100, 'meta': ''})
    rb.rebalance()
    rb.save(os.path.join(etc, kind + '.builder'))
    rb.get_ring().save(os.path.join(etc, kind + '.ring.gz'))
PY
    # publish atomically: a concurrent start sees either no cache entry or a whole one
    tmp=$(mktemp -d "${RING_CACHE%/*}/.new.XXXXXX" 2>/dev/null ||
          { mkdir -p "${RING_CACHE%/*}" && mktemp -d "${RING_CACHE%/*}/.new.XXXXXX"; }) &&
        cp "$ETC"/{object,container,account}.ring.gz "$tmp/" &&
        { mv -T "$tmp" "$RING_CACHE" 2>/dev/null || rm -rf "$tmp"; } || true
fi
for r in object container account; do
    [ -s "$ETC/$r.ring.gz" ] || fail "ring $r missing"
done

n=0
for ep in "${endpoints[@]}"; do
    launch "proxy-$n" /usr/bin/python3 "$HERE/swift-launch.py" "$ETC/swift.conf" proxy "$ETC/proxy-server-$n.conf"
    n=$((n + 1))
done

# ------------------------------------------------------------------ wait until it answers
# A request with a SigV4 header that cannot verify must get an S3 XML error from s3api
# (a request without one is handed to the Swift API and gets an HTML 401 instead).
probe_s3() { # ADDR:PORT
    local d body
    d=$(date -u +%Y%m%dT%H%M%SZ)
    body=$(curl -s -m 3 -H "x-amz-date: $d" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
        -H "Authorization: AWS4-HMAC-SHA256 Credential=probe:probe/${d%%T*}/$REGION/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=$(printf '0%.0s' {1..64})" \
        "http://$1/" 2>/dev/null) || return 1
    case "$body" in *InvalidAccessKeyId*|*SignatureDoesNotMatch*|*AccessDenied*) return 0 ;; esac
    return 1
}
deadline=$((SECONDS + TIMEOUT))
pending=("127.0.0.1:$OBJ_PORT" "127.0.0.1:$CONT_PORT" "127.0.0.1:$ACC_PORT" "${endpoints[@]}")
while :; do
    while read -r name pid st; do
        s3rig_tracked_alive "$pid" "$st" || fail "$name (pid $pid) exited during start"
    done < "$PIDS"
    left=()
    for hp in "${pending[@]}"; do
        # cheap connect test first (no exec), the HTTP check once something listens
        if s3rig_port_busy "${hp%:*}" "${hp##*:}" &&
           [ "$(curl -s -m 2 "http://$hp/healthcheck" 2>/dev/null)" = OK ]; then
            continue
        fi
        left+=("$hp")
    done
    if [ ${#left[@]} -eq 0 ]; then
        left=()
        for ep in "${endpoints[@]}"; do probe_s3 "$ep" || left+=("$ep"); done
        [ ${#left[@]} -eq 0 ] && break
    else
        pending=("${left[@]}")
    fi
    [ $SECONDS -lt $deadline ] || fail "not ready after ${TIMEOUT}s (waiting for ${left[*]})"
    sleep 0.15
done

exec 9>&-    # every port is bound now: release the port lock (if taken)

# ------------------------------------------------------------------ env file, netrc
first=${USERS%% *}
access=$(cut -d: -f1,2 <<< "$first")
secret=$(cut -d: -f3- <<< "$first")
urls=()
for ep in "${endpoints[@]}"; do urls+=("http://$ep"); done
eps=$(IFS=,; echo "${urls[*]}")
cat > "$RUN/env" <<EOF
AWS_ACCESS_KEY_ID=$access
AWS_SECRET_ACCESS_KEY=$secret
AWS_REGION=$REGION
AWS_DEFAULT_REGION=$REGION
AWS_ENDPOINT_URL=${urls[0]}
S3RIG_ENDPOINTS=$eps
S3RIG_SWIFT_DIR=$DIR
S3RIG_NETRC=$RUN/netrc
EOF
( umask 077
  for ep in "${endpoints[@]}" localhost; do
      printf 'machine %s login %s password %s\n' "${ep%:*}" "$access" "$secret"
  done | sort -u > "$RUN/netrc" )
echo "READY endpoint=${urls[0]} endpoints=$eps env=$RUN/env dir=$DIR reused=0 secs=$(s3rig_elapsed "$t0")"
