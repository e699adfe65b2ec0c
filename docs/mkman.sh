#!/usr/bin/env bash
# mkman.sh [VERSION] - print the markdown of the s3shim(1) man page on stdout, for
# go-md2man: docs/s3shim.1.md with docs/settings.md put in at its marker line, so the
# settings are written once. settings.md is reshaped only as roff needs it: its
# sections become COMMANDS, ENVIRONMENT and STATS, the settings table becomes a list
# (a wide table does not fit a terminal), links become their text.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${1:-}

# One section of settings.md: from "## TITLE" (or the top, for "") to the next "## ".
section() {
    awk -v want="$1" '
        /^## / { cur = substr($0, 4); next }
        /^# /  { next }
        cur == want { print }' "$here/settings.md"
}

# Markdown links to their text; table rows of settings to a definition list; the
# table's own header and the paragraph about its test dropped.
reshape() {
    sed -E 's/\[([^]]*)\]\([^)]*\)/\1/g' | awk -F' [|] ' '
        /^[|] variable [|]/ || /^[|]---/ { next }
        /^The table is checked/ { skip = 1 }
        skip { if ($0 == "") skip = 0; next }
        /^[|] `S3SHIM_/ {
            name = $1; sub(/^[|] /, "", name)
            mean = $3; sub(/ [|]$/, "", mean)
            print name ($2 == "(unset)" ? " (unset by default)" : " (default " $2 ")")
            print ": " mean
            print ""
            next
        }
        { print }'
}

while IFS= read -r line; do
    case $line in
    "% S3SHIM 1 "*)
        printf '%% S3SHIM 1 "" "s3shim%s" "User Commands"\n' "${version:+ $version}"
        ;;
    "<!-- docs/mkman.sh inserts docs/settings.md here -->")
        printf '# COMMANDS\n'
        section "The command" | reshape
        printf '# ENVIRONMENT\n'
        section "" | reshape
        printf '# STATS\n'
        section "Stats" | reshape
        ;;
    *) printf '%s\n' "$line" ;;
    esac
done < "$here/s3shim.1.md"
