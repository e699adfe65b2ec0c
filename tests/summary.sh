#!/usr/bin/env bash
# Add up the closing lines of the suites `make test` ran, each with the seconds it took;
# print one total line last.
set -u
f=${1:?summary file}
pass=0 fail=0 secs=0
echo "== suites"
while IFS= read -r line; do
    name=${line%% *}
    t=""
    [[ $line =~ \[([0-9]+)s\]$ ]] && t=${BASH_REMATCH[1]}
    secs=$((secs + ${t:-0}))
    if [[ $line =~ ^[^\ ]+\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
        p=${BASH_REMATCH[1]} f2=${BASH_REMATCH[2]}
        printf '  %-24s %5s passed, %s failed  %4ss\n' "$name:" "$p" "$f2" "${t:-?}"
        pass=$((pass + p)) fail=$((fail + f2))
    else
        printf '  %-24s no closing line (counted as a failure)  %4ss\n' "$name:" "${t:-?}"
        fail=$((fail + 1))
    fi
done < "$f"
echo "$pass passed, $fail failed in $((secs / 60)) min $((secs % 60)) s of suites"
[ "$fail" -eq 0 ]
