# fp.sh - fault proxies (faultproxy.py) for a test script, sourced after W (its work
# directory) is set: fp_start starts one and waits until it listens, fp_stop_all stops
# every one it started (call it from the script's EXIT trap).
FP_PIDS=()
FP_N=0

# fp_start NAME LISTEN TARGET_URL ARGS...: a proxy on LISTEN (host:port, port 0 = any) in
# front of TARGET, logging every request to $W/NAME.log, seeded with its ordinal (FP_N).
# Its URL goes to FP_URL; fails when it did not come up.
fp_start() {
    local name=$1 listen=$2 target=${3#http://}
    shift 3
    FP_N=$((FP_N + 1))
    python3 "$(dirname "${BASH_SOURCE[0]}")/faultproxy.py" --listen "$listen" --target "$target" --lifetime 900 \
        --quiet --log "$W/$name.log" --seed "$FP_N" "$@" >"$W/$name.ready" 2>&1 &
    FP_PIDS+=($!)
    for _ in $(seq 100); do grep -q READY "$W/$name.ready" 2>/dev/null && break; sleep 0.05; done
    FP_URL=http://$(sed -n 's/.*READY listen=\([^ ]*\).*/\1/p' "$W/$name.ready")
    [ "$FP_URL" != http:// ]
}

fp_stop_all() {
    local p
    for p in "${FP_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${FP_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
}
