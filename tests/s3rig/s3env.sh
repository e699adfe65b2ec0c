# s3env.sh - source this from a test script to get an S3 endpoint and a bucket.
#
#   . "$REPO/tests/s3rig/s3env.sh" || exit 1
#   s3_put local.bin dir/obj          # aws s3 cp local.bin s3://$S3_BUCKET/dir/obj
#   s3_get dir/obj copy.bin
#   s3_ls dir/                        # one key per line
#   s3_rm dir/obj
#
# What it does:
# - AWS_ENDPOINT_URL set: uses that server and starts nothing (keys default to
#   test:tester / testing, region to us-east-1 when unset).
# - AWS_ENDPOINT_URL unset: starts Swift with start-swift.sh.  Default: a private
#   instance in a fresh directory under ${TMPDIR:-/tmp} on free ports (8080 and 6210 up),
#   stopped and deleted when the test exits.  With S3RIG_SWIFT_DIR set, that directory is
#   used instead (ports S3RIG_SWIFT_PORT, S3RIG_SWIFT_STORAGE_PORT_BASE, default auto); an
#   instance already running there is reused and left running, one this file started is
#   stopped at exit (data kept).  S3RIG_SWIFT_PROXIES adds proxies (see start-swift.sh).
# - creates the bucket $S3_BUCKET (default s3shim-test-PID-RANDOM); when the endpoint
#   was not started here, a bucket created here is emptied and deleted at exit unless
#   S3RIG_KEEP_BUCKET=1.
# - exports AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
#   AWS_DEFAULT_REGION AWS_EC2_METADATA_DISABLED S3_BUCKET S3RIG_ENDPOINTS S3RIG_NETRC
#   S3RIG_DIR (this directory).
# - registers s3rig_env_cleanup on EXIT, after any EXIT trap already set (and INT/TERM
#   traps that exit, when the shell has none), and starts a small detached watchdog that
#   does the same cleanup if the test shell dies without running its trap.  A test that
#   sets its own EXIT trap afterwards should call s3rig_env_cleanup in it (it is safe to
#   call twice).
#
# Helpers (all bounded by a timeout, all return the client's exit status):
#   s3_aws ARGS...        /usr/bin/aws --endpoint-url $AWS_ENDPOINT_URL ARGS (never the
#                         aws v1 shim that may come first in PATH; ~/.aws is not read,
#                         the config file is $S3RIG_AWS_CONFIG, default none, e.g. for
#                         s3 multipart_threshold / multipart_chunksize)
#   s3_put FILE KEY       upload (multipart above 8 MiB, like any aws cli)
#   s3_get KEY FILE       download
#   s3_ls [PREFIX]        keys below PREFIX, one per line, all pages
#   s3_rm KEY             delete one object
#   s3_url KEY            prints $AWS_ENDPOINT_URL/$S3_BUCKET/KEY
#   s3_curl ARGS...       curl with SigV4 signing and the keys (UNSIGNED-PAYLOAD), e.g.
#                         s3_curl -o /dev/null -w '%{http_code}' "$(s3_url k)"
#   s3req ARGS...         tests/s3rig/s3req.py (raw signed requests: wrong secret etc.)

if [ "${S3RIG_ENV_PID:-}" = "$BASHPID" ]; then
    return 0    # already loaded in this shell
fi
S3RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export S3RIG_DIR
. "$S3RIG_DIR/lib.sh"
S3RIG_STARTED_SWIFT=0
S3RIG_PRIVATE_DIR=""
S3RIG_CREATED_BUCKET=0
S3RIG_WATCHDOG_PID=""
S3RIG_ENV_CLEANED=""
S3RIG_SWIFT_RUNDIR=""

s3rig_env_cleanup() {
    [ -z "${S3RIG_ENV_CLEANED:-}" ] || return 0
    S3RIG_ENV_CLEANED=1
    if [ "${S3RIG_STARTED_SWIFT:-0}" = 1 ]; then
        if [ -n "$S3RIG_PRIVATE_DIR" ]; then
            "$S3RIG_DIR/stop-swift.sh" --dir "$S3RIG_SWIFT_RUNDIR" --purge 2>/dev/null || true
            rmdir "$S3RIG_PRIVATE_DIR" 2>/dev/null || true
        else
            "$S3RIG_DIR/stop-swift.sh" --dir "$S3RIG_SWIFT_RUNDIR" 2>/dev/null || true
        fi
    elif [ "${S3RIG_CREATED_BUCKET:-0}" = 1 ] && [ "${S3RIG_KEEP_BUCKET:-0}" != 1 ]; then
        s3_aws s3 rb --force "s3://$S3_BUCKET" >/dev/null 2>&1 || true
    fi
    if [ -n "${S3RIG_WATCHDOG_PID:-}" ]; then
        kill -TERM "$S3RIG_WATCHDOG_PID" 2>/dev/null || true
    fi
    rm -f "${S3RIG_OWN_NETRC:-/nonexistent}"
    return 0
}

s3_aws() {
    AWS_CONFIG_FILE=${S3RIG_AWS_CONFIG:-/dev/null} AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER="" \
        timeout 300 /usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"
}
# Single-object requests go through curl (SigV4): the same requests the AWS CLI makes for
# them, at a hundredth of its start-up cost (a second of CPU per call, which was most of
# the S3 suites' time). Uploads from 8 MiB up stay with the AWS CLI: its multipart upload
# is the reference for those.
s3_key_url() { # KEY as a URL path: bytes other than unreserved ones and '/' %-encoded
    local LC_ALL=C k=$1 out="" c i
    for ((i = 0; i < ${#k}; i++)); do
        c=${k:i:1}
        case $c in
        [A-Za-z0-9._~/-]) out+=$c ;;
        *) printf -v c '%%%02X' "'$c"; out+=${c: -3} ;;
        esac
    done
    printf '%s' "$out"
}
s3_put() {
    local size
    size=$(stat -c %s "$1" 2>/dev/null) || { echo "s3_put: $1: no such file" >&2; return 1; }
    if [ "$size" -ge $((8 << 20)) ]; then
        s3_aws s3 cp --only-show-errors "$1" "s3://$S3_BUCKET/$2"
    else
        s3_curl -f --retry 4 -T "$1" -o /dev/null "$(s3_url "$2")"
    fi
}
s3_get() { # s3_get KEY FILE: FILE appears only whole (like the AWS CLI's download)
    local url
    url=$(s3_url "$1")
    case $2 in
    - | /dev/*) s3_curl -f --retry 4 -o "${2/#-//dev/stdout}" "$url" ;;
    *)
        if s3_curl -f --retry 4 -o "$2.s3get" "$url"; then
            mv -f "$2.s3get" "$2"
        else
            rm -f "$2.s3get"
            return 1
        fi
        ;;
    esac
}
s3_rm() { s3_curl -f --retry 4 -X DELETE -o /dev/null "$(s3_url "$1")"; }
s3_ls() {
    local out
    out=$(s3_aws s3api list-objects-v2 --bucket "$S3_BUCKET" --prefix "${1:-}" \
        --query 'Contents[].[Key]' --output text) || return
    [ "$out" = None ] || [ -z "$out" ] || printf '%s\n' "$out"
}
# s3_uploads_left PREFIX: how many multipart uploads the server holds under PREFIX.
s3_uploads_left() {
    s3_aws s3api list-multipart-uploads --bucket "$S3_BUCKET" --prefix "$1" --query 'Uploads[].UploadId' --output text 2>&1 |
        tr '\t' '\n' | grep -v '^None$' | grep -c .
}
s3_url() { printf '%s/%s/%s\n' "$AWS_ENDPOINT_URL" "$S3_BUCKET" "$(s3_key_url "$1")"; }
s3_curl() {
    curl -sS --max-time 300 --aws-sigv4 "aws:amz:$AWS_REGION:s3" --netrc-file "$S3RIG_NETRC" \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}
s3req() { /usr/bin/python3 "$S3RIG_DIR/s3req.py" "$@"; }

s3rig_env_main() {
    local out env_file dir rc code
    if [ ! -x /usr/bin/aws ] || ! command -v curl >/dev/null; then
        "$S3RIG_DIR/install.sh" clients >&2 || return 1
    fi
    if [ -n "${AWS_ENDPOINT_URL:-}" ]; then
        export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test:tester}
        export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
        export AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
        export S3RIG_ENDPOINTS=${S3RIG_ENDPOINTS:-$AWS_ENDPOINT_URL}
    else
        if [ -n "${S3RIG_SWIFT_DIR:-}" ]; then
            dir=$S3RIG_SWIFT_DIR
            out=$("$S3RIG_DIR/start-swift.sh" --dir "$dir" --port "${S3RIG_SWIFT_PORT:-auto}" \
                  --storage-ports "${S3RIG_SWIFT_STORAGE_PORT_BASE:-auto}") || rc=$?
        else
            S3RIG_PRIVATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/s3rig-env.XXXXXX") || return 1
            dir=$S3RIG_PRIVATE_DIR/swift
            out=$("$S3RIG_DIR/start-swift.sh" --dir "$dir" --port auto --storage-ports auto) || rc=$?
        fi
        if [ "${rc:-0}" != 0 ] || [[ $out != READY* ]]; then
            S3RIG_WHO=s3env s3rig_log "could not start Swift in $dir"
            [ -z "$S3RIG_PRIVATE_DIR" ] || rm -rf "$S3RIG_PRIVATE_DIR"
            return 1
        fi
        S3RIG_SWIFT_RUNDIR=$dir
        case "$out" in *" reused=0"*) S3RIG_STARTED_SWIFT=1 ;; esac
        env_file=$(sed -n 's/.* env=\([^ ]*\).*/\1/p' <<< "$out")
        set -a
        . "$env_file"
        set +a
    fi
    export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-$AWS_REGION}
    export AWS_EC2_METADATA_DISABLED=true
    if [ -z "${S3RIG_NETRC:-}" ] || [ ! -f "$S3RIG_NETRC" ]; then
        S3RIG_OWN_NETRC=$(mktemp "${TMPDIR:-/tmp}/s3rig-netrc.XXXXXX") || return 1
        local hp=${AWS_ENDPOINT_URL#*://}
        hp=${hp%%/*}
        printf 'machine %s login %s password %s\n' "${hp%:*}" "$AWS_ACCESS_KEY_ID" \
            "$AWS_SECRET_ACCESS_KEY" > "$S3RIG_OWN_NETRC"
        export S3RIG_NETRC=$S3RIG_OWN_NETRC
    fi

    export S3_BUCKET=${S3_BUCKET:-s3shim-test-$BASHPID-$RANDOM}
    code=$(/usr/bin/python3 "$S3RIG_DIR/s3req.py" PUT "/$S3_BUCKET" --timeout 30 2>&1 >/dev/null |
           sed -n '1s/^HTTP \([0-9]*\).*/\1/p')
    case "$code" in
        200) S3RIG_CREATED_BUCKET=1 ;;
        409) ;;   # BucketAlreadyOwnedByYou (or someone else's: the first request says)
        *) S3RIG_WHO=s3env s3rig_log "creating bucket $S3_BUCKET at $AWS_ENDPOINT_URL failed (HTTP ${code:-none})"
           return 1 ;;
    esac
    return 0
}

# Chain our cleanup after an EXIT trap the caller already has.
s3rig_env_trap() {
    local prev
    prev=$(trap -p EXIT)
    if [ -n "$prev" ]; then
        prev=${prev#trap -- }
        prev=${prev% EXIT}
        eval "prev=$prev"
        trap -- "$prev"$'\n''s3rig_env_cleanup' EXIT
    else
        trap -- 's3rig_env_cleanup' EXIT
    fi
    case $- in *i*) return 0 ;; esac      # an interactive shell keeps its Ctrl-C
    [ -n "$(trap -p INT)" ] || trap -- 'exit 130' INT
    [ -n "$(trap -p TERM)" ] || trap -- 'exit 143' TERM
}

# Detached watchdog (not a child of the test shell, so `wait` never waits for it; no
# inherited stdout/stderr, so a pipe like `test | tee` still ends): when the test shell is
# gone without having cleaned up, it stops what this file started.
s3rig_env_watchdog() {
    [ "$S3RIG_STARTED_SWIFT" = 1 ] || return 0
    local me=$BASHPID st purge=""
    st=$(s3rig_proc_start "$me") || return 0
    [ -z "$S3RIG_PRIVATE_DIR" ] || purge=--purge
    S3RIG_WATCHDOG_PID=$(
        S3RIG_W_PID=$me S3RIG_W_ST=$st S3RIG_W_STOP="$S3RIG_DIR/stop-swift.sh" \
        S3RIG_W_DIR=$S3RIG_SWIFT_RUNDIR S3RIG_W_PURGE=$purge S3RIG_W_PRIV=$S3RIG_PRIVATE_DIR \
        setsid bash -c '
            . "$0"
            s3rig_close_fds
            trap "exit 0" TERM
            # (sleep & wait: a TERM from s3rig_env_cleanup ends the wait at once)
            while s3rig_tracked_alive "$S3RIG_W_PID" "$S3RIG_W_ST"; do sleep 0.5 & wait $!; done
            # the shell went away: stop what it left running (nothing when it cleaned up)
            if [ -f "$S3RIG_W_DIR/run/pids" ]; then
                "$S3RIG_W_STOP" --dir "$S3RIG_W_DIR" $S3RIG_W_PURGE
                [ -z "$S3RIG_W_PRIV" ] || rmdir "$S3RIG_W_PRIV" 2>/dev/null
            fi' "$S3RIG_DIR/lib.sh" </dev/null >/dev/null 2>&1 &
        echo $!)
}

if s3rig_env_main; then
    S3RIG_ENV_PID=$BASHPID
    s3rig_env_trap
    s3rig_env_watchdog
else
    s3rig_env_cleanup
    false
fi
