#!/usr/bin/env bash
# Add up the closing lines of the suites `make test` ran; print one total line last.
set -u
f=${1:?summary file}
pass=0 fail=0
echo "== suites"
while read -r name p _ f2 _; do
    [ -n "${p:-}" ] || { echo "  $name: no closing line (counted as a failure)"; fail=$((fail + 1)); continue; }
    echo "  $name: $p passed, $f2 failed"
    pass=$((pass + p)) fail=$((fail + f2))
done < <(sed -E 's/^([^ ]+) ([0-9]+) passed, ([0-9]+) failed.*/\1 \2 x \3 x/; t; s/^([^ ]+).*/\1/' "$f")
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
