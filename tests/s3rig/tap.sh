# tap.sh - the reporting of the rig's selftests (sourced): "ok - ..." / "not ok - ..."
# lines, expect NAME CMD... (ok when CMD succeeds, its output dropped), and finish, which
# prints the total time and the closing "N passed, M failed" line and exits 0 only when
# nothing failed. Sets T_START.
T_START=$SECONDS
passed=0 failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
notok() { echo "not ok - $*"; failed=$((failed + 1)); }
expect() { # NAME COMMAND...
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$name"; else notok "$name"; fi
}
finish() {
    echo "# total $((SECONDS - T_START)) s"
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
}
