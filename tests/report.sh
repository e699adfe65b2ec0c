# shellcheck shell=bash
# report.sh - how every test suite reports (sourced): "ok - ..." / "not ok - ..." lines,
# the details of a failure indented under it, and one closing "N passed, M failed" line
# that tests/summary.sh adds up. A skipped check is an "ok" line that says why (TAP's
# "# skip"): counted and visible. `check` keeps its command's output under $W if set.
PASS=0
FAIL=0
REPORT_T0=$SECONDS
# REPORT_TIMES=1: each result line ends with the seconds since the one before (to find
# what makes a suite slow).
REPORT_LAST=${EPOCHREALTIME/[.,]/}
REPORT_TOOK=""
report_took() { # sets REPORT_TOOK (not a subshell: REPORT_LAST must move)
    REPORT_TOOK=""
    [ -n "${REPORT_TIMES:-}" ] || return 0
    local now=${EPOCHREALTIME/[.,]/} d
    d=$(((now - REPORT_LAST) / 100000))
    REPORT_LAST=$now
    printf -v REPORT_TOOK '  [+%d.%d s]' $((d / 10)) $((d % 10))
}
pass() {
    PASS=$((PASS + 1))
    report_took
    echo "ok - $1$REPORT_TOOK"
}
fail() { # fail DESC [DETAIL...]: each DETAIL a file (its first lines) or a text
    FAIL=$((FAIL + 1))
    report_took
    echo "not ok - $1$REPORT_TOOK"
    shift
    local d
    for d in "$@"; do
        [ -n "$d" ] || continue
        if [ -f "$d" ]; then head -n "${DETAIL_LINES:-30}" "$d"; else printf '%s\n' "$d" | head -n 12; fi |
            cut -c1-240 | sed 's/^/#   /'
    done
    return 0
}
skip() { # skip DESC WHY
    PASS=$((PASS + 1))
    report_took
    echo "ok - $1 # skip: $2$REPORT_TOOK"
}
check() { # check DESC CMD...: passes when CMD succeeds, else fails showing its output
    local desc=$1 out
    shift
    out=$(mktemp "${W:-${TMPDIR:-/tmp}}/check.XXXXXX") || out=/dev/null
    if "$@" >"$out" 2>&1; then pass "$desc"; else fail "$desc" "$out"; fi
    [ "$out" = /dev/null ] || rm -f "$out"
}
# The closing line; the suite's exit status says whether anything failed.
finish() {
    echo "# total $((SECONDS - REPORT_T0)) s"
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    exit
}
# A suite that cannot start: one failure with its details, then the closing line.
bail() {
    fail "$@"
    finish
}
