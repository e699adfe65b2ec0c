# common.sh - sourced by the S3 benchmark drivers (run.sh, programs.sh): what every one of
# them needs to measure the shim against peers on the project's own servers, written once.
#   - a clean client environment (nothing from the caller's AWS/S3SHIM/rclone settings, an
#     empty aws config so ~/.aws is never read);
#   - a work directory /tmp/s3shim-bench-s3.* (or $TMPDIR) removed at exit by stop.sh,
#     also from a detached watchdog if the driver is killed; every server and FUSE daemon
#     is stopped by its recorded PID, never by name;
#   - a snapshot of libs3shim.so, so that a rebuild of the tree meanwhile changes nothing;
#   - Swift (tests/s3rig/start-swift.sh, free ports) and the per-server client settings;
#   - timed runs (wall, max RSS, CPU, the server's CPU), shim runs with statistics files,
#     s3fs/rclone mounts.
# The caller sets HERE (its directory), BENCH_WHO (log prefix), BUILD and OUT before
# sourcing, then calls bench_setup [SHM_BYTES] and bench_start_swift.
# shellcheck shell=bash
REPO=$(cd "$HERE/../.." && pwd)
RIG=$REPO/tests/s3rig
S3RIG_WHO=$BENCH_WHO
. "$RIG/lib.sh"
REGION=us-east-1
BUCKET=${BUCKET:-bench}

log() { printf '[%s %3ds] %s\n' "$BENCH_WHO" "$SECONDS" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ns() { date +%s%N; }

# bench_build_dir: BUILD made absolute, LIB set (dies when there is no build)
bench_build_dir() {
    [ -d "$BUILD" ] || BUILD=$REPO/$BUILD
    BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || die "no build directory ${BUILD} (run make)"
    LIB=$BUILD/libs3shim.so
    [ -e "$LIB" ] || die "$LIB is missing (run make)"
}

# bench_setup [SHM_BYTES]: the clean environment, WORK (and SHM: a /dev/shm directory when
# it has SHM_BYTES free, else one more directory on disk), cleanup, watchdog, the library
# snapshot (LIB, LIB_SUM, CODE), RAW, LOAD_START
bench_setup() {
    local want=${1:-0} v shm_free me me_st try
    # Nothing from the caller's environment reaches the clients except what we set here.
    for v in $(compgen -e); do
        case "$v" in S3SHIM_*|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AWS_PROFILE|AWS_DEFAULT_PROFILE|\
            AWS_ENDPOINT_URL*|AWS_CONFIG_FILE|AWS_SHARED_CREDENTIALS_FILE|AWS_REGION|AWS_DEFAULT_REGION|LD_PRELOAD|\
            AWSACCESSKEYID|AWSSECRETACCESSKEY|RCLONE_*) unset "$v" ;; esac
    done
    export AWS_EC2_METADATA_DISABLED=true
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/s3shim-bench-s3.XXXXXX") || die "mktemp failed"
    SHM=""
    if [ "$want" -gt 0 ]; then
        shm_free=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
        if [ -n "$shm_free" ] && [ "$shm_free" -gt $((want / 1024 + 262144)) ]; then
            SHM=$(mktemp -d /dev/shm/s3shim-bench-s3.XXXXXX) || die "mktemp failed"
        else
            log "/dev/shm is too small: using $WORK (disk) instead"
            SHM=$(mktemp -d "${TMPDIR:-/tmp}/s3shim-bench-s3.XXXXXX")
        fi
    fi
    mkdir -p "$WORK/run" "$WORK/log" "$WORK/stats"
    CLEANED=0
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # A detached watchdog runs stop.sh if this shell dies without its trap (kill -9).
    me=$BASHPID
    me_st=$(s3rig_proc_start "$me")
    WATCHDOG=$(setsid bash -c '
        . "$1"; trap "exit 0" TERM
        while s3rig_tracked_alive "$2" "$3"; do sleep 1; done
        "$4" "$5" $6' _ "$RIG/lib.sh" "$me" "$me_st" "$HERE/stop.sh" "$WORK" "$SHM" \
        </dev/null >/dev/null 2>&1 & echo $!)
    # Benchmark one library from start to end: a snapshot of it, so that a rebuild of $BUILD
    # meanwhile (other work in the same tree) cannot change or truncate it under a run.
    CODE=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')
    for try in $(seq 1 20); do
        cp "$LIB" "$WORK/libs3shim.so" 2>/dev/null &&
            ! LD_PRELOAD="$WORK/libs3shim.so" /bin/true 2>&1 | grep -q . && break
        [ "$try" = 20 ] && die "$LIB cannot be loaded"
        sleep 1
    done
    LIB=$WORK/libs3shim.so
    LIB_SUM=$(sha256sum "$LIB" | cut -c1-12)
    echo "" > "$WORK/aws-config"   # an empty config and credentials file: ~/.aws is never read
    echo "" > "$WORK/aws-creds"
    echo "" > "$WORK/rclone.conf"
    RAW=$WORK/raw
    : > "$RAW"
    T_WALL=0 T_RSS=0 T_CPU=0 T_SRV=0
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
}
bench_cleanup() {
    [ "${CLEANED:-1}" = 1 ] && return
    CLEANED=1
    if [ "${KEEP_LOGS:-0}" = 1 ] && [ -d "$WORK/log" ]; then
        rm -rf "$OUT.logs"
        cp -r "$WORK/log" "$OUT.logs" 2>/dev/null
    fi
    "$HERE/stop.sh" "$WORK" $SHM
    [ -z "${WATCHDOG:-}" ] || kill -TERM "$WATCHDOG" 2>/dev/null
}
budget_ok() { # NAME: false (and says so) once the time budget is spent
    if [ $SECONDS -ge "$BUDGET" ]; then
        log "time budget (${BUDGET}s) spent: skipping $1"
        echo "skip|$1" >> "$RAW"
        return 1
    fi
}

# bench_start_swift: Swift with s3api in WORK/swift; sets SW_EP, SW_KEY, SW_SECRET, SW_NETRC,
# SW_PIDS (every process, for the server's CPU time), SW_LOG (the proxy's log: one access
# line per request)
bench_start_swift() {
    local out sw_env
    log "starting Swift"
    out=$("$RIG/start-swift.sh" --dir "$WORK/swift" --port auto --storage-ports auto ${SWIFT_LOG_LEVEL:+--log-level "$SWIFT_LOG_LEVEL"}) ||
        die "start-swift.sh failed"
    [[ $out == READY* ]] || die "start-swift.sh: $out"
    sw_env=$(sed -n 's/.* env=\([^ ]*\).*/\1/p' <<< "$out")
    SW_EP=$(sed -n 's/^AWS_ENDPOINT_URL=//p' "$sw_env")
    SW_KEY=$(sed -n 's/^AWS_ACCESS_KEY_ID=//p' "$sw_env")
    SW_SECRET=$(sed -n 's/^AWS_SECRET_ACCESS_KEY=//p' "$sw_env")
    SW_NETRC=$(sed -n 's/^S3RIG_NETRC=//p' "$sw_env")
    SW_PIDS=$(tree_pids $(awk '{ print $2 }' "$WORK/swift/run/pids"))
    SW_LOG=$(ls "$WORK"/swift/log/proxy*.log 2>/dev/null | head -1)
}
# every process of a server (recorded PIDs and their children: nginx workers, the Swift
# proxy worker)
tree_pids() { local p; for p in "$@"; do echo "$p"; pgrep -P "$p"; done | sort -un | tr '\n' ' '; }
HZ=$(getconf CLK_TCK)
srv_ticks() { local p t=0 c; for p in $SRV_PIDS; do c=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) && t=$((t + c)); done; echo $t; }

# srv SERVER: sets EP, CURL_AUTH, AWS_ENV, AWS_SIGN, SHIM_ENV, S3FS_ENV, S3FS_OPT, RC_ENV
srv() {
    SERVER=$1
    local base=(AWS_CONFIG_FILE="$WORK/aws-config" AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-creds"
                AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION")
    local rc=(RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other RCLONE_CONFIG_B_REGION="$REGION"
              RCLONE_CONFIG_B_FORCE_PATH_STYLE=true)
    case $1 in
    nginx)
        SRV_PIDS=$NG_PIDS
        EP=$NG_EP
        CURL_AUTH=()
        AWS_ENV=("${base[@]}")
        AWS_SIGN=(--no-sign-request)
        SHIM_ENV=("${base[@]}" AWS_ENDPOINT_URL="$EP" S3SHIM_NO_SIGN=1 S3SHIM_ADDRESSING=path)
        S3FS_ENV=()
        S3FS_OPT=,public_bucket=1
        RC_ENV=("${rc[@]}" RCLONE_CONFIG_B_ENDPOINT="$EP")
        ;;
    swift)
        SRV_PIDS=$SW_PIDS
        EP=$SW_EP
        CURL_AUTH=(--aws-sigv4 "aws:amz:$REGION:s3" --netrc-file "$SW_NETRC" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD')
        AWS_ENV=("${base[@]}" AWS_ACCESS_KEY_ID="$SW_KEY" AWS_SECRET_ACCESS_KEY="$SW_SECRET")
        AWS_SIGN=()
        SHIM_ENV=("${base[@]}" AWS_ENDPOINT_URL="$EP" AWS_ACCESS_KEY_ID="$SW_KEY"
                  AWS_SECRET_ACCESS_KEY="$SW_SECRET" S3SHIM_ADDRESSING=path)
        S3FS_ENV=(AWSACCESSKEYID="$SW_KEY" AWSSECRETACCESSKEY="$SW_SECRET")
        S3FS_OPT=""
        RC_ENV=("${rc[@]}" RCLONE_CONFIG_B_ENDPOINT="$EP" RCLONE_CONFIG_B_ACCESS_KEY_ID="$SW_KEY"
                RCLONE_CONFIG_B_SECRET_ACCESS_KEY="$SW_SECRET")
        ;;
    esac
}
aws_() { env "${AWS_ENV[@]}" AWS_PAGER="" /usr/bin/aws --endpoint-url "$EP" "${AWS_SIGN[@]}" "$@"; }
shim_stats_file() { echo "$WORK/stats/$1.%p.json"; }

# timed TIMEOUT CMD...: runs CMD under /usr/bin/time; sets T_WALL (s), T_RSS (KiB), T_CPU (s)
# and T_SRV (CPU seconds the server's processes used meanwhile)
timed() {
    local to=$1 t0 t1 rc line s0 s1
    shift
    s0=$(srv_ticks)
    t0=$(now_ns)
    timeout -k 5 "$to" /usr/bin/time -o "$WORK/time.out" -f 'RUSAGE %M %U %S' "$@"
    rc=$?
    t1=$(now_ns)
    s1=$(srv_ticks)
    T_SRV=$(awk -v a="$s0" -v b="$s1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
    T_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
    line=$(grep '^RUSAGE' "$WORK/time.out" 2>/dev/null | tail -1)
    T_RSS=$(awk '{ print $2 }' <<< "$line")
    T_CPU=$(awk '{ printf "%.2f", $3 + $4 }' <<< "$line")
    [ -n "$T_RSS" ] || { T_RSS=0; T_CPU=0; }
    [ $rc = 124 ] && log "timed out after ${to}s: $*"
    return $rc
}
# rec BENCH TOOL WALL RSS_KB CPU [KEY=VALUE...]: one raw result line
rec() { local IFS='|'; echo "run|$SERVER|$*|srv_cpu=$T_SRV" >> "$RAW"; }
fail() { log "FAILED: $SERVER $1 $2"; echo "fail|$SERVER|$1|$2" >> "$RAW"; }
# shim_stats PATTERN: "reqs=N fetched=BYTES sent=BYTES" from the stats file(s) of our last run
shim_stats() {
    python3 - "$WORK/stats" "$1" <<'PY'
import glob, json, os, sys
reqs = fetched = sent = 0
for f in glob.glob(os.path.join(sys.argv[1], sys.argv[2] + '.*.json')):
    try:
        d = json.load(open(f))
    except Exception:
        continue
    for m in d.get('mounts', []):
        for ch in m.get('children', []):
            for op, v in ch.get('ops', {}).items():
                if op in ('read', 'write', 'meta', 'stat'):
                    reqs += v.get('count', 0)
                if op == 'read':
                    fetched += v.get('bytes', 0)
                if op == 'write':
                    sent += v.get('bytes', 0)
print('reqs=%d fetched=%d sent=%d' % (reqs, fetched, sent))
PY
}
NRUN=0
shim_run() { # TAG TIMEOUT [VAR=VALUE...] CMD...: a program under the shim, with stats
    local tag=$1 to=$2
    shift 2
    rm -f "$WORK/stats/$tag".*.json
    timed "$to" env "${SHIM_ENV[@]}" S3SHIM_STATS_FILE="$(shim_stats_file "$tag")" LD_PRELOAD="$LIB" "$@"
}

# fuse_mount KIND: mounts $BUCKET of $SERVER at $WORK/mnt-KIND; sets FUSE_PID, MNT.  The
# mount is ready when FUSE_WAIT_FOR (default obj) exists in it.
fuse_mount() {
    local kind=$1 n
    NRUN=$((NRUN + 1))
    MNT=$WORK/mnt-$kind
    mkdir -p "$MNT"
    mountpoint -q "$MNT" && { log "$MNT is still mounted"; return 1; }
    case $kind in
    s3fs)
        env "${S3FS_ENV[@]}" s3fs "$BUCKET" "$MNT" -f \
            -o "url=$EP,use_path_request_style,endpoint=$REGION$S3FS_OPT" \
            > "$WORK/log/s3fs.$SERVER.$NRUN.log" 2>&1 < /dev/null &
        ;;
    rclone)
        # rclone refuses to start when AWS_CA_BUNDLE is set (its HTTP transport cannot take
        # a custom bundle); the endpoint is plain http anyway
        env -u AWS_CA_BUNDLE "${RC_ENV[@]}" rclone mount "b:$BUCKET" "$MNT" --config "$WORK/rclone.conf" \
            ${FUSE_RO:+--read-only} > "$WORK/log/rclone.$SERVER.$NRUN.log" 2>&1 < /dev/null &
        ;;
    esac
    FUSE_PID=$!
    FUSE_PIDS=$WORK/run/$kind.$NRUN.pids
    s3rig_track "$FUSE_PIDS" "$kind" "$FUSE_PID"
    for n in $(seq 1 150); do
        if mountpoint -q "$MNT" && [ -e "$MNT/${FUSE_WAIT_FOR:-obj}" ]; then return 0; fi
        kill -0 "$FUSE_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "$kind mount of $EP did not come up; log:"
    tail -n 5 "$WORK/log/$kind.$SERVER.$NRUN.log" >&2
    fuse_umount
    return 1
}
fuse_umount() {
    mountpoint -q "$MNT" && { fusermount -u "$MNT" 2>/dev/null || fusermount -uz "$MNT"; }
    for _ in $(seq 1 100); do s3rig_any_alive "$FUSE_PIDS" || break; sleep 0.1; done
    s3rig_stop_tracked "$FUSE_PIDS" 10
}
# daemon_cpu PID: user+sys seconds so far;  daemon_hwm PID: VmHWM in KiB
daemon_cpu() { awk -v hz="$HZ" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
daemon_hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# machine_header: the report's first lines (machine, load, code, run time)
machine_header() {
    echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
    echo "# load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: wall times move with it; cpu_s less so)"
    echo "# code: $CODE (libs3shim.so sha256 $LIB_SUM...), $(date -u '+%Y-%m-%d %H:%M UTC'), run time ${SECONDS}s"
}
