# shellcheck shell=bash
# capped.sh - `capped SECS CMD...` (sourced): timeout(1) that says where a hung command
# was stuck. A check that times out on a loaded CI machine once in a few hundred runs
# cannot be rerun by hand to see why; what every process under CMD was doing at that
# moment (each thread's kernel wait and, with gdb, its user stack) is written to the
# file $CAPPED_DUMP (stderr if unset) before CMD is killed. Exit status: CMD's, or 124
# when it ran out of time, as timeout(1).

# The pids below $1, children first seen breadth-first.
capped_descendants() {
    local todo=("$1") p c
    while [ ${#todo[@]} -gt 0 ]; do
        p=${todo[0]}
        todo=("${todo[@]:1}")
        for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
            echo "$c"
            todo+=("$c")
        done
    done
}

capped_dump() { # capped_dump PID: every process under PID, thread by thread
    local pid=$1 p t
    echo "== processes under $pid at $(date +%T) (timed out)"
    for p in "$pid" $(capped_descendants "$pid"); do
        [ -d /proc/"$p" ] || continue
        echo "-- pid $p: $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null | cut -c1-200)"
        for t in /proc/"$p"/task/*; do
            echo "   thread ${t##*/} $(cat "$t"/comm 2>/dev/null): state $(awk '{print $3}' "$t"/stat 2>/dev/null)" \
                "wchan $(cat "$t"/wchan 2>/dev/null) syscall $(cut -d' ' -f1-3 "$t"/syscall 2>/dev/null)"
        done
        if command -v gdb >/dev/null; then
            timeout 30 gdb -p "$p" -batch -nx -ex 'set pagination off' -ex 'thread apply all bt 20' 2>/dev/null |
                grep -E '^(Thread|#)' | cut -c1-200
        fi
    done
}

capped() {
    local secs=$1 pid watcher rc p
    shift
    "$@" <&0 &
    pid=$!
    (
        for ((i = 0; i < secs; i++)); do
            sleep 1
            [ -d /proc/"$pid" ] || exit 0
        done
        if [ -n "${CAPPED_DUMP:-}" ]; then capped_dump "$pid" >"$CAPPED_DUMP" 2>&1; else capped_dump "$pid" >&2; fi
        touch "/tmp/.capped-$pid"
        for p in $(capped_descendants "$pid") "$pid"; do kill -TERM "$p" 2>/dev/null; done
        for ((i = 0; i < 5; i++)); do
            [ -d /proc/"$pid" ] || exit 0
            sleep 1
        done
        for p in $(capped_descendants "$pid") "$pid"; do kill -KILL "$p" 2>/dev/null; done
    ) </dev/null >/dev/null &
    watcher=$!
    wait "$pid"
    rc=$?
    if [ -e "/tmp/.capped-$pid" ]; then
        rc=124
        rm -f "/tmp/.capped-$pid"
    fi
    kill "$watcher" 2>/dev/null
    wait "$watcher" 2>/dev/null
    return "$rc"
}
