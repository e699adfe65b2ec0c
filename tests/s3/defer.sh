#!/usr/bin/env bash
# tests/s3/defer.sh - S3 temporaries (core/s3/s3_stage_tmp.c): a file a process creates
# O_RDWR|O_CREAT|O_EXCL (mkstemp, Python tempfile, git's *.lock, rsync, sed -i, zip,
# sort -T) is uploaded only at its rename, under the new name; never if it is removed;
# under its own name at fsync or when its process ends.  Real programs run on
# /s3/BUCKET/... and locally; the results are compared, and the Swift proxy's access log
# shows what was sent (no write request naming a temporary, no server-side copy, no
# DELETE of a temporary).
#
#   BUILD=build SAN= tests/s3/defer.sh
#   BUILD=build/asan SAN=asan tests/s3/defer.sh
#
# Checks: zip -r (archive = local zip, unzip -l equal, no copy, no DELETE; and with
# S3SHIM_STAGING_DEFER=0 the copy the check looks for is there), sed -i, rsync -a, git
# commit (lock files), sort -T (nothing under its directory reaches the server), Python
# NamedTemporaryFile + os.replace, a temporary removed (nothing sent), reopened and read
# back, rewritten O_WRONLY|O_TRUNC before the rename, fsynced before the rename (on the
# server under its name at once), left at exit closed / open / by _exit / by exec
# (uploaded under its name), a forked child and a second program stat-ing and reading it
# before the rename (and not uploading it), a second program renaming it, rename onto an
# existing object, rename failing on the server (error returned, the temporary kept and
# uploaded at exit), the staging limit, SIGKILL and SIGTERM after the close (kept, then
# uploaded under its name by the next process that stages, or by one that opens it, as a
# closed file on a disk survives), SIGKILL with it written and not closed (nothing on the
# server, staging cleaned by the next process), one debug log line per deferral.
#
# Output: "ok - ..." / "not ok - ..." per check, then exactly one line "N passed, M failed".
set -u
export LC_ALL=C.UTF-8 TZ=UTC
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$here/../preamble.sh"
REPO=$TOP
# shellcheck source=../variant.sh
. "$REPO/tests/variant.sh" "s3shim S3 temporaries tests"
# shellcheck source=../report.sh
. "$REPO/tests/report.sh"
W=$(mktemp -d /var/tmp/s3shim-defer-test.XXXXXX)
TMO=120
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
# shim CMD...: under the shim (debug log in $W/log, appended), parts of 5 MiB.
shim() {
    S3SHIM_STAGING_DIR=$STAGE S3SHIM_LOG=debug S3SHIM_LOG_FILE=$W/log S3SHIM_PART_SIZE=5M \
        timeout -k 5 "$TMO" env LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" "$@"
}
L=$W/local
mkdir -p "$L" "$W/src"
: >"$W/log"
have() { command -v "$1" >/dev/null 2>&1; }
staging_left() { find "$STAGE" -name '*.data' 2>/dev/null | wc -l; }
exists() { s3_curl -f -I -o /dev/null "$(s3_url "$1")" 2>/dev/null; }

# --- what the server was sent: the Swift proxy's access log ---------------------------------
# One line per client request: "proxy-server: CLIENT REMOTE DATE METHOD PATH PROTO STATUS
# REFERER AGENT TOKEN BYTES_IN ..." (subrequests of the middleware start with "- -").
PLOG=${S3RIG_SWIFT_RUNDIR:+$S3RIG_SWIFT_RUNDIR/log/proxy-0.log}
[ -n "$PLOG" ] && [ -f "$PLOG" ] || PLOG=""
mark() { if [ -n "$PLOG" ]; then stat -c %s "$PLOG"; else echo 0; fi; }
NSENT=0
# writes FROM: the write requests (PUT, POST, DELETE) since FROM, "METHOD PATH BYTES_IN"
# each, PATH without the bucket. A request of our own is logged last, so that every line
# of the program's requests is in the log before it is read.
writes() {
    NSENT=$((NSENT + 1))
    s3_curl -o /dev/null "$(s3_url "zz-sentinel-$NSENT")" 2>/dev/null
    local i
    for i in $(seq 1 100); do grep -q "zz-sentinel-$NSENT " "$PLOG" && break; sleep 0.1; done
    tail -c +$(($1 + 1)) "$PLOG" | awk -v b="/$S/" '$1 == "proxy-server:" && $2 != "-" &&
        ($5 == "PUT" || $5 == "POST" || $5 == "DELETE") { p = $6; sub(b, "", p); print $5, p, $12 }'
}
# sent_only DESC FROM KEY...: every write request since FROM names one of KEYs (an
# upload's parts and completion included), no part is a server-side copy (a part PUT
# without a body), and no DELETE names anything but KEYs.
sent_only() {
    local desc=$1 from=$2 k bad
    shift 2
    if [ -z "$PLOG" ]; then skip "$desc" "no access log of the server (an endpoint not started here)"; return; fi
    writes "$from" >"$W/writes"
    bad=$(awk -v keys="$*" 'BEGIN { n = split(keys, a, " "); for (i = 1; i <= n; i++) ok[a[i]] = 1 }
        { k = $2; sub(/%3F.*/, "", k); if (!(k in ok)) { print "names another key:", $0; next }
          if ($1 == "PUT" && $2 ~ /uploadId/ && ($3 == "-" || $3 == 0)) print "a server-side copy:", $0 }' "$W/writes")
    if [ -z "$bad" ] && [ -s "$W/writes" ]; then pass "$desc"; else fail "$desc" "${bad:-nothing was sent}" "$W/writes"; fi
}
# nothing_under DESC FROM PREFIX: no write request since FROM names a key under PREFIX.
nothing_under() {
    if [ -z "$PLOG" ]; then skip "$1" "no access log of the server"; return; fi
    writes "$2" >"$W/writes"
    if grep -q " $3" "$W/writes"; then fail "$1" "$(grep " $3" "$W/writes")"; else pass "$1"; fi
}

# --- zip -r ----------------------------------------------------------------------------------
echo "# --- zip"
mkdir -p "$W/src/tree/sub"
head -c $((18 << 20)) /dev/urandom >"$W/src/tree/sub/rand.jpg"
seq 1 200000 >"$W/src/tree/seq.txt"
touch -d '2024-01-02 03:04:05' "$W/src/tree" "$W/src/tree/sub" "$W/src/tree"/* "$W/src/tree/sub"/*
if have zip && have unzip; then
    (cd "$W/src" && zip -qrX -n .jpg "$L/out.zip" tree)
    m=$(mark)
    if (cd "$W/src" && shim zip -qrX -n .jpg "$B/zip/out.zip" tree) >"$W/z.err" 2>&1; then
        pass "zip -r writes an archive of $(($(stat -c %s "$L/out.zip") >> 20)) MiB into S3"
    else fail "zip -r into S3" "$W/z.err"; fi
    sent_only "zip: only the archive's name was written (no UploadPartCopy, no DELETE of the temporary)" "$m" zip/out.zip
    unzip -l "$L/out.zip" | sed '1d' >"$W/zl.want"
    shim unzip -l "$B/zip/out.zip" 2>&1 | sed '1d' >"$W/zl.got"
    check "unzip -l of the archive in S3 = of the local one" cmp "$W/zl.want" "$W/zl.got"
    s3_get zip/out.zip "$W/out.fetched" >/dev/null
    check "the archive a GET (curl) returns is the local zip's, byte for byte" cmp "$L/out.zip" "$W/out.fetched"
    if [ -n "$PLOG" ]; then
        m=$(mark)
        (cd "$W/src" && S3SHIM_STAGING_DEFER=0 shim zip -qrX -n .jpg "$B/zip/nodefer.zip" tree) >"$W/z0.err" 2>&1
        writes "$m" >"$W/writes0"
        check "S3SHIM_STAGING_DEFER=0: zip's temporary is uploaded at close and copied (the copy the checks look for)" \
            grep -q "^PUT zip/nodefer.zip%3FpartNumber.*uploadId.* -$" "$W/writes0"
    fi
else
    fail "zip and unzip are installed (tests/install-deps.sh)"
fi

# --- sed -i, rsync, git, sort -T -------------------------------------------------------------
echo "# --- sed -i, rsync, git, sort -T"
seq 1 5000 >"$L/sed.txt"
s3_put "$L/sed.txt" sed/f.txt >/dev/null
sed -i 's/^1/one/' "$L/sed.txt"
m=$(mark)
shim sed -i 's/^1/one/' "$B/sed/f.txt" >"$W/sed.err" 2>&1 || fail "sed -i in S3" "$W/sed.err"
sent_only "sed -i: only the file's name was written" "$m" sed/f.txt
s3_get sed/f.txt "$W/sed.fetched" >/dev/null
check "sed -i in S3 = local sed -i (what a GET (curl) returns)" cmp "$L/sed.txt" "$W/sed.fetched"

if have rsync; then
    mkdir -p "$W/rs/d"
    for i in 1 2 3; do head -c $((i * 300000)) /dev/urandom >"$W/rs/f$i"; done
    echo small >"$W/rs/d/s"
    m=$(mark)
    shim rsync -a "$W/rs/" "$B/rs/" >"$W/rs.err" 2>&1 || fail "rsync -a into S3" "$W/rs.err"
    sent_only "rsync -a: only the files' names (and its directories' markers) were written (no copy of its .name.XXXXXX temporaries)" "$m" \
        rs/f1 rs/f2 rs/f3 rs/d/s rs/ rs/d/
    mkdir -p "$W/rsback"
    s3_aws s3 sync "s3://$S/rs/" "$W/rsback/" >/dev/null 2>&1
    check "rsync -a into S3: aws fetches the same tree" diff -r "$W/rs" "$W/rsback"
else
    fail "rsync is installed (tests/install-deps.sh)"
fi

if have git; then
    G=(git -c user.email=t@example.com -c user.name=t -c init.defaultBranch=main -c gc.auto=0)
    shim bash -c 'mkdir -p "$1" && cd "$1" && shift && "$@" init -q && seq 1 10 >f && "$@" add f' _ "$B/git/r" \
        "${G[@]}" >"$W/g.err" 2>&1
    m=$(mark)
    shim "${G[@]}" -C "$B/git/r" commit -qm c1 >>"$W/g.err" 2>&1
    check "git commit inside S3" test "$(shim "${G[@]}" -C "$B/git/r" log --format=%s 2>>"$W/g.err")" = c1
    if [ -n "$PLOG" ]; then
        writes "$m" >"$W/writes"
        check "git commit: no lock file ever reached the server" bash -c "! grep -q '\\.lock' '$W/writes'"
    fi
else
    fail "git is installed (tests/install-deps.sh)"
fi

seq 1 300000 | shuf --random-source=<(yes) >"$W/sortin"
sort -S 1M "$W/sortin" >"$W/sort.want"
shim mkdir -p "$B/sorttmp" >/dev/null 2>&1
m=$(mark)
shim sort -S 1M -T "$B/sorttmp" "$W/sortin" >"$W/sort.got" 2>"$W/so.err"
check "sort -T with its temporary files in S3 = local sort" cmp "$W/sort.want" "$W/sort.got"
check "sort used temporary files in S3 (the log shows them deferred)" grep -q "sorttmp/.*upload deferred" "$W/log"
nothing_under "sort -T: nothing under its temporary directory reached the server" "$m" sorttmp/

# --- Python: tempfile, removal, reopening, fsync, the end of the process ---------------------
echo "# --- Python temporaries"
cat >"$W/nt.py" <<'EOF'
import os, sys, tempfile
d, final = sys.argv[1], sys.argv[2]
with tempfile.NamedTemporaryFile('wb', dir=d, delete=False) as f:
    f.write(b'x' * 3_000_000)
os.replace(f.name, final)
print(os.stat(final).st_size, os.path.exists(f.name))
EOF
m=$(mark)
shim $PY "$W/nt.py" "$B/py" "$B/py/nt.bin" >"$W/nt.got" 2>&1
check "NamedTemporaryFile + os.replace: the final file has the bytes, the temporary is gone" \
    test "$(cat "$W/nt.got")" = "3000000 False"
sent_only "NamedTemporaryFile + os.replace: only the final name was written" "$m" py/nt.bin

cat >"$W/rm.py" <<'EOF'
import os, sys, tempfile
d = sys.argv[1]
fd, name = tempfile.mkstemp(dir=d)
os.write(fd, b'gone' * 1000); os.close(fd)
with open(name, 'rb') as f: back = f.read()                  # reopened: the staging file
fd = os.open(name, os.O_WRONLY | os.O_TRUNC); os.write(fd, b'second'); os.close(fd)
with open(name, 'rb') as f: again = f.read()
os.unlink(name)
print(len(back), again, os.path.exists(name))
EOF
m=$(mark)
shim $PY "$W/rm.py" "$B/rm" >"$W/rm.got" 2>&1
check "a temporary reopened for reading and O_WRONLY|O_TRUNC in its process, then removed" \
    test "$(cat "$W/rm.got")" = "4000 b'second' False"
nothing_under "a removed temporary: nothing of it reached the server" "$m" rm/

cat >"$W/rw.py" <<'EOF'
import os, sys, tempfile
fd, name = tempfile.mkstemp(dir=sys.argv[1]); os.write(fd, b'first version'); os.close(fd)
fd = os.open(name, os.O_WRONLY | os.O_TRUNC); os.write(fd, b'rewritten'); os.close(fd)
os.rename(name, sys.argv[2])
EOF
shim $PY "$W/rw.py" "$B/rw" "$B/rw/final" >"$W/rw.err" 2>&1
check "a temporary rewritten O_WRONLY|O_TRUNC, then renamed: the final object has the new bytes" \
    test "$(s3_get "rw/final" - 2>&1)" = rewritten

cat >"$W/fs.py" <<'EOF'
import os, subprocess, sys, tempfile
d, final, flag = sys.argv[1:4]
fd, name = tempfile.mkstemp(dir=d); os.write(fd, b'durable'); os.fsync(fd); os.close(fd)
print(os.path.basename(name), flush=True)
while not os.path.exists(flag): sys.stdin.readline()   # the test looks at the server
os.rename(name, final)
EOF
mkfifo "$W/fs.in"
shim $PY "$W/fs.py" "$B/fs" "$B/fs/final" "$W/fs.flag" <"$W/fs.in" >"$W/fs.out" 2>&1 &
fspid=$!
exec 7>"$W/fs.in"
for i in $(seq 1 300); do [ -s "$W/fs.out" ] && break; sleep 0.1; done
t=$(head -1 "$W/fs.out")
check "a temporary fsynced is on the server under its name before the rename" \
    test "$(s3_get "fs/$t" - 2>&1)" = durable
touch "$W/fs.flag"; echo >&7; exec 7>&-
wait $fspid
check "...and the rename after it moves it (final there, temporary gone)" \
    test "$(s3_get "fs/final" - 2>&1)/$(exists "fs/$t" && echo still)" = "durable/"

cat >"$W/end.py" <<'EOF'
import os, sys, tempfile
how, d = sys.argv[1], sys.argv[2]
fd, name = tempfile.mkstemp(dir=d, prefix=how + '.')
print(name, flush=True)
os.write(fd, how.encode() * 1000)
if how not in ('open', 'killopen'): os.close(fd)
if how == '_exit': os._exit(0)
if how == 'exec': os.execv('/bin/true', ['true'])
import signal
if how in ('kill', 'killopen'): os.kill(os.getpid(), signal.SIGKILL)
if how == 'term': os.kill(os.getpid(), signal.SIGTERM)
EOF
for how in closed open _exit exec; do
    shim $PY "$W/end.py" "$how" "$B/end" >"$W/end.err" 2>&1
    k=$(s3_ls end/ | grep "^end/$how\." | head -1)
    check "a temporary left at the end of its process ($how) is uploaded under its name" \
        test -n "$k" -a "$(s3_get "$k" - 2>/dev/null)" = "$(printf "$how%.0s" $(seq 1000))"
done
# Killed with the temporary written and not closed: lost, as any write not closed. Killed
# after the close: a closed file, kept; the next process that stages uploads it.
rep() { printf "$1%.0s" $(seq 1000); }
shim $PY "$W/end.py" killopen "$B/end" >"$W/end.err" 2>&1
shim $PY "$W/end.py" kill "$B/end" >"$W/end.err" 2>&1 # stages: the scan removes killopen's
check "SIGKILL, the temporary open and written: lost (nothing on the server, its staging file removed)" \
    test -z "$(s3_ls end/ | grep '^end/kill')" -a -n "$(grep 'end/killopen\..*ended without closing it.*discarding' "$W/log")"
shim $PY "$W/end.py" term "$B/end" >"$W/term.out" 2>&1 # stages: adopts kill's
k=$(s3_ls end/ | grep '^end/kill\.' | head -1)
check "SIGKILL after the close: the next process that stages uploads the temporary under its name" \
    test -n "$k" -a "$(s3_get "$k" - 2>/dev/null)" = "$(rep kill)"
name=$(head -1 "$W/term.out")
got=$(shim $PY -c 'import sys; print(open(sys.argv[1], "r+b").read().decode(), end="")' "$name" 2>"$W/adopt.err")
check "SIGTERM after the close: a process opening it by name reads its bytes, uploaded under its name" \
    test "$got" = "$(rep term)" -a "$(s3_get "end/${name##*/}" - 2>/dev/null)" = "$(rep term)"
check "...and no staging file is left" test "$(staging_left)" = 0
# A process that only looks at it (stat, ls) or renames it: the temporary is there too
# (it used to be invisible until some process staged something).
shim $PY "$W/end.py" kill "$B/end" >"$W/kill2.out" 2>&1
name=$(head -1 "$W/kill2.out")
got=$(shim stat -c %s "$name" 2>"$W/orph.err")
check "SIGKILL after the close: a process that only stats it sees it (4000 bytes), uploaded under its name" \
    test "$got" = 4000 -a "$(s3_get "end/${name##*/}" - 2>/dev/null)" = "$(rep kill)"
shim $PY "$W/end.py" kill "$B/end" >"$W/kill3.out" 2>&1
name=$(head -1 "$W/kill3.out")
shim ls "$B/end" >"$W/orph.ls" 2>&1
check "...one that lists its directory lists it" grep -qx "${name##*/}" "$W/orph.ls"
shim $PY "$W/end.py" kill "$B/end" >"$W/kill4.out" 2>&1
name=$(head -1 "$W/kill4.out")
shim mv "$name" "$name.moved" >"$W/orph.err" 2>&1
check "...one that renames it moves it (the new name has its bytes, the old one is gone)" \
    test "$(s3_get "end/${name##*/}.moved" - 2>/dev/null)/$(exists "end/${name##*/}" && echo still)" = "$(rep kill)/"
check "...and no staging file is left" test "$(staging_left)" = 0

# --- other processes, rename onto an object, a failing rename, the limit ---------------------
echo "# --- other processes"
cat >"$W/fork.py" <<'EOF'
import os, subprocess, sys, tempfile
d, final = sys.argv[1], sys.argv[2]
fd, name = tempfile.mkstemp(dir=d); data = b'seen by others ' * 5000; os.write(fd, data); os.close(fd)
pid = os.fork()
if pid == 0:
    ok = os.stat(name).st_size == len(data) and open(name, 'rb').read() == data and \
         os.path.basename(name) in os.listdir(d)
    sys.exit(0 if ok else 3)   # a normal exit: the parent's temporary is not the child's to upload
_, st = os.waitpid(pid, 0)
cat = subprocess.run(['cat', name], capture_output=True).stdout
ls = subprocess.run(['stat', '-c', '%s', name], capture_output=True, text=True).stdout.strip()
os.rename(name, final)
print(os.waitstatus_to_exitcode(st), cat == data, ls)
EOF
m=$(mark)
shim $PY "$W/fork.py" "$B/fk" "$B/fk/final" >"$W/fork.got" 2>&1
check "a forked child and a second program stat, list and read the temporary before the rename" \
    test "$(cat "$W/fork.got")" = "0 True 75000"
sent_only "...and none of them uploaded it: only the final name was written" "$m" fk/final

cat >"$W/two.py" <<'EOF'
import os, subprocess, sys, tempfile
d, final = sys.argv[1], sys.argv[2]
fd, name = tempfile.mkstemp(dir=d); os.write(fd, b'moved by another'); os.close(fd)
r = subprocess.run(['mv', name, final])
print(r.returncode, os.path.exists(name), open(final, 'rb').read())
EOF
m=$(mark)
shim $PY "$W/two.py" "$B/two" "$B/two/final" >"$W/two.got" 2>&1
check "a second program (mv) renames the temporary" test "$(cat "$W/two.got")" = "0 False b'moved by another'"
sent_only "...uploaded under the new name only" "$m" two/final

echo old >"$W/old"
s3_put "$W/old" onto/final >/dev/null
cat >"$W/onto.py" <<'EOF'
import os, sys, tempfile
fd, name = tempfile.mkstemp(dir=sys.argv[1]); os.write(fd, b'new content'); os.close(fd)
with open(sys.argv[2], 'rb') as f: before = f.read()
os.rename(name, sys.argv[2])
with open(sys.argv[2], 'rb') as f: after = f.read()
print(before, after)
EOF
m=$(mark)
shim $PY "$W/onto.py" "$B/onto" "$B/onto/final" >"$W/onto.got" 2>&1
check "rename onto an existing object replaces it" test "$(cat "$W/onto.got")/$(s3_get "onto/final" - 2>&1)" \
    = "b'old\\n' b'new content'/new content"
sent_only "...with one upload under its name (no copy, no DELETE)" "$m" onto/final

# The server refuses the new name (its bucket does not exist: the upload gets 404): the
# rename fails, the temporary stays readable; a second rename of it works, and one left
# as it is is uploaded under its name at the end of the process.
cat >"$W/bad.py" <<'EOF'
import errno, os, sys, tempfile
d, nowhere = sys.argv[1], sys.argv[2]
fd, name = tempfile.mkstemp(dir=d, prefix='bad.'); os.write(fd, b'kept safe'); os.close(fd)
fd, again = tempfile.mkstemp(dir=d, prefix='again.'); os.write(fd, b'second try'); os.close(fd)
r = []
for n in (name, again):
    try:
        os.rename(n, nowhere); r.append('renamed')
    except OSError as e:
        r.append(errno.errorcode[e.errno])
os.rename(again, d + '/retried')
print(r[0], r[1], open(name, 'rb').read())
EOF
shim $PY "$W/bad.py" "$B/bad" "/s3/$S-missing/final" >"$W/bad.got" 2>&1
check "rename refused by the server (no such bucket): ENOENT, as for a missing directory; the temporary is still there" \
    test "$(cat "$W/bad.got")" = "ENOENT ENOENT b'kept safe'"
check "...a second rename of it works" test "$(s3_get "bad/retried" - 2>&1)" = "second try"
k=$(s3_ls bad/ | grep '^bad/bad\.' | head -1)
check "...and one left as it is is uploaded under its name at exit: nothing lost" \
    test -n "$k" -a "$(s3_get "$k" - 2>/dev/null)" = "kept safe"

cat >"$W/lim.py" <<'EOF'
import errno, os, sys, tempfile
fd, name = tempfile.mkstemp(dir=sys.argv[1]); os.write(fd, b'a' * (70 << 20)); os.close(fd)
fd, n2 = tempfile.mkstemp(dir=sys.argv[1])
try:
    os.write(fd, b'b' * (70 << 20)); r = 'written'
except OSError as e:
    r = errno.errorcode[e.errno]
os.close(fd); os.unlink(n2); os.unlink(name)
print(r)
EOF
S3SHIM_STAGING_LIMIT=100M shim $PY "$W/lim.py" "$B/lim" >"$W/lim.got" 2>&1
check "the staging limit counts kept temporaries: a second one past it fails with ENOSPC" \
    test "$(cat "$W/lim.got")" = ENOSPC
check "...with a log line naming the setting" grep -q "lim/.*S3SHIM_STAGING_LIMIT" "$W/log"

cat >"$W/three.py" <<'EOF'
import os, sys, tempfile
for i in range(3):
    fd, name = tempfile.mkstemp(dir=sys.argv[1], prefix='three.'); os.write(fd, b'3'); os.close(fd)
    os.rename(name, '%s/t%d' % (sys.argv[1], i))
EOF
before=$(grep -c "three/three\..*upload deferred" "$W/log")
shim $PY "$W/three.py" "$B/three" >/dev/null 2>&1
check "one debug log line per deferral" test "$(($(grep -c "three/three\..*upload deferred" "$W/log") - before))" = 3
check "no staging file left behind" test "$(staging_left)" = 0
finish
