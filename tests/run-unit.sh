#!/usr/bin/env bash
# run-unit.sh BINARY... - run cmocka unit test binaries and sum up their results.
#
# Prints each binary's output, then one line "N passed, M failed" counting test cases
# across all binaries. A binary that dies (signal, sanitizer report, non-zero exit
# without a cmocka failure count) counts as one more failed case. Exits non-zero if
# anything failed.
set -u

if [ "$#" -eq 0 ]; then
    echo "usage: $0 TEST_BINARY..." >&2
    exit 2
fi

# cmocka's plain-text report on stdout, whatever the caller's environment says.
export CMOCKA_MESSAGE_OUTPUT=stdout
unset CMOCKA_TEST_ABORT

passed=0
failed=0
broken=()

for bin in "$@"; do
    echo "=== $bin"
    if [ ! -x "$bin" ]; then
        echo "run-unit: $bin: not an executable" >&2
        failed=$((failed + 1))
        broken+=("$bin (missing)")
        continue
    fi
    out=$(mktemp)
    "$bin" >"$out" 2>&1
    rc=$?
    cat "$out"

    # "[  PASSED  ] 3 test(s)."  and  "[  FAILED  ] 1 test(s), listed below:"
    p=$(sed -n 's/^.*\[  PASSED  \] \([0-9][0-9]*\) test(s)\..*$/\1/p' "$out" | tail -n 1)
    f=$(sed -n 's/^.*\[  FAILED  \] \([0-9][0-9]*\) test(s).*$/\1/p' "$out" | tail -n 1)
    rm -f "$out"
    p=${p:-0}
    f=${f:-0}
    passed=$((passed + p))
    failed=$((failed + f))

    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # Crashed, or failed in a way cmocka did not count (group setup, sanitizer, leak).
        if [ "$rc" -gt 128 ]; then
            why="killed by signal $((rc - 128))"
        else
            why="exit status $rc"
        fi
        echo "run-unit: $bin: $why without a cmocka failure count" >&2
        failed=$((failed + 1))
        broken+=("$bin ($why)")
    elif [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        echo "run-unit: $bin: no cmocka summary in its output" >&2
        failed=$((failed + 1))
        broken+=("$bin (no summary)")
    fi
done

echo
if [ "${#broken[@]}" -gt 0 ]; then
    for b in "${broken[@]}"; do echo "broken: $b"; done
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
