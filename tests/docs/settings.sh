#!/usr/bin/env bash
# settings.sh - keep docs/settings.md true to the build (`make test-docs`).
#
# The build's list of settings is `s3shim config --settings` (cfg_known[] in
# core/config.c): NAME<TAB>DEFAULT<TAB>MEANING. The test fails when
#   - docs/settings.md documents a name the build does not know, documents one twice,
#     or leaves a known name out;
#   - the sources of the library and the command read an "S3SHIM_..." name the build
#     does not know (so it would be warned about as unknown, and is undocumented);
#   - a documented default differs from the build's, or setting a variable to its
#     default changes what `s3shim config` prints with an otherwise empty environment,
#     or a non-default value below does not change it (then the default check above
#     would prove nothing);
#   - `s3shim config` does not warn about an unknown S3SHIM_* name, or warns about a
#     known one;
#   - README.md is over 8 KB or no longer opens with the two set-up commands;
#   - the man page (when go-md2man is installed) does not render or lacks a setting.
# Prints "ok - ..." / "not ok - ..." lines and a closing "N passed, M failed" line. A few
# seconds; starts nothing that outlives a command.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
BIN=$ROOT/${BUILD:-build}/s3shim
DOC=docs/settings.md
. tests/report.sh

# A value other than the default for every setting that has one, shown by `s3shim
# config`. A new setting with a default needs one here.
declare -A ALT=(
    [S3SHIM_MOUNTS]="/s3=s3://;/alt=file:///tmp"
    [S3SHIM_LOG]=debug [S3SHIM_STATS]=1 [S3SHIM_PART_SIZE]=16M [S3SHIM_CONCURRENCY]=8
    [S3SHIM_MAX_REQUESTS]=64 [S3SHIM_MEMORY]=2G [S3SHIM_READAHEAD_MEMORY]=64M [S3SHIM_ADDRESSING]=path
    [S3SHIM_STAT_TTL]=0 [S3SHIM_IO_THREADS]=4 [S3SHIM_TIMEOUT]=10 [S3SHIM_HTTP_RECV]=curl [S3SHIM_READ_HOLD]=off [S3SHIM_NO_SIGN]=1
    [S3SHIM_BALANCE]=rr [S3SHIM_HEDGE]=off [S3SHIM_SHARED_UPLOADS]=no [S3SHIM_STAGING_LIMIT]=20G
    [S3SHIM_WRITE_BEHIND]=0
    [S3SHIM_STAGING_DEFER]=0
    [S3SHIM_DIRECT_FALLBACK]=error [S3SHIM_DIRECT_CHUNK]=2M [S3SHIM_DIRECT_DEPTH]=8
    [S3SHIM_DIRECT_THREADS]=4 [S3SHIM_DIRECT_BUFFERS]=16 [S3SHIM_DIRECT_SQPOLL]=1 [S3SHIM_DIRECT_ENGINE]=threads
    [S3SHIM_DIRECT_GATHER]=1 [S3SHIM_KERNEL_FILES]=1 [S3SHIM_BLOCK_COMMIT_MS]=0 [S3SHIM_BLOCK_BATCH_MS]=0 [S3SHIM_BLOCK_DISCARD]=1 [S3SHIM_BLOCK_SHARE_WAIT_MS]=500
    [S3SHIM_LOG_FILE]=/nonexistent/s3shim.log [S3SHIM_STATS_FILE]=/nonexistent/stats.json
    [S3SHIM_OPLOG]=/nonexistent/oplog
    [S3SHIM_ENDPOINTS]=http://127.0.0.1:9,http://127.0.0.2:9
)

if [ ! -x "$BIN" ]; then
    fail "build the command first: $BIN is missing"
    finish
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/docs-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir "$T/home" # no ~/.aws: the AWS part of the output stays the same

# `s3shim config` with nothing but ASSIGNMENT... in the environment: its settings and
# AWS parts (the environment part lists the variables themselves) and its exit status.
config_in() {
    env -i HOME="$T/home" PATH=/usr/bin:/bin "$@" "$BIN" config 2>"$T/stderr" | sed '/^environment:/,$d'
    echo "exit ${PIPESTATUS[0]}"
}

# --- the build's list and the documented one ---------------------------------------------
if ! "$BIN" config --settings > "$T/known" || ! [ -s "$T/known" ]; then
    fail "s3shim config --settings lists the known settings"
    finish
fi
pass "s3shim config --settings lists $(wc -l < "$T/known") settings"
# | `NAME` | DEFAULT | meaning |  ->  NAME<TAB>DEFAULT (backquotes dropped)
awk -F' [|] ' '/^[|] `S3SHIM_/ {
        name = $1; sub(/^[|] /, "", name); gsub(/`/, "", name)
        d = $2; gsub(/`/, "", d)
        print name "\t" d }' "$DOC" > "$T/documented"
declare -A KNOWN_DEF DOC_DEF DOC_COUNT
while IFS=$'\t' read -r name def _; do KNOWN_DEF[$name]=$def; done < "$T/known"
while IFS=$'\t' read -r name def; do
    DOC_DEF[$name]=$def
    DOC_COUNT[$name]=$((${DOC_COUNT[$name]:-0} + 1))
done < "$T/documented"

for name in "${!DOC_COUNT[@]}"; do
    [ -n "${KNOWN_DEF[$name]+x}" ] || fail "$name is documented in $DOC but this build does not know it"
done

# --- each known setting: documented once, its default, what config shows -----------------
config_in > "$T/base"
for name in $(cut -f1 "$T/known"); do
    def=${KNOWN_DEF[$name]} why=()
    case ${DOC_COUNT[$name]:-0} in
    0) why+=("not documented in $DOC") ;;
    1) [ "${DOC_DEF[$name]}" = "$def" ] || why+=("documented default '${DOC_DEF[$name]}', built '$def'") ;;
    *) why+=("documented ${DOC_COUNT[$name]} times") ;;
    esac
    if [ "$def" != "(unset)" ]; then
        config_in "$name=$def" > "$T/same"
        cmp -s "$T/base" "$T/same" || why+=("$name=$def changes s3shim config: $(diff "$T/base" "$T/same" | grep '^>' | head -2 | tr '\n' ' ')")
        grep -q unknown "$T/stderr" && why+=("s3shim config calls it unknown")
        [ -n "${ALT[$name]+x}" ] || why+=("no non-default value for it in ${BASH_SOURCE[0]}")
    fi
    if [ -n "${ALT[$name]+x}" ]; then
        config_in "$name=${ALT[$name]}" > "$T/other"
        cmp -s "$T/base" "$T/other" && why+=("$name=${ALT[$name]} does not show in s3shim config")
    fi
    if [ ${#why[@]} -eq 0 ]; then
        pass "$name: documented once, default $def as built${ALT[$name]+, shown by s3shim config}"
    else
        fail "$name: $(printf '%s; ' "${why[@]}")"
    fi
done

# --- every name the sources read is known ---------------------------------------------------
missing=$(grep -rhoE '"S3SHIM_[A-Z0-9_]+"' core shim tools include | tr -d '"' | sort -u |
          while read -r n; do [ -n "${KNOWN_DEF[$n]+x}" ] || echo "$n"; done | tr '\n' ' ')
if [ -z "$missing" ]; then pass "every \"S3SHIM_...\" name in core/, shim/, tools/, include/ is a known setting"
else fail "names read by the sources but unknown to s3shim config (add them to cfg_known[] and $DOC): $missing"; fi

# --- unknown names are warned about, known ones are not -------------------------------------
config_in S3SHIM_NOT_A_SETTING=1 > /dev/null
if grep -q "unknown S3SHIM_\* setting" "$T/stderr" && grep -q S3SHIM_MOUNTS "$T/stderr"; then
    pass "s3shim config warns about an unknown S3SHIM_* name and lists the known ones"
else
    fail "s3shim config does not warn about S3SHIM_NOT_A_SETTING"
fi
all=()
while IFS=$'\t' read -r name def _; do all+=("$name=${def/(unset)/x}"); done < "$T/known"
config_in "${all[@]}" > /dev/null
if grep -q unknown "$T/stderr"; then fail "s3shim config calls a known setting unknown: $(grep unknown "$T/stderr")"
else pass "s3shim config knows every setting it lists"; fi

# --- README ---------------------------------------------------------------------------------
size=$(wc -c < README.md)
if [ "$size" -le 8192 ]; then pass "README.md is $size bytes (at most 8 KB)"; else fail "README.md is $size bytes, over 8 KB"; fi
if sed -n 3,6p README.md | grep -q '^make deps && make demo ' && sed -n 3,6p README.md | grep -q '^make deps && make test '; then
    pass "README.md opens with make deps && make demo / make test"
else
    fail "README.md no longer opens with the two set-up commands"
fi

# --- the man page -----------------------------------------------------------------------------
if ! command -v go-md2man > /dev/null; then
    skip "man page" "go-md2man is not installed (make deps)"
elif ! docs/mkman.sh | go-md2man > "$T/s3shim.1" || ! [ -s "$T/s3shim.1" ]; then
    fail "the man page does not render (docs/mkman.sh | go-md2man)"
else
    lost=$(cut -f1 "$T/known" | while read -r n; do grep -qF "$n" "$T/s3shim.1" || echo "$n"; done | tr '\n' ' ')
    if [ -z "$lost" ]; then pass "the man page renders and names every setting"; else fail "the man page lacks $lost"; fi
fi

finish
