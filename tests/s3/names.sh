#!/usr/bin/env bash
# tests/s3/names.sh - S3 files used by name while they are open for writing
# (core/s3/s3_writers.c, s3_stage_mv.c): stat, chmod, utime, access, listings, unlink,
# rename and a second open of a file a process is writing, as on a disk.
#
#   BUILD=build SAN= tests/s3/names.sh
#   BUILD=build/asan SAN=asan tests/s3/names.sh
#
# Checks: tests/s3/names.py's transcript in S3 equals its transcript in a local directory
# (a streaming upload stat-ed, chmod-ed, listed, read while open; dbm.dumb; open, unlink,
# write, close; rename while open, before and after parts were sent; rename over a file
# open for writing; an existing object patched O_RDWR and renamed while open, read by a
# second process, written again; a new O_RDWR file renamed while open; os.replace inside
# the with block; truncate by name while writing; syncfs on one of two uploads; fsync
# and more writes, three times); the
# objects equal what the aws CLI fetches; no multipart upload left;
# a second process renaming an object the first has open read-write (twice, and a third
# process stat-ing it between), the first's later writes under the last name; an upload renamed while open and its program ending with
# _exit; a second open of an upload that has sent parts: EBUSY and one
# log line; no staging file left behind.
#
# Output: "ok - ..." / "not ok - ..." per check, then exactly one line "N passed, M failed".
set -u
export LC_ALL=C.UTF-8 TZ=UTC
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$here/../preamble.sh"
REPO=$TOP
# shellcheck source=../variant.sh
. "$REPO/tests/variant.sh" "s3shim S3 names of open files tests"
# shellcheck source=../report.sh
. "$REPO/tests/report.sh"
W=$(mktemp -d /var/tmp/s3shim-names-test.XXXXXX)
TMO=120
PY=/usr/bin/python3
cleanup() {
    rm -rf "$W"
    declare -F s3rig_env_cleanup >/dev/null && s3rig_env_cleanup
}
trap cleanup EXIT
# shellcheck source=../s3rig/s3env.sh
. "$REPO/tests/s3rig/s3env.sh" || bail "no S3 server"

STAGE=$W/staging
B=/s3/$S3_BUCKET
S=$S3_BUCKET
BIG=$((12 << 20)) # past a part of 5 MiB: those uploads have sent parts when the name is used
# shim CMD...: under the shim (debug log in $W/log, appended), parts of 5 MiB.
shim() {
    S3SHIM_STAGING_DIR=$STAGE S3SHIM_LOG=debug S3SHIM_LOG_FILE=$W/log S3SHIM_PART_SIZE=5M \
        timeout -k 5 "$TMO" env LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" "$@"
}
: >"$W/log"
staging_left() { find "$STAGE" -name '*.data' 2>/dev/null | wc -l; }

# --- the transcript, locally and in S3 -------------------------------------------------------
mkdir -p "$W/local"
$PY "$here/names.py" "$W/local" "$BIG" >"$W/local.out" 2>"$W/local.err"
check "names.py runs on a local directory" test -s "$W/local.out" -a ! -s "$W/local.err"
shim $PY "$here/names.py" "$B/names" "$BIG" >"$W/s3.out" 2>"$W/s3.err"
check "names.py in S3 answers as on a local directory, call for call and file for file" \
    diff "$W/local.out" "$W/s3.out"
[ -s "$W/s3.err" ] && sed 's/^/# /' "$W/s3.err" | head -20
check "...and says nothing on stderr" test ! -s "$W/s3.err"
# What the server holds is what the transcript says: each file fetched by the aws CLI.
bad=0
while read -r kind name size md5; do
    [ "$kind" = file ] || continue
    got=$(s3_aws s3 cp --only-show-errors "s3://$S/names/$name" - 2>/dev/null | md5sum | cut -d' ' -f1)
    [ "$got" = "$md5" ] || { echo "# names/$name: server $got, transcript $md5"; bad=$((bad + 1)); }
done <"$W/local.out"
check "every file on the server equals the local one (aws s3 cp)" test "$bad" = 0
check "nothing under the removed names, the renamed-away names or the temporary on the server" \
    test -z "$(s3_ls names/ | grep -E '/(gone-small|gone-big|mv-small|mv-big|patched|rw-new|final\.tmp|src)$')"
check "no multipart upload left (those abandoned by unlink were aborted)" test "$(s3_uploads_left names/)" = 0

# --- another process renames an object this one has open read-write --------------------------
printf 'old content of the file' | s3_aws s3 cp --only-show-errors - "s3://$S/xp/a"
mkfifo "$W/go" "$W/done"
cat >"$W/writer.py" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, b"NEW")
open(sys.argv[2], "w").write("ready\n")       # the renamer goes
open(sys.argv[3]).read()                       # ...and says when it is done
os.write(fd, b"MORE")
os.close(fd)
print("closed")
EOF
shim $PY "$W/writer.py" "$B/xp/a" "$W/go" "$W/done" >"$W/xp.out" 2>&1 &
wpid=$!
read -r _ <"$W/go"
shim mv "$B/xp/a" "$B/xp/b" >"$W/mv.out" 2>&1
shim stat -c %s "$B/xp/b" >"$W/xp-stat.out" 2>&1
shim mv "$B/xp/b" "$B/xp/c" >>"$W/mv.out" 2>&1
echo done >"$W/done"
wait "$wpid"
check "a second process renames an object the first has open read-write: both succeed" \
    test "$(cat "$W/xp.out")" = closed -a ! -s "$W/mv.out"
check "...a third process stats the new name while it is open: its size ($(cat "$W/xp-stat.out"))" \
    test "$(cat "$W/xp-stat.out")" = 23
check "...renamed again while still open, the first's writes, before and after both renames, are under the last name" \
    test "$(s3_aws s3 cp --only-show-errors "s3://$S/xp/c" - 2>&1)" = "NEWMOREtent of the file"
check "...and the other names are gone" test -z "$(s3_ls xp/ | grep -E '/(a|b)$')"

# --- an upload renamed after it sent parts, its program ending without closing it -----------
cat >"$W/exit.py" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"e" * int(sys.argv[3]))
os.rename(sys.argv[1], sys.argv[2])
os.write(fd, b"end")
os._exit(0)
EOF
shim $PY "$W/exit.py" "$B/exit/a" "$B/exit/b" "$BIG" >"$W/exit.out" 2>&1
rc=$?
check "an upload renamed while open, its program ending with _exit: committed under the new name only" \
    test "$rc $(s3_ls exit/ | sed 's|.*/||' | tr '\n' ' ')$(s3_aws s3 cp --only-show-errors "s3://$S/exit/b" - | wc -c)" = "0 b $((BIG + 3))"

# --- a second open of an upload that has sent parts ------------------------------------------
cat >"$W/busy.py" <<'EOF'
import errno, os, sys
f = open(sys.argv[1], "wb")
f.write(b"x" * int(sys.argv[2]))
f.flush()
try:
    open(sys.argv[1], "rb")
    print("opened")
except OSError as e:
    print(errno.errorcode[e.errno])
f.close()
print(os.path.getsize(sys.argv[1]))
EOF
shim $PY "$W/busy.py" "$B/busy/f" "$BIG" >"$W/busy.out" 2>&1
check "reading an upload that has sent parts, from its own process: EBUSY, then the close commits it" \
    test "$(tr '\n' ' ' <"$W/busy.out")" = "EBUSY $BIG "
check "...with a log line saying how to open it instead" grep -q "busy/f: .*cannot be opened again.*O_RDWR" "$W/log"
check "no staging file left behind" test "$(staging_left)" = 0
finish
