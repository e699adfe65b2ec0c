# lib.sh - helpers shared by the s3rig scripts (sourced, not run).
#
# Process tracking: every process a rig script starts is recorded in a pid file as
#   NAME PID STARTTIME
# where STARTTIME is field 22 of /proc/PID/stat (clock ticks since boot).  A PID is only
# ever signalled when its current start time still matches, so a recycled PID that now
# belongs to somebody else is never touched.  Nothing is ever killed by name.

s3rig_log() { printf '[s3rig %s] %s\n' "${S3RIG_WHO:-rig}" "$*" >&2; }
s3rig_die() { s3rig_log "ERROR: $*"; exit 1; }

# s3rig_proc_stat PID -> prints "STATE PGRP STARTTIME" of PID (bash builtins only, no
# fork: this runs in polling loops); fails when PID does not exist
s3rig_proc_stat() {
    local - stat                      # "local -": set -f below stays in here
    { read -r stat < "/proc/$1/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }                 # drop "pid (comm) ", comm may hold spaces
    set -f
    set -- $stat                      # $1 = state (field 3), $3 = pgrp, ${20} = field 22
    echo "$1 $3 ${20}"
}

# s3rig_proc_start PID -> start time of PID
s3rig_proc_start() {
    local st
    st=$(s3rig_proc_stat "$1") || return 1
    echo "${st##* }"
}

# s3rig_proc_pgrp PID -> process group id of PID
s3rig_proc_pgrp() {
    local st
    st=$(s3rig_proc_stat "$1") || return 1
    st=${st#* }
    echo "${st%% *}"
}

# s3rig_tracked_alive PID START -> true when PID runs and is still the process we started
# (same start time; a zombie, exited but not reaped yet, counts as gone)
s3rig_tracked_alive() {
    local - stat
    { read -r stat < "/proc/$1/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }
    set -f
    set -- "$2" $stat
    [ "$2" != Z ] && [ "${21}" = "$1" ]
}

# s3rig_track PIDFILE NAME PID -> append a record for a process just started
s3rig_track() {
    local st
    st=$(s3rig_proc_start "$3") || st=gone
    echo "$2 $3 $st" >> "$1"
}

# s3rig_all_alive PIDFILE -> true when every recorded process still runs
s3rig_all_alive() {
    local name pid st
    [ -s "$1" ] || return 1
    while read -r name pid st; do
        [ -n "$pid" ] || continue
        s3rig_tracked_alive "$pid" "$st" || return 1
    done < "$1"
}

# s3rig_any_alive PIDFILE -> true when at least one recorded process still runs
s3rig_any_alive() {
    local name pid st
    [ -f "$1" ] || return 1
    while read -r name pid st; do
        [ -n "$pid" ] || continue
        s3rig_tracked_alive "$pid" "$st" && return 0
    done < "$1"
    return 1
}

# s3rig_stop_tracked PIDFILE [TIMEOUT_S=10] -> TERM every recorded process (last started
# first), wait up to TIMEOUT_S for all of them, then KILL what is left.  A process that
# leads its own process group (swift servers call setsid) gets the KILL on the group, so
# forked workers go with it; otherwise only the PID itself is signalled.
s3rig_stop_tracked() {
    local pidfile=$1 timeout=${2:-10} name pid st deadline any
    [ -f "$pidfile" ] || return 0
    while read -r name pid st; do
        [ -n "$pid" ] || continue
        s3rig_tracked_alive "$pid" "$st" && kill -TERM "$pid" 2>/dev/null
    done < <(tac "$pidfile")
    deadline=$((SECONDS + timeout))
    while :; do
        any=0
        while read -r name pid st; do
            [ -n "$pid" ] || continue
            s3rig_tracked_alive "$pid" "$st" && { any=1; break; }
        done < "$pidfile"
        [ $any = 0 ] && break
        [ $SECONDS -lt $deadline ] || break
        sleep 0.1
    done
    while read -r name pid st; do
        [ -n "$pid" ] || continue
        if s3rig_tracked_alive "$pid" "$st"; then
            s3rig_log "$name ($pid) ignored TERM for ${timeout}s, sending KILL"
            if [ "$(s3rig_proc_pgrp "$pid")" = "$pid" ]; then
                kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
            else
                kill -KILL "$pid" 2>/dev/null
            fi
        fi
    done < "$pidfile"
    # KILL is not instantaneous: give the kernel a moment (bounded) to release ports
    for _ in $(seq 1 20); do s3rig_any_alive "$pidfile" || break; sleep 0.1; done
    mv -f "$pidfile" "$pidfile.stopped"
}

# s3rig_port_busy ADDR PORT -> true when something accepts connections there
s3rig_port_busy() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# s3rig_free_port ADDR FIRST [COUNT=1] [STEP=1] -> first port P >= FIRST such that
# P .. P+COUNT-1 are all free on ADDR (tries 200 candidates). FIRST is moved up by
# S3RIG_PORT_OFFSET: make test's two lanes start servers at the same time, and a port
# that one lane frees for a moment (a test that stops and restarts its Swift proxy) must
# not be picked by the other lane's next server (both Swift proxies then listened on
# it with SO_REUSEPORT and each lane's requests went half to the other's cluster).
s3rig_free_port() {
    local addr=$1 p=$(($2 + ${S3RIG_PORT_OFFSET:-0})) count=${3:-1} step=${4:-1} i n ok
    for ((n = 0; n < 200; n++)); do
        ok=1
        for ((i = 0; i < count; i++)); do
            s3rig_port_busy "$addr" $((p + i)) && { ok=0; break; }
        done
        [ $ok = 1 ] && { echo "$p"; return 0; }
        p=$((p + step))
    done
    return 1
}

# s3rig_check_loopback ADDR -> only 127.x.y.z is allowed
s3rig_check_loopback() {
    [[ $1 =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || s3rig_die "address '$1' is not a 127.x.y.z loopback address"
}

# s3rig_elapsed T0_NS -> seconds since T0_NS (from `date +%s%N`), one decimal
s3rig_elapsed() {
    local ms=$((($(date +%s%N) - $1) / 1000000))
    printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

# s3rig_close_fds -> close every descriptor above 2 in the current (sub)shell, so that a
# long-lived server does not keep a caller's pipe (`test | tee`, $(...), make's jobserver)
# open after the caller is done
s3rig_close_fds() {
    local fd n
    for fd in /proc/$BASHPID/fd/*; do
        n=${fd##*/}
        [ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-" 2>/dev/null
    done
    return 0
}

# s3rig_spawn PIDFILE NAME LOGFILE COMMAND... -> run COMMAND in the background (stdin
# /dev/null, stdout+stderr appended to LOGFILE, no other inherited descriptors) and
# record it in PIDFILE
s3rig_spawn() {
    local pidfile=$1 name=$2 logfile=$3
    shift 3
    ( s3rig_close_fds; exec nohup "$@" >> "$logfile" 2>&1 < /dev/null ) &
    s3rig_track "$pidfile" "$name" $!
}

# s3rig_stop_main DEFAULT_DIR "SUBDIRS" ARGS...: the body of stop-swift.sh and
# stop-nginx.sh. Parses [--dir DIR | DIR] [--purge] [-h], stops the PIDs recorded in
# DIR/run/pids, and with --purge deletes SUBDIRS of DIR and its .s3rig-$S3RIG_WHO marker
# (only in a directory the start script made). The caller's header comment is its help.
s3rig_stop_main() {
    local dir=$1 subdirs=$2 purge=0
    shift 2
    while [ $# -gt 0 ]; do
        case "$1" in
            --dir) dir=$2; shift 2 ;;
            --purge) purge=1; shift ;;
            -h|--help) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
            -*) s3rig_die "unknown option $1" ;;
            *) dir=$1; shift ;;
        esac
    done
    dir=${dir%/}
    if [ -f "$dir/run/pids" ]; then
        s3rig_stop_tracked "$dir/run/pids" 10
        s3rig_log "stopped ($dir)"
    else
        s3rig_log "nothing running in $dir"
    fi
    if [ $purge = 1 ] && [ -f "$dir/.s3rig-$S3RIG_WHO" ]; then
        local d
        for d in $subdirs; do rm -rf "${dir:?}/$d"; done
        rm -f "$dir/.s3rig-$S3RIG_WHO"
        rmdir "$dir" 2>/dev/null || true
    fi
    exit 0
}
