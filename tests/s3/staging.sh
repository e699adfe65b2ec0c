#!/usr/bin/env bash
# tests/s3/staging.sh - S3 objects for programs that do not write strictly sequentially
# (O_RDWR, O_APPEND, writes at any offset, ftruncate, mmap, locks, mkstemp): real programs
# run on /s3/BUCKET/... and, for reference, on a local directory; their results are
# compared with each other and with what the aws CLI fetches.
#
#   BUILD=build SAN= tests/s3/staging.sh
#   BUILD=build/asan SAN=asan tests/s3/staging.sh
#
# Checks: sqlite3 (query a 20 MB database; create, insert, update one inside S3; .dump
# equal), zip -r / unzip -l / unzip -p, Python zipfile write and read, tar rf and tar uf,
# >> appends (also from exec'd programs), git init/commit/clone inside S3, sort -T with its
# temporary files in S3, numpy np.save / np.load(mmap_mode='r' and 'r+'), mkstemp, a large
# object opened O_RDWR and patched in three places (only the touched ranges fetched: the
# per-endpoint statistics show it; S3TEST_STAGE_BIG_MIB, default 256, the issue's 1 GiB
# with S3TEST_STAGE_BIG_MIB=1024), two processes appending under flock and lockf, lock
# conflicts between processes, a forked child writing to a staged descriptor, readers
# seeing a live writer's bytes, the staging limit, a streaming writer that goes back after
# parts were sent, SIGKILL during an upload (nothing on the server, staging cleaned at the
# next start), write-behind of new staged files (parts sent while the program writes:
# rewritten parts, truncation, a second writer, unlink, its upload lost on the server, the
# server gone, SIGKILL; equal to a local copy byte for byte, no multipart upload left).
#
# Output: "ok - ..." / "not ok - ..." per check, then exactly one line "N passed, M failed".
set -u
export LC_ALL=C.UTF-8 TZ=UTC
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$here/../preamble.sh"
REPO=$TOP
# shellcheck source=../variant.sh
. "$REPO/tests/variant.sh" "s3shim S3 staging tests"
# shellcheck source=../report.sh
. "$REPO/tests/report.sh"
W=$(mktemp -d /var/tmp/s3shim-staging-test.XXXXXX)
BIG_MIB=${S3TEST_STAGE_BIG_MIB:-256}
TMO=120
PY=/usr/bin/python3
bgpids=()
cleanup() {
    local p
    for p in "${bgpids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    rm -rf "$W"
    declare -F s3rig_env_cleanup >/dev/null && s3rig_env_cleanup
}
trap cleanup EXIT
# shellcheck source=../s3rig/s3env.sh
. "$REPO/tests/s3rig/s3env.sh" || bail "no S3 server"
T0=$SECONDS

STAGE=$W/staging
B=/s3/$S3_BUCKET
S=$S3_BUCKET
# shim CMD...: under the shim, staging in $STAGE, the log in $W/log (appended).
shim() {
    S3SHIM_STAGING_DIR=$STAGE S3SHIM_LOG_FILE=$W/log timeout -k 5 "$TMO" env LD_PRELOAD="$PRELOAD" \
        "${SAN_ENV[@]}" "$@"
}
L=$W/local
mkdir -p "$L" "$W/src"
: >"$W/log"
have() { command -v "$1" >/dev/null 2>&1; }
staging_left() { find "$STAGE" -name '*.data' -o -name '*.map' 2>/dev/null | wc -l; }

# --- sqlite3 ---------------------------------------------------------------------------------
echo "# --- sqlite3"
if have sqlite3; then
    sqlite3 "$W/big.db" "create table t(id integer primary key, b blob, s text);
        with recursive c(i) as (select 1 union all select i+1 from c where i < 20000)
        insert into t select i, randomblob(900), 'row ' || i from c; create index ts on t(s);" 
    s3_put "$W/big.db" db/big.db >/dev/null
    Q="select count(*), sum(length(b)), max(s), (select s from t where id = 12345) from t;"
    sqlite3 "$W/big.db" "$Q" >"$W/q.want"
    etag() { s3_aws s3api head-object --bucket "$S" --key "$1" --query ETag --output text 2>&1; }
    e0=$(etag db/big.db)
    shim sqlite3 "$B/db/big.db" "$Q" >"$W/q.got" 2>"$W/q.err"
    if cmp -s "$W/q.want" "$W/q.got"; then pass "sqlite3 queries a $(($(stat -c %s "$W/big.db") >> 20)) MB database in S3"; else
        fail "sqlite3 queries a 20 MB database in S3" "$W/q.got" "$W/q.err"; fi
    check "opened O_RDWR and only read: nothing uploaded (same ETag)" test "$(etag db/big.db)" = "$e0"
    SQL="create table k(a integer primary key, b text); insert into k values (1,'one'),(2,'two'),(3,'three');
         update k set b = 'TWO' where a = 2; delete from k where a = 3; insert into k(b) select 'x' || a from k;"
    sqlite3 "$L/new.db" "$SQL"
    shim sqlite3 "$B/db/new.db" "$SQL" >"$W/s.err" 2>&1 || fail "sqlite3 creates, inserts, updates inside S3" "$W/s.err"
    sqlite3 "$L/new.db" .dump >"$W/dump.want"
    shim sqlite3 "$B/db/new.db" .dump >"$W/dump.got" 2>&1
    s3_get db/new.db "$W/new.fetched" >/dev/null
    sqlite3 "$W/new.fetched" .dump >"$W/dump.aws" 2>&1
    if cmp -s "$W/dump.want" "$W/dump.got" && cmp -s "$W/dump.want" "$W/dump.aws"; then
        pass "sqlite3 .dump of the database made in S3 = local = what a GET (curl) returns"
    else fail "sqlite3 .dump equal" "$W/dump.got" "$W/dump.aws"; fi
    shim sqlite3 "$B/db/big.db" "update t set s = 'patched' where id = 777;" >"$W/s.err" 2>&1
    s3_get db/big.db "$W/big.fetched" >/dev/null
    check "sqlite3 updates the 20 MB database in place; a GET (curl) returns the change" \
        test "$(sqlite3 "$W/big.fetched" "select s from t where id = 777; pragma integrity_check;" | tr '\n' ' ')" = "patched ok "
else
    fail "sqlite3 is installed (tests/install-deps.sh)"
fi

# --- zip, Python zipfile ---------------------------------------------------------------------
echo "# --- zip"
mkdir -p "$W/src/tree/sub"
head -c 300000 /dev/urandom >"$W/src/tree/sub/rand.bin"
seq 1 50000 >"$W/src/tree/seq.txt"
echo small >"$W/src/tree/sub/small.txt"
touch -d '2024-01-02 03:04:05' "$W/src/tree" "$W/src/tree/sub" "$W/src/tree"/* "$W/src/tree/sub"/*
if have zip && have unzip; then
    (cd "$W/src" && zip -qrX "$L/out.zip" tree)
    if (cd "$W/src" && shim zip -qrX "$B/zip/out.zip" tree) >"$W/z.err" 2>&1; then
        pass "zip -r writes an archive into S3 (its temporary file made with mkstemp)"
    else fail "zip -r into S3" "$W/z.err"; fi
    unzip -l "$L/out.zip" | sed '1d' >"$W/zl.want"
    shim unzip -l "$B/zip/out.zip" 2>&1 | sed '1d' >"$W/zl.got"
    if cmp -s "$W/zl.want" "$W/zl.got"; then pass "unzip -l of the archive in S3 = of the local one"; else
        fail "unzip -l equal" "$W/zl.got" "$W/z.err"; fi
    shim unzip -p "$B/zip/out.zip" tree/sub/rand.bin >"$W/zp.got" 2>&1
    check "unzip -p extracts a member from S3 byte for byte" cmp "$W/src/tree/sub/rand.bin" "$W/zp.got"
    s3_get zip/out.zip "$W/out.fetched" >/dev/null
    check "the archive a GET (curl) returns is the local zip's, byte for byte" cmp "$L/out.zip" "$W/out.fetched"
else
    fail "zip and unzip are installed (tests/install-deps.sh)"
fi
cat >"$W/pz.py" <<'EOF'
import os, sys, zipfile
p, src = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(p, 'w', compression=zipfile.ZIP_DEFLATED) as z:
    z.writestr('a.txt', 'hello ' * 1000)
    z.write(src, 'rand.bin')
    with z.open('streamed.bin', 'w') as w:  # sizes patched into the header afterwards
        for i in range(12):
            w.write(bytes([i]) * (1 << 20))
with zipfile.ZipFile(p) as z:
    assert z.testzip() is None
    print(sorted((i.filename, i.file_size, i.CRC) for i in z.infolist()))
EOF
$PY "$W/pz.py" "$L/py.zip" "$W/src/tree/sub/rand.bin" >"$W/pz.want" 2>&1
shim $PY "$W/pz.py" "$B/zip/py.zip" "$W/src/tree/sub/rand.bin" >"$W/pz.got" 2>&1
if cmp -s "$W/pz.want" "$W/pz.got"; then pass "Python zipfile writes (seeking back) and reads an archive in S3"; else
    fail "Python zipfile in S3" "$W/pz.got"; fi
s3_get zip/py.zip "$W/py.fetched" >/dev/null
check "Python zipfile: the archive a GET (curl) returns tests good, same members" \
    bash -c "$PY -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(sorted((i.filename, i.file_size, i.CRC) for i in z.infolist()))\" '$W/py.fetched' | cmp - '$W/pz.want'"

# --- tar rf / uf, appends --------------------------------------------------------------------
echo "# --- tar, appends"
(cd "$W/src" && tar cf "$L/t.tar" tree/seq.txt && tar rf "$L/t.tar" tree/sub/rand.bin)
(cd "$W/src" && shim tar cf "$B/tar/t.tar" tree/seq.txt && shim tar rf "$B/tar/t.tar" tree/sub/rand.bin) >"$W/t.err" 2>&1
check "tar rf appends to an archive in S3" test "$(shim tar tf "$B/tar/t.tar" 2>&1 | tr '\n' ' ')" = "tree/seq.txt tree/sub/rand.bin "
echo changed >>"$W/src/tree/seq.txt"
touch -d '2025-01-01' "$W/src/tree/seq.txt"
(cd "$W/src" && tar uf "$L/t.tar" tree/seq.txt tree/sub/rand.bin)
(cd "$W/src" && shim tar uf "$B/tar/t.tar" tree/seq.txt tree/sub/rand.bin) >>"$W/t.err" 2>&1
s3_get tar/t.tar "$W/t.fetched" >/dev/null
tar tvf "$L/t.tar" >"$W/tt.want"
tar tvf "$W/t.fetched" >"$W/tt.got" 2>&1
if cmp -s "$W/tt.want" "$W/tt.got" && cmp -s "$L/t.tar" "$W/t.fetched"; then
    pass "tar uf adds only the changed file; the archive a GET (curl) returns = the local one"
else fail "tar uf" "$W/tt.got" "$W/t.err"; fi
printf 'first\n' >"$L/app.txt"
s3_put "$L/app.txt" app/app.txt >/dev/null
cat >"$W/app.sh" <<'EOF'
f=$1
echo "builtin echo" >>"$f"
/bin/echo "exec'd echo" >>"$f"
seq 1 1000 >>"$f"
{ echo group; /bin/date -d @0 +%F; } >>"$f"
exec 3>>"$f"; /bin/echo "child via fd 3" >&3; /usr/bin/printf 'printf via fd 3\n' >&3; exec 3>&-
EOF
bash "$W/app.sh" "$L/app.txt"
shim bash "$W/app.sh" "$B/app/app.txt" >"$W/a.err" 2>&1
s3_get app/app.txt "$W/app.fetched" >/dev/null
if cmp -s "$L/app.txt" "$W/app.fetched"; then pass ">> appends (shell builtins and exec'd programs) = local"; else
    fail ">> appends" "$W/app.fetched" "$W/a.err"; fi

# --- git, sort -T ----------------------------------------------------------------------------
echo "# --- git, sort -T"
if have git; then
    G=(git -c user.email=t@example.com -c user.name=t -c init.defaultBranch=main -c gc.auto=0)
    mkdir -p "$W/gsrc" && (cd "$W/gsrc" && "${G[@]}" init -q && seq 1 100 >f && "${G[@]}" add f &&
        "${G[@]}" commit -qm one && echo two >>f && "${G[@]}" commit -qam two) >/dev/null 2>&1
    shim "${G[@]}" clone -q "$W/gsrc" "$B/git/clone" >"$W/g.err" 2>&1
    check "git clone into S3: same log" \
        test "$(shim "${G[@]}" -C "$B/git/clone" log --format=%H 2>&1 | tr '\n' ' ')" = "$(git -C "$W/gsrc" log --format=%H | tr '\n' ' ')"
    shim bash -c 'mkdir -p "$1" && cd "$1" && shift && "$@" init -q && seq 1 10 >f && "$@" add f && "$@" commit -qm c1 &&
        echo more >>f && "$@" commit -qam c2 && "$@" fsck --strict' _ "$B/git/made" "${G[@]}" >"$W/g2.err" 2>&1
    check "git init, add, commit twice and fsck inside S3" test "$(shim "${G[@]}" -C "$B/git/made" log --format=%s 2>/dev/null | tr '\n' ' ')" = "c2 c1 "
    shim "${G[@]}" clone -q "$B/git/made" "$W/gout" >"$W/g3.err" 2>&1
    check "git clone out of S3 into a local directory" test "$(cat "$W/gout/f" 2>&1 | tail -1)" = more
else
    fail "git is installed (tests/install-deps.sh)"
fi
seq 1 400000 | shuf --random-source=<(yes) >"$W/sortin"
sort -S 1M "$W/sortin" >"$W/sort.want"
shim bash -c "mkdir -p '$B/sorttmp' && sort -S 1M -T '$B/sorttmp' '$W/sortin' >'$W/sort.got'" >"$W/so.err" 2>&1
check "sort -T with its temporary files in S3 = local sort" cmp "$W/sort.want" "$W/sort.got"
check "sort removed its temporary files from S3" test -z "$(s3_ls sorttmp/ | grep -v '/$')"

# --- numpy, mkstemp, mmap --------------------------------------------------------------------
echo "# --- numpy, mkstemp"
if $PY -c 'import numpy' 2>/dev/null; then
    cat >"$W/np.py" <<'EOF'
import numpy as np, sys
p = sys.argv[1]
a = np.arange(2_000_000, dtype=np.float64).reshape(1000, 2000)
np.save(p, a)
m = np.load(p, mmap_mode='r')
assert type(m).__name__ == 'memmap' and (m == a).all()
w = np.load(p, mmap_mode='r+'); w[3, 4] = -1.5; w.flush(); del w, m
b = np.load(p)
print(b.shape, b[3, 4], b.sum())
EOF
    $PY "$W/np.py" "$L/a.npy" >"$W/np.want" 2>&1
    shim $PY "$W/np.py" "$B/np/a.npy" >"$W/np.got" 2>&1
    s3_get np/a.npy "$W/np.fetched" >/dev/null
    if cmp -s "$W/np.want" "$W/np.got" && cmp -s "$L/a.npy" "$W/np.fetched"; then
        pass "numpy save, load(mmap_mode='r') and a MAP_SHARED write (r+) in S3; a GET (curl) returns the same file"
    else fail "numpy" "$W/np.got"; fi
else
    fail "python3-numpy is installed (tests/install-deps.sh)"
fi
cat >"$W/mk.py" <<'EOF'
import os, sys, tempfile
fd, name = tempfile.mkstemp(dir=sys.argv[1], suffix='.tmp')
os.write(fd, b'0123456789'); os.lseek(fd, 2, 0); os.write(fd, b'ab'); os.ftruncate(fd, 8)
os.lseek(fd, 0, 0); data = os.read(fd, 100); st = os.fstat(fd); os.close(fd)
print(data, st.st_size, os.stat(name).st_size)
os.rename(name, sys.argv[1] + '/kept.bin')
EOF
shim $PY "$W/mk.py" "$B/mk" >"$W/mk.got" 2>&1
s3_get mk/kept.bin "$W/mk.fetched" >/dev/null 2>&1
check "mkstemp in S3: write, seek back, ftruncate, read, fstat, rename" \
    test "$(cat "$W/mk.got")/$(cat "$W/mk.fetched" 2>/dev/null)" = "b'01ab4567' 8 8/01ab4567"

# A successful call leaves errno alone while a file is staged: the staging lookups of
# every other name meet ENOENT (tests/integration/py_errno.py; CI once caught a stat that
# returned 0 with errno ENOENT while another test's process had a file staged).
mkdir -p "$L/errno/sub/a"
echo hello >"$L/errno/hello.txt"
head -c 300000 /dev/urandom >"$L/errno/big.bin"
shim cp -r "$L/errno" "$B/" 2>"$W/errno.err"
(cd "$L/errno" && $PY "$REPO/tests/integration/py_errno.py") >"$W/errno.want" 2>&1
shim $PY "$REPO/tests/integration/py_errno.py" "$B/errno" >"$W/errno.got" 2>&1
if cmp -s "$W/errno.want" "$W/errno.got" && ! grep -qv "errno kept" "$W/errno.want"; then
    pass "a successful call in S3 leaves errno alone while a file is staged ($(wc -l <"$W/errno.want") calls)"
else
    fail "a successful call in S3 leaves errno alone while a file is staged" "$(diff "$W/errno.want" "$W/errno.got" | head -20)"
fi

# POSIX AIO (served by the engine) on a staged object, and Linux AIO (fio libaio), which
# has no kernel file to reach here: EBADF with the reason in the log.
mkdir -p "$L/aio"
if shim "$BUILD/tests/aio_calls" "$B/aio" "$L/aio" >"$W/aio.got" 2>&1 && s3_get aio/aio.bin "$W/aio.fetched" >/dev/null 2>&1 &&
    [ "$(stat -c %s "$W/aio.fetched")" = $((3 * 65536 + 1234 + 4)) ]; then
    pass "POSIX AIO on an S3 object: aio_read/write/fsync/cancel, lio_listio, notifications, uploaded: $(tail -1 "$W/aio.got")"
else fail "POSIX AIO on an S3 object (aio_calls)" "$W/aio.got"; fi
shim fio --name=kio --filename="$B/aio/fio" --rw=randwrite --bs=4k --size=1M --ioengine=libaio --iodepth=4 >"$W/fio.got" 2>&1
if grep -q 'Bad file descriptor' "$W/fio.got" && grep -q 'fail with EBADF: s3:// keeps no kernel file' "$W/log"; then
    pass "fio libaio on S3: EBADF, with one line saying s3:// keeps no kernel file"
else fail "fio libaio on S3: EBADF and the reason" "$W/fio.got" "$(tail -3 "$W/log")"; fi

# msync of a shared writable mapping is a commit point, as fsync: the object is on the
# server after it, while the file is still open and mapped.
cat >"$W/ms.py" <<'EOF'
import mmap, os, subprocess, sys
p, fetch = sys.argv[1], sys.argv[2:]
with open(p, "wb") as f: f.write(b"a" * 10000)
env = dict(os.environ); env.pop("LD_PRELOAD", None)
def server(): return subprocess.run(fetch, capture_output=True, env=env).stdout[:6]
f = open(p, "r+b"); m = mmap.mmap(f.fileno(), 0)
m[0:5] = b"HELLO"
before = server()
m.flush()
print(before, server())
m.close(); f.close()
EOF
shim $PY "$W/ms.py" "$B/ms/m" env AWS_CONFIG_FILE="${S3RIG_AWS_CONFIG:-/dev/null}" AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    /usr/bin/aws --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --only-show-errors "s3://$S3_BUCKET/ms/m" - >"$W/ms.got" 2>&1
check "msync commits a staged object: the server has the mapping's bytes after it, before the close" \
    test "$(cat "$W/ms.got")" = "b'aaaaaa' b'HELLOa'"

# --- a large object patched in three places --------------------------------------------------
echo "# --- ${BIG_MIB} MiB object patched in place"
# moved STATS_FILE: "FETCHED SENT", the bytes the run's S3 requests read and wrote ("x x"
# if the stats file cannot be read).
moved() {
    $PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
r = w = 0
for m in d["mounts"]:
    for c in m.get("children", []):
        r += c["ops"].get("read", {}).get("bytes", 0); w += c["ops"].get("write", {}).get("bytes", 0)
print(r, w)' "$1" 2>/dev/null || echo x x
}
# patched NAME DESC: $W/NAME.py run on the staged object through the shim and on the local
# copy; DESC checks that the server's object is then the local one; got and sent are what
# the shim's run moved.
patched() {
    S3SHIM_STATS_FILE=$W/$1.json shim $PY "$W/$1.py" "$B/big/big.bin" >"$W/$1.err" 2>&1
    $PY "$W/$1.py" "$W/big.bin"
    s3_get big/big.bin "$W/big.fetched" >/dev/null
    check "$2" cmp "$W/big.bin" "$W/big.fetched"
    read -r got sent <<<"$(moved "$W/$1.json")"
}
head -c $((BIG_MIB << 20)) /dev/urandom >"$W/big.bin"
s3_put "$W/big.bin" big/big.bin >/dev/null
cat >"$W/patch.py" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
for off in (100, size // 2 + 12345, size - 50):
    os.pwrite(fd, b'PATCHED!', off)
os.close(fd)
EOF
patched patch "${BIG_MIB} MiB object opened O_RDWR and patched in three places = the same patch locally"
if [ "$got" != x ] && [ "$got" -lt $(((BIG_MIB << 20) / 8)) ]; then
    pass "only the touched ranges travel: $((got >> 20)) MiB fetched, $((sent >> 20)) MiB sent of $BIG_MIB MiB (the rest copied on the server)"
else fail "only the touched ranges fetched (stats: read $got, sent $sent bytes)" "$W/patch.err"; fi
# A program that reads the whole object and then patches one place (sqlite3 finding the
# rows it updates): the blocks it read are the source's, copied on the server, so only a
# part around the patch is sent (5 MiB, S3's smallest part); the unchanged runs are copied
# in parallel parts.
cat >"$W/readpatch.py" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
size = os.fstat(fd).st_size
off = 0
while off < size:
    off += len(os.pread(fd, 1 << 20, off))
os.pwrite(fd, b'READ, THEN PATCHED', size // 2 + 777)
os.close(fd)
EOF
patched readpatch "read whole, then patched in one place = the same locally"
if [ "$sent" != x ] && [ "$sent" -le $((5 << 20)) ] && [ "$got" -ge $(((BIG_MIB - 1) << 20)) ]; then
    pass "read whole, patched once: $((got >> 20)) MiB fetched, $((sent >> 10)) KiB sent (one 5 MiB part; what was only read is copied on the server)"
else fail "read whole, patched once: want at most 5 MiB sent (stats: read $got, sent $sent bytes)" "$W/readpatch.err"; fi
# A program reading a staged object front to back in small reads (sqlite3's full-table scan,
# 4 KiB preads) gets its window fetched ahead in parallel ranges of 4 MiB while it reads,
# not block by block as the window slides (one GET per 1 MiB).
# The window's bytes go from memory to the reader, not through the staging file (which
# holds only the first block, fetched before the reader was seen to be sequential): the
# script prints the data file's allocated bytes before it closes.
cat >"$W/seqread.py" <<'EOF'
import glob, hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
h, off = hashlib.sha256(), 0
while True:
    b = os.pread(fd, 4096, off)
    if not b:
        break
    h.update(b)
    off += len(b)
alloc = sum(os.stat(f).st_blocks * 512 for f in glob.glob(sys.argv[2] + "/*.data"))
os.close(fd)
print(h.hexdigest())
print(alloc)
EOF
S3SHIM_STATS_FILE=$W/seq.json shim $PY "$W/seqread.py" "$B/big/big.bin" "$STAGE" >"$W/seq.out" 2>"$W/seq.err"
head -n 1 "$W/seq.out" >"$W/seq.got"
gets=$($PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(c["ops"].get("read", {}).get("count", 0) for m in d["mounts"] for c in m.get("children", [])))' "$W/seq.json" 2>/dev/null || echo x)
if [ "$(cat "$W/seq.got")" = "$(sha256sum <"$W/big.bin" | cut -c1-64)" ] && [ "$gets" != x ] &&
    [ "$gets" -le $((10 + BIG_MIB / 4)) ]; then
    pass "a staged ${BIG_MIB} MiB object read front to back in 4 KiB preads: its bytes, in $gets GETs"
else fail "a staged object read front to back: its bytes in at most $((10 + BIG_MIB / 4)) GETs (got $gets)" "$W/seq.err"; fi
alloc=$(sed -n 2p "$W/seq.out")
if [ -n "$alloc" ] && [ "$alloc" -le $((2 << 20)) ]; then
    pass "... and the staging file holds $((alloc >> 10)) KiB of it meanwhile (the window's bytes stay in memory)"
else fail "a staged object read front to back: at most 2 MiB in the staging file (got '$alloc' bytes)" "$W/seq.err"; fi
# While that window is in flight (2 MiB read in 64 KiB preads: 64 MiB started), another
# descriptor of the object writes into it (part of a block, a whole block) or truncates it;
# a child forked then reads it all, or the reader closes at once; or the object is replaced
# on the server. Arrived bytes never overwrite what was written or truncated away meanwhile;
# each case is compared with the same program on a local file, and what the server ends
# with is what the local file holds.
head -c $((96 << 20)) "$W/big.bin" >"$W/win.bin"
cat >"$W/window.py" <<'EOF'
import hashlib, os, sys
p, mode = sys.argv[1], sys.argv[2]
fd1, fd2 = os.open(p, os.O_RDWR), os.open(p, os.O_RDWR)
off = 0
while off < 2 << 20:
    off += len(os.pread(fd1, 65536, off))
if mode == "write":
    os.pwrite(fd2, b"X" * 100, (10 << 20) + 100)
    os.pwrite(fd2, b"Y" * (1 << 20), 12 << 20)
elif mode == "truncate":
    os.ftruncate(fd2, (6 << 20) + 7)  # inside a 4 MiB fetch of the window ([5, 9) MiB)
elif mode == "close":
    os.close(fd1)
    print("closed")
    sys.exit(0)
elif mode == "replaced":
    print("ready", flush=True)
    open(sys.argv[3]).readline()
def say(*words):  # one write per line: a parent and its child share this output
    os.write(1, (" ".join(str(w) for w in words) + "\n").encode())
def rest(tag):
    h, off = hashlib.sha256(), 0
    try:
        while True:
            b = os.pread(fd1, 65536, off)
            if not b:
                break
            h.update(b)
            off += len(b)
        say(tag, off, h.hexdigest())
    except OSError as e:
        say(tag, "errno", e.errno, "after", off, h.hexdigest())
if mode == "fork":
    pid = os.fork()
    rest("child" if pid == 0 else "parent")
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
else:
    rest(mode)
os.close(fd2)
os.close(fd1)
EOF
win_case() { # win_case MODE KEY: the script on $B/KEY (a copy of win.bin) and on a local copy
    cp "$W/win.bin" "$W/win.local"
    $PY "$W/window.py" "$W/win.local" "$1" >"$W/win.want" 2>&1
    shim $PY "$W/window.py" "$B/$2" "$1" >"$W/win.got" 2>"$W/win.err"
}
for k in w t r e; do s3_put "$W/win.bin" "big/win-$k.bin" >/dev/null || fail "upload big/win-$k.bin"; done
for c in write:win-w truncate:win-t; do
    win_case "${c%%:*}" "big/${c#*:}.bin"
    s3_get "big/${c#*:}.bin" "$W/win.fetched" >/dev/null 2>&1
    if cmp -s "$W/win.want" "$W/win.got" && cmp -s "$W/win.local" "$W/win.fetched"; then
        pass "a sequential reader's window in flight, another descriptor ${c%%:*}s into it: reads and the uploaded object = local ($(cut -d' ' -f2 "$W/win.got") bytes)"
    else fail "the window in flight and a ${c%%:*} through another descriptor (want: $(cat "$W/win.want"))" "$W/win.got" "$W/win.err"; fi
done
win_case fork big/win-r.bin
# (the child and the parent print in either order)
if [ "$(sort "$W/win.want")" = "$(sort "$W/win.got")" ]; then pass "a sequential reader's window in flight across fork: the child and the parent read the object's bytes"
else fail "the window in flight across fork (want: $(tr '\n' ' ' <"$W/win.want"))" "$W/win.got" "$W/win.err"; fi
win_case close big/win-r.bin
check "a reader closing with its window in flight: close returns, nothing logged" test "$(cat "$W/win.got")" = closed -a ! -s "$W/win.err"
mkfifo "$W/win.go"
head -c $((96 << 20)) /dev/urandom >"$W/win.other"
shim $PY "$W/window.py" "$B/big/win-e.bin" replaced "$W/win.go" >"$W/win.got" 2>"$W/win.err" &
wpid=$!
bgpids+=("$wpid")
for _ in $(seq 600); do grep -q ready "$W/win.got" 2>/dev/null && break; sleep 0.1; done
s3_put "$W/win.other" big/win-e.bin >/dev/null
echo go >"$W/win.go"
wait "$wpid"
read -r _ _ eno _ after hash <<<"$(tail -1 "$W/win.got")"
if [ "$eno" = 5 ] && [ "$after" -ge $((2 << 20)) ] && [ "$hash" = "$(head -c "$after" "$W/win.bin" | sha256sum | cut -c1-64)" ] &&
    grep -q "changed on the server while it was staged" "$W/log"; then
    pass "the object replaced on the server under a reader's window: EIO after $((after >> 20)) MiB of the old bytes (what had arrived), one log line"
else fail "the object replaced under the window: EIO after the old bytes only" "$W/win.got" "$W/win.err"; fi
rm -f "$W/win."*
rm -f "$W/big.bin" "$W/big.fetched"

# --- several processes ------------------------------------------------------------------------
echo "# --- several processes"
cat >"$W/app.py" <<'EOF'
import fcntl, sys
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, 'a') as f:
    for i in range(n):
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(f'{tag} {i:05d}\n'); f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)
for i in range(5):  # open, lockf, append, close: every close uploads
    with open(path, 'a') as f:
        fcntl.lockf(f, fcntl.LOCK_EX); f.write(f'{tag} re{i}\n'); f.flush(); fcntl.lockf(f, fcntl.LOCK_UN)
EOF
shim $PY "$W/app.py" "$B/multi/log" A 400 >"$W/m1.err" 2>&1 &
p1=$!
shim $PY "$W/app.py" "$B/multi/log" B 400 >"$W/m2.err" 2>&1 &
p2=$!
wait $p1
r1=$?
wait $p2
r2=$?
s3_get multi/log "$W/multi.fetched" >/dev/null
got="$(wc -l <"$W/multi.fetched") $(grep -c '^A ' "$W/multi.fetched") $(sort "$W/multi.fetched" | uniq -d | wc -l)"
if [ "$got" = "810 405 0" ]; then pass "two processes append under flock/lockf: 810 whole lines, none lost ($r1/$r2)"; else
    # what is missing: the last lines of each writer the server has, and the writers' output
    { echo "lines, lines of A, duplicates: $got (want 810 405 0); exit statuses $r1/$r2"
      echo "last of A: $(grep '^A ' "$W/multi.fetched" | tail -n 2 | tr '\n' ' ')"
      echo "last of B: $(grep '^B ' "$W/multi.fetched" | tail -n 2 | tr '\n' ' ')"
      cat "$W/m1.err" "$W/m2.err"; grep -i 'multi/log' "$W/log" | tail -n 8; } >"$W/multi.why" 2>&1
    fail "two processes append under flock/lockf: 810 whole lines, none lost" "$W/multi.why"
fi
# Appenders without locks: the processes of the host share the object's staging file, and
# each append finds its end under the staging header's lock (an fstat, then a pwrite in
# each, let two write at one end: up to 29 lines of 1,200 lost, some mangled).
cat >"$W/logs.py" <<'EOF2'
import logging, multiprocessing as mp, sys
def work(i, p):
    lg = logging.getLogger("w%d" % i); h = logging.FileHandler(p); lg.addHandler(h); lg.setLevel(logging.INFO)
    for j in range(200): lg.info("worker %d line %d", i, j)
    h.close()
if __name__ == "__main__":
    ps = [mp.Process(target=work, args=(i, sys.argv[1])) for i in range(4)]
    [q.start() for q in ps]; [q.join() for q in ps]
EOF2
shim $PY "$W/logs.py" "$B/multi/app.log" >"$W/logs.err" 2>&1
shim bash -c 'for i in 1 2 3 4; do ( for j in $(seq 1 60); do echo "$i $j" >> "$1/multi/sh.log"; done ) & done; wait' _ "$B" >>"$W/logs.err" 2>&1
s3_get multi/app.log "$W/app.fetched" >/dev/null
s3_get multi/sh.log "$W/sh.fetched" >/dev/null
got="$(sort -u "$W/app.fetched" | wc -l) $(wc -l <"$W/app.fetched") $(sort -u "$W/sh.fetched" | wc -l) $(wc -l <"$W/sh.fetched")"
if [ "$got" = "800 800 240 240" ]; then
    pass "appenders in several processes without locks (python logging in 4, bash >> in 4): every line there, once"
else { echo "distinct/lines: $got (want 800 800 240 240)"; cat "$W/logs.err"; } >"$W/logs.why"
    fail "appenders in several processes without locks" "$W/logs.why"; fi
cat >"$W/live.py" <<'EOF'
import os, subprocess, sys
p = sys.argv[1]
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
os.write(fd, b'written, not closed yet\n')
# another process of this host sees the bytes (stat and read) before any upload
out = subprocess.run(['/bin/sh', '-c', 'stat -c %s "$1"; cat "$1"', '_', p], capture_output=True, text=True).stdout
os.close(fd)
print(out, end='')
EOF
shim $PY "$W/live.py" "$B/live/obj" >"$W/live.got" 2>&1
check "a reader in another process sees a live O_RDWR writer's bytes (stat and read)" \
    test "$(tr '\n' '|' <"$W/live.got")" = "24|written, not closed yet|"

cat >"$W/lock.py" <<'EOF'
import fcntl, subprocess, sys
p = sys.argv[1]
other = """
import fcntl, sys
r = []
for how, op in (("lockf", fcntl.lockf), ("flock", fcntl.flock)):
    g = open(sys.argv[1], "r+")
    try:
        op(g, fcntl.LOCK_EX | fcntl.LOCK_NB); r.append(how + " got it")
    except BlockingIOError: r.append(how + " busy")
print(", ".join(r))
"""
f = open(p, 'a+')
fcntl.lockf(f, fcntl.LOCK_EX)  # fcntl F_SETLKW
print(subprocess.run([sys.executable, '-c', other, p], capture_output=True, text=True).stdout.strip())
fcntl.lockf(f, fcntl.LOCK_UN)
fcntl.flock(f, fcntl.LOCK_EX)
print(subprocess.run([sys.executable, '-c', other, p], capture_output=True, text=True).stdout.strip())
EOF
shim $PY "$W/lock.py" "$B/lock/obj" >"$W/lock.got" 2>&1
check "fcntl and flock locks on an S3 file conflict between processes as on a local file" \
    test "$(tr '\n' '|' <"$W/lock.got")" = "lockf busy, flock got it|lockf got it, flock busy|"
# Lock files go with their last user: none left once the lockers above are gone; one left
# by a locker killed with SIGKILL is removed by the next process that looks at staging.
locks_left() { find "$STAGE" -name '*.lock' ! -name .lock 2>/dev/null | wc -l; }
n_after=$(locks_left)
S3SHIM_STAGING_DIR=$STAGE S3SHIM_LOG_FILE=$W/log LD_PRELOAD="$PRELOAD" env "${SAN_ENV[@]}" $PY -c '
import fcntl, os, sys, time
f = open(sys.argv[1], "r"); fcntl.flock(f, fcntl.LOCK_SH)
print("locked", flush=True); time.sleep(60)' "$B/lock/obj" >"$W/lockkill.out" 2>&1 &
kp=$!
bgpids+=("$kp")
for _ in $(seq 100); do grep -q locked "$W/lockkill.out" && break; sleep 0.1; done
n_held=$(locks_left)
kill -KILL "$kp" 2>/dev/null
wait "$kp" 2>/dev/null
n_killed=$(locks_left)
shim stat -c %s "$B/lock/obj" >/dev/null 2>&1
check "lock files: none left after their users closed ($n_after); one while held ($n_held), still there after SIGKILL ($n_killed), removed by the next process (0)" \
    test "$n_after $n_held $n_killed $(locks_left)" = "0 1 1 0"
shim $PY -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC)
os.write(fd, b"parent1\n")
pid = os.fork()
if pid == 0:
    os.write(fd, b"child\n"); os.close(fd); os._exit(0)
os.waitpid(pid, 0)
os.write(fd, b"parent2\n"); os.close(fd)' "$B/fork/obj" >"$W/fork.err" 2>&1
check "a forked child writes through the inherited staged descriptor" \
    test "$(s3_get fork/obj /dev/stdout 2>/dev/null | tr '\n' ' ')" = "parent1 child parent2 "

# subprocess with a staged file open: the child closes what it inherited before exec and
# must not upload it (it did not change it); the parent's close uploads once.
shim $PY -c '
import os, subprocess, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC)
os.write(fd, b"by the parent\n")
subprocess.run(["true"], check=True)
subprocess.run(["sh", "-c", "cat \"$1\"", "_", sys.argv[1]], check=True)
os.close(fd)' "$B/sub/obj" >"$W/sub.got" 2>"$W/sub.err"
check "a program with a staged file open runs subprocesses: they read its bytes, their pre-exec closes upload nothing and log nothing" \
    test "$(cat "$W/sub.got")|$(s3_get sub/obj /dev/stdout 2>/dev/null)|$(grep -c 'sub/obj' "$W/log")|$(wc -c <"$W/sub.err")" = "by the parent|by the parent|0|0"
# A streaming upload (O_WRONLY|O_TRUNC) a shell keeps on fd 3 while its children write to
# it too: staged when the shell forks, so every process writes into the same bytes.
cat >"$W/fd3.sh" <<'EOF'
exec 3>"$1"
/bin/echo first-by-a-program >&3
echo then-a-builtin >&3
( echo from-a-subshell >&3 )
printf '%s\n' more >&3
{ echo grouped; /bin/echo and-exec; } >&3
exec 3>&-
EOF
bash "$W/fd3.sh" "$L/fd3.txt"
shim bash "$W/fd3.sh" "$B/fd3/out" >"$W/fd3.err" 2>&1
s3_get fd3/out "$W/fd3.fetched" >/dev/null
if cmp -s "$L/fd3.txt" "$W/fd3.fetched" && [ ! -s "$W/fd3.err" ] && ! grep -q "fd3/out" "$W/log"; then
    pass "exec 3>/s3/..., then programs, builtins and a subshell write through fd 3 in turn: the object = local"
else fail "writes of a shell and its children through one fd 3" "$W/fd3.fetched" "$W/fd3.err"; fi
# The parent already sent parts (6 MiB > 5 MiB parts) when it forks: its upload stays its
# own; the child's write fails with a clear error and the parent's object is whole.
S3SHIM_PART_SIZE=5M shim $PY -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.set_inheritable(fd, True)
os.write(fd, b"p" * (6 << 20))
pid = os.fork()
if pid == 0:
    try: os.write(fd, b"child"); os._exit(0)
    except OSError as e: os._exit(e.errno)
_, st = os.waitpid(pid, 0)
os.write(fd, b"end"); os.close(fd)
print(os.waitstatus_to_exitcode(st))' "$B/fork/big" >"$W/forkbig.got" 2>"$W/forkbig.err"
check "a child cannot write to an upload whose parts its parent already sent: EBADF, logged; the parent's object is whole" \
    test "$(cat "$W/forkbig.got") $(grep -c 'fork/big: a forked child cannot write' "$W/log") $(s3_get fork/big /dev/stdout 2>/dev/null | wc -c)" = "9 1 $(((6 << 20) + 3))"

# --- listings of what is staged here ---------------------------------------------------------------
echo "# --- listings"
# Objects a live process created O_RDWR and has not uploaded yet exist for the host's
# other processes: in readdir of their directory (once, also when the server has the key
# too), their directories too (stat, cd, find); not after unlink; not in another prefix.
echo hello >"$W/src/both.txt"
s3_put "$W/src/both.txt" ls/both.txt >/dev/null
shim $PY -c '
import os, subprocess, sys
b = sys.argv[1]
fds = [os.open(b + p, os.O_RDWR | os.O_CREAT) for p in ("/ls/new.txt", "/ls/sub/deep/x.bin", "/ls/both.txt", "/ls/gone.txt", "/lsother/y")]
os.write(fds[0], b"twelve bytes")
os.unlink(b + "/ls/gone.txt")
out = subprocess.run(["ls", "-1F", b + "/ls", b + "/ls/sub"], capture_output=True, text=True)
print(out.stdout.strip().replace(b, "B").replace("\n", " "), "|", out.returncode)
print(subprocess.run(["find", b + "/ls/sub"], capture_output=True, text=True).stdout.strip().replace(b, "B").replace("\n", " "))
print(os.stat(b + "/ls/new.txt").st_size, os.path.isdir(b + "/ls/sub/deep"), sorted(os.listdir(b + "/ls/sub/deep")))
for fd in fds: os.close(fd)
print(sorted(os.listdir(b + "/ls")), sorted(os.listdir(b + "/ls/sub/deep")))
' "$B" >"$W/ls.got" 2>"$W/ls.err"
cat >"$W/ls.want" <<'EOF'
B/ls: both.txt new.txt sub/  B/ls/sub: deep/ | 0
B/ls/sub B/ls/sub/deep B/ls/sub/deep/x.bin
12 True ['x.bin']
['both.txt', 'new.txt', 'sub'] ['x.bin']
EOF
if cmp -s "$W/ls.want" "$W/ls.got"; then
    pass "staged keys not uploaded yet are listed (ls, find, listdir; their directories stat and list; once; not after unlink)"
else fail "staged keys not uploaded yet are listed" "$(diff "$W/ls.want" "$W/ls.got")" "$W/ls.err"; fi

# --- limits and errors ---------------------------------------------------------------------------
echo "# --- limits and errors"
head -c $((12 << 20)) /dev/urandom >"$W/twelve"
s3_put "$W/twelve" lim/twelve >/dev/null
: >"$W/log"
S3SHIM_STAGING_LIMIT=8M shim $PY -c '
import os, sys
try:
    os.open(sys.argv[1] + "/lim/twelve", os.O_RDWR); print("opened")
except OSError as e: print(e.errno)
fd = os.open(sys.argv[1] + "/lim/new", os.O_RDWR | os.O_CREAT)
try:
    for i in range(20): os.write(fd, b"x" * (1 << 20))
except OSError as e: print(e.errno, i)
os.close(fd)' "$B" >"$W/lim.got" 2>&1
check "an object larger than S3SHIM_STAGING_LIMIT opened O_RDWR: ENOSPC; writing past the limit: ENOSPC" \
    test "$(tr '\n' ' ' <"$W/lim.got")" = "28 28 8 "
check "one log line names the object and S3SHIM_STAGING_LIMIT" grep -q "lim/twelve.*S3SHIM_STAGING_LIMIT" "$W/log"
check "what was written below the limit is on the server" test "$(s3_aws s3api head-object --bucket "$S" --key lim/new --query ContentLength --output text 2>&1)" = 8388608
: >"$W/log"
shim $PY -c '
import sys
f = open(sys.argv[1], "wb"); f.write(b"a" * (20 << 20)); f.seek(5)
try: f.write(b"b"); f.flush(); print("no error")
except OSError as e: print(e.errno)
try: f.close(); print("closed")
except OSError as e: print(e.errno)' "$B/seq/back" >"$W/back.got" 2>&1
check "a streaming writer going back after parts were sent: EINVAL, close EIO, nothing on the server" \
    test "$(tr '\n' ' ' <"$W/back.got")$(s3_ls seq/ | wc -l)" = "22 5 0"
check "... and one log line says what to do (O_RDWR or S3SHIM_PART_SIZE)" grep -q "seq/back.*O_RDWR.*S3SHIM_PART_SIZE" "$W/log"
shim $PY -c '
import sys
f = open(sys.argv[1], "wb"); f.write(b"a" * 1000); f.seek(10); f.write(b"BB"); f.truncate(500); f.close()' "$B/seq/small" >"$W/sm.err" 2>&1
check "a streaming writer going back before any part was sent is staged: right bytes" \
    test "$(s3_get seq/small /dev/stdout 2>/dev/null | md5sum)" = "$(head -c 500 < <(printf 'a%.0s' $(seq 10); printf BB; printf 'a%.0s' $(seq 988)) | md5sum)"

# --- SIGKILL during an upload -------------------------------------------------------------------
echo "# --- SIGKILL during an upload"
cat >"$W/kill.py" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
blk = os.urandom(1 << 20)
for i in range(int(sys.argv[2])):
    os.write(fd, blk)
print('closing', flush=True)
os.close(fd)
print('closed', flush=True)
EOF
: >"$W/log"
S3SHIM_CONCURRENCY=2 S3SHIM_STAGING_DIR=$STAGE S3SHIM_LOG_FILE=$W/log LD_PRELOAD="$PRELOAD" env "${SAN_ENV[@]}" \
    $PY "$W/kill.py" "$B/kill/obj" 160 >"$W/kill.out" 2>&1 &
kp=$!
bgpids+=("$kp")
for _ in $(seq 3000); do grep -q closing "$W/kill.out" 2>/dev/null && break; sleep 0.01; done
kill -KILL "$kp" 2>/dev/null
wait "$kp" 2>/dev/null
check "killed during its close: it never reported the close done" grep -qx closing "$W/kill.out"
check "... and never finished it" test "$(grep -c closed "$W/kill.out")" = 0
check "nothing partial on the server" test -z "$(s3_ls kill/)"
check "its staging files are left behind" test "$(staging_left)" -ge 2
shim sh -c "echo next >>'$B/kill/other'" >/dev/null 2>&1
check "the next start removes them, with a log line" test "$(staging_left)" = 0 -a -n "$(grep 'ended without closing' "$W/log")"

# --- write-behind -------------------------------------------------------------------------------
# A new staged file (O_RDWR, mkstemp) sends the parts the program has moved past while it
# writes; close sends only the rest and the parts written again, then completes. Nothing may
# change the result: every case is compared byte for byte with the same writes on a local
# file, and no multipart upload may be left on the server.
echo "# --- write-behind"
cat >"$W/wb.py" <<'EOF'
import os, subprocess, sys, time
mode, path, local = sys.argv[1], sys.argv[2], sys.argv[3]
M = 1 << 20
fds = {}
def blk(i): return bytes([(i * 7 + j) % 251 for j in range(256)]) * (M // 256)
for p in (path, local):
    fds[p] = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
def wr(n, start=0):
    for i in range(start, start + n):
        for p in (path, local): os.write(fds[p], blk(i))
def pw(data, off):
    for p in (path, local): os.pwrite(fds[p], data, off)
wr(24)                              # parts of 5 MiB: 0-3 sent while writing
if mode == "rewrite":               # early parts written again after they were sent, then more
    pw(b"HEADER" * 100, 10); pw(b"Z" * 70000, 11 * M - 5); wr(9, 24); pw(b"end", 33 * M - 1)
elif mode == "truncate":            # smaller than what was sent, then grown again
    for p in (path, local): os.ftruncate(fds[p], 7 * M + 3); os.lseek(fds[p], 0, os.SEEK_END)
    wr(6, 40)
elif mode == "small":               # ends up one part: one PUT
    for p in (path, local): os.ftruncate(fds[p], 3 * M)
elif mode == "append":              # another process appends to the object while this one writes
    subprocess.run([sys.executable, "-c", "import os,sys\nfd=os.open(sys.argv[1],os.O_WRONLY|os.O_APPEND)\n"
                    "os.write(fd,b'appended'*1000)\nos.close(fd)", path], check=True)
    fd = os.open(local, os.O_WRONLY | os.O_APPEND); os.write(fd, b'appended' * 1000); os.close(fd)
    for p in (path, local): os.lseek(fds[p], 0, os.SEEK_END)
    wr(8, 60); pw(b"patch", 2 * M)
elif mode == "abort":               # the upload disappears on the server: parts fail, close still right
    subprocess.run(["sh", "-c", sys.argv[4]], check=True)
    wr(16, 24); pw(b"after", 4)
elif mode == "kill":
    print("written", flush=True); time.sleep(600)
elif mode == "unlink":
    os.unlink(path); os.unlink(local)
elif mode == "hold":                # stay open until the test says
    print("written", flush=True)
    while not os.path.exists(sys.argv[4]): time.sleep(0.05)
    pw(b"more", 1)
err = None
for p in (path, local):
    try: os.close(fds[p])
    except OSError as e: err = e.errno
print("closed", err, flush=True)
EOF
wbrun() { # wbrun MODE NAME [ARG]: the script on /s3 and on a local file, the log in $W/log
    : >"$W/log"
    S3SHIM_PART_SIZE=5M S3SHIM_LOG=debug shim $PY "$W/wb.py" "$1" "$B/wb/$2" "$L/wb-$2" "${3:-}" >"$W/wb-$2.out" 2>&1
}
same_as_local() { # the object on the server equals the local file
    s3_get "wb/$1" "$W/wb-$1.got" >/dev/null 2>&1 && cmp -s "$W/wb-$1.got" "$L/wb-$1"
}
for mode in rewrite truncate small append; do
    wbrun $mode $mode
    check "write-behind, $mode: close returns 0" grep -qx "closed None" "$W/wb-$mode.out"
    check "write-behind, $mode: the object equals the local file byte for byte" same_as_local $mode
    cp "$W/log" "$W/wb-$mode.log"
done
check "write-behind, rewrite: parts sent ahead were kept, those written again sent again at close" \
    grep -q "wb/rewrite: [1-9][0-9]* part(s) sent ahead are kept" "$W/wb-rewrite.log"
check "write-behind, truncate: ftruncate ends write-behind (its upload aborted)" \
    grep -q "wb/truncate: write-behind ends (ftruncate)" "$W/wb-truncate.log"
check "write-behind, small: ends up one part: one PUT (the upload begun is aborted)" \
    grep -q "wb/small: write-behind ends (ftruncate)" "$W/wb-small.log"
check "write-behind, another process's write ends it: the whole file uploaded at close" \
    grep -q "wb/append: write-behind ends (another descriptor or process changed the file)" "$W/wb-append.log"
check "write-behind: no multipart upload is left on the server" test "$(s3_uploads_left wb/)" = 0
# A part that fails in the background (its upload aborted under it on the server): close
# uploads the whole file anew and the result is still right.
cat >"$W/wbabort.sh" <<EOF2
#!/bin/sh
unset LD_PRELOAD
a() { AWS_CONFIG_FILE=${S3RIG_AWS_CONFIG:-/dev/null} AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER= /usr/bin/aws --endpoint-url $AWS_ENDPOINT_URL "\$@"; }
ids=\$(a s3api list-multipart-uploads --bucket $S --prefix wb/abort --query 'Uploads[].UploadId' --output text)
test -n "\$ids" -a "\$ids" != None || exit 1
for i in \$ids; do a s3api abort-multipart-upload --bucket $S --key wb/abort --upload-id "\$i" || exit 1; done
EOF2
wbrun abort abort "sh $W/wbabort.sh"
check "write-behind, its upload aborted on the server mid-write: close returns 0" grep -qx "closed None" "$W/wb-abort.out"
check "... the object equals the local file" same_as_local abort
check "... after a log line saying write-behind ended" grep -q "wb/abort: write-behind ends (a part sent ahead failed)" "$W/log"
check "... and no upload is left" test "$(s3_uploads_left wb/abort)" = 0
# unlink while written: nothing on the server, the upload begun aborted.
wbrun unlink unlink
check "write-behind, unlinked while open: close returns 0, nothing on the server, no upload left" \
    test "$(grep -c 'closed None' "$W/wb-unlink.out")$(s3_ls wb/unlink | wc -l)$(s3_uploads_left wb/unlink)" = 100
# S3SHIM_WRITE_BEHIND=0: nothing sent ahead, same result.
S3SHIM_WRITE_BEHIND=0 wbrun rewrite off
check "S3SHIM_WRITE_BEHIND=0: nothing sent ahead" test "$(grep -c 'sent ahead' "$W/log")" = 0
check "S3SHIM_WRITE_BEHIND=0: the object equals the local file" same_as_local off
# A part upload that fails for good (the server gone mid-write: a relay in front of it is
# stopped): close fails with EIO and the previous object stays.
printf 'previous version\n' >"$W/prev"
s3_put "$W/prev" wb/fail >/dev/null
up=${AWS_ENDPOINT_URL#http://}
$PY "$here/truncproxy.py" "${up%:*}" "${up##*:}" 1000000000 300 >"$W/relay.out" 2>&1 &
relay=$!
bgpids+=("$relay")
for _ in $(seq 100); do grep -q READY "$W/relay.out" 2>/dev/null && break; sleep 0.1; done
rport=$(awk '/READY/ {print $2}' "$W/relay.out")
: >"$W/log"
AWS_ENDPOINT_URL=http://127.0.0.1:$rport S3SHIM_TIMEOUT=5 S3SHIM_PART_SIZE=5M S3SHIM_LOG=debug \
    shim $PY "$W/wb.py" hold "$B/wb/fail" "$L/wb-fail" "$W/wb-go" >"$W/wb-fail.out" 2>&1 &
wp=$!
bgpids+=("$wp")
for _ in $(seq 3000); do grep -q written "$W/wb-fail.out" 2>/dev/null && break; sleep 0.02; done
kill "$relay" 2>/dev/null
wait "$relay" 2>/dev/null
touch "$W/wb-go"
wait "$wp"
check "write-behind, the server gone before close: close fails with EIO (5)" grep -qx "closed 5" "$W/wb-fail.out"
check "... and the previous object is still there" test "$(s3_get wb/fail /dev/stdout 2>/dev/null)" = "previous version"
check "... the upload it could not abort is recorded for the next start with that endpoint" \
    test -n "$(find "$STAGE" -name '*.wb')"
for id in $(s3_aws s3api list-multipart-uploads --bucket "$S" --prefix wb/fail --query 'Uploads[].UploadId' --output text); do
    [ "$id" = None ] || s3_aws s3api abort-multipart-upload --bucket "$S" --key wb/fail --upload-id "$id"
done
find "$STAGE" -name '*.wb' -delete # that relay is gone for good: no later start can reach its upload
# SIGKILL while write-behind has an upload open: nothing visible; the next start aborts
# the upload (recorded beside the staging file) and removes the staging files.
: >"$W/log"
S3SHIM_PART_SIZE=5M S3SHIM_STAGING_DIR=$STAGE S3SHIM_LOG_FILE=$W/log LD_PRELOAD="$PRELOAD" env "${SAN_ENV[@]}" \
    $PY "$W/wb.py" kill "$B/wb/killed" "$L/wb-killed" >"$W/wb-kill.out" 2>&1 &
kp=$!
bgpids+=("$kp")
for _ in $(seq 3000); do grep -q written "$W/wb-kill.out" 2>/dev/null && break; sleep 0.02; done
kill -KILL "$kp" 2>/dev/null
wait "$kp" 2>/dev/null
check "write-behind, SIGKILL mid-write: its upload is open on the server, nothing visible" \
    test "$(s3_uploads_left wb/killed)$(s3_ls wb/killed | wc -l)" = 10
check "... recorded beside the staging file" test -n "$(find "$STAGE" -name '*.wb')"
S3SHIM_LOG=info shim sh -c "echo next >>'$B/wb/other'" >/dev/null 2>&1
check "the next start aborts it (a log line says so) and removes the record" \
    test "$(s3_uploads_left wb/killed)$(find "$STAGE" -name '*.wb' | wc -l)" = 00 -a -n "$(grep 'aborted the multipart upload' "$W/log")"

# --- end ------------------------------------------------------------------------------------------
check "no staging files are left after the programs closed their files" test "$(staging_left)" = 0
echo "# $VARIANT: $((SECONDS - T0)) s"
finish
