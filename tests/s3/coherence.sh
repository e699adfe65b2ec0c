#!/usr/bin/env bash
# tests/s3/coherence.sh - metadata coherence between the processes of one run.
#
#   BUILD=build SAN= tests/s3/coherence.sh          (release: build/libs3shim.so)
#   BUILD=build/asan SAN=asan tests/s3/coherence.sh (ASan+UBSan build)
#
# What one process of a run creates, replaces, renames or deletes in S3 must be seen at
# once by the run's other processes (exec'd children, forked children, the parent), even
# when they hold a cached answer for it, while stats of keys nobody changed stay cached.
# The programs run with S3SHIM_STAT_TTL=60, so that nothing below passes by the TTL
# running out. Processes of another run see changes only when the TTL runs out (S3's own
# semantics); that is checked too, with a short TTL.
#
# Sections: rsync -a into S3 and back (compared with diff -r; a second run with
# --checksum transfers nothing; --delete after local changes), the openat/fstatat walk
# from a descriptor of / that rsync 3.5 makes; a parent's cached answers after a child's mkdir, cp, rm,
# mv, rmdir, overwrite; forked children both ways; answers filled by a listing; keys
# implied by new objects below them; repeated stats stay cached (HEAD counts in
# S3SHIM_STATS_FILE); the shared file in /dev/shm (0600, removed when the run's first
# process exits, a killed run's file removed by the next run); another run (TTL).
#
# The server comes from tests/s3rig/s3env.sh, as for tests/s3/run.sh. Output: "ok - ...",
# "not ok - ..." and "# ..." lines, then exactly one line "N passed, M failed".
set -u
export LC_ALL=C.UTF-8 TZ=UTC
umask 022
unset S3_BUCKET
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$HERE/../preamble.sh"
# shellcheck source=../variant.sh
. "$TOP/tests/variant.sh" "s3shim S3 coherence tests"
# shellcheck source=../report.sh
. "$TOP/tests/report.sh"
TMO=90
UID_=$(id -u)

section() { echo "# --- $1"; }

W=$(mktemp -d "${TMPDIR:-/tmp}/s3shim-coh.XXXXXX")
kp= # the program of the run killed below (timeout, its parent, then ends by itself)
cleanup() {
    [ -n "$kp" ] && kill -KILL "$kp" 2>/dev/null
    rm -rf "$W"
    declare -F s3rig_env_cleanup >/dev/null && s3rig_env_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

. "$TOP/tests/s3rig/s3env.sh" || bail "an S3 server and a fresh bucket (tests/s3rig/s3env.sh)"
case $AWS_ENDPOINT_URL in http://*) unset AWS_CA_BUNDLE ;; esac
B=$S3_BUCKET
M=/s3/$B
echo "# server $AWS_ENDPOINT_URL, bucket $B"

# shim CMD...: CMD under the shim (its own run), stat answers cached for 60 s.
shim() {
    timeout -k 5 "$TMO" env LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" S3SHIM_STAT_TTL="${TTL:-60}" "$@"
}
# sh_ok DESC SCRIPT [ARGS...]: bash -c SCRIPT under the shim must succeed. bash is the
# run's first process; the commands it starts are its children.
sh_ok() {
    local desc=$1 script=$2
    shift 2
    if shim bash -c "$script" _ "$@" >"$W/sh.out" 2>&1; then pass "$desc"; else
        echo "exit status $?" >>"$W/sh.out"
        fail "$desc" "$W/sh.out"
    fi
}
# py_ok DESC SCRIPT-FILE [ARGS...]: the same with python3 as the run's first process.
py_ok() {
    local desc=$1 script=$2
    shift 2
    if shim "$PY" "$script" "$@" >"$W/py.out" 2>&1; then pass "$desc"; else
        echo "exit status $?" >>"$W/py.out"
        fail "$desc" "$W/py.out"
    fi
}

# --- rsync ------------------------------------------------------------------------------
section "rsync -a into S3 and back"
S=$W/src
mkdir -p "$S/a/b/c" "$S/empty dir" "$S/with space" "$S/z"
head -c 0 /dev/urandom >"$S/zero"
head -c 1 /dev/urandom >"$S/one"
head -c 70000 /dev/urandom >"$S/a/mid"
head -c $((6 << 20)) /dev/urandom >"$S/a/b/big"
for i in $(seq 1 20); do echo "file $i" >"$S/z/f$i"; done
echo deep >"$S/a/b/c/deep.txt"
echo spaced >"$S/with space/name with space"
RS_OPTS=()
shim rsync -a "$S/" "$M/dest/" >"$W/rs1.out" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q 'mkstemp.*Operation not supported' "$W/rs1.out"; then
    # rsync writes into a temporary file opened O_RDWR (mkstemp): S3 writes need the
    # staging file for that. Until then, --inplace (O_WRONLY) checks the rest.
    echo "# rsync's mkstemp (O_RDWR) is not supported by this build: again with --inplace"
    RS_OPTS=(--inplace)
    shim rsync -a "${RS_OPTS[@]}" "$S/" "$M/dest/" >"$W/rs1.out" 2>&1
    rc=$?
fi
if [ $rc -eq 0 ]; then pass "rsync -a${RS_OPTS[*]:+ ${RS_OPTS[*]}} a tree into a new S3 directory (mkdir, then cd by another process)"; else
    echo "exit status $rc" >>"$W/rs1.out"
    fail "rsync -a${RS_OPTS[*]:+ ${RS_OPTS[*]}} a tree into a new S3 directory" "$W/rs1.out"
fi
(cd "$S" && find . -type f | sed 's|^\./||' | sort) >"$W/want.keys"
s3_ls dest/ 2>"$W/ls.err" | sed 's|^dest/||' | grep -v '/$' | grep -v '^$' | sort >"$W/got.keys"
if cmp -s "$W/want.keys" "$W/got.keys"; then pass "the bucket holds every file of the tree under dest/ (aws listing)"; else
    diff "$W/want.keys" "$W/got.keys" >"$W/keys.diff" 2>&1
    fail "the bucket holds every file of the tree under dest/ (aws listing)" "$W/keys.diff" "$W/ls.err"
fi
if s3_get "dest/a/b/big" "$W/big.back" 2>"$W/get.err" && cmp -s "$S/a/b/big" "$W/big.back"; then
    pass "the 6 MiB file read back with curl is the same"
else
    fail "the 6 MiB file read back with curl is the same" "$W/get.err"
fi
shim rsync -a --checksum --stats -i "${RS_OPTS[@]}" "$S/" "$M/dest/" >"$W/rs2.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q '^Number of regular files transferred: 0$' "$W/rs2.out" && ! grep -q '^[<>]f' "$W/rs2.out"; then
    pass "rsync -a --checksum again: nothing transferred"
else
    echo "exit status $rc" >>"$W/rs2.out"
    fail "rsync -a --checksum again: nothing transferred" "$W/rs2.out"
fi
# rsync --delete: the generator deletes what the source no longer has (--checksum: S3 keeps
# its own mtimes, so a plain second run would send every file again).
rm "$S/z/f3" && rm -r "$S/a/b/c" && echo added >"$S/z/added"
shim rsync -a --checksum --delete "${RS_OPTS[@]}" "$S/" "$M/dest/" >"$W/rs5.out" 2>&1
rc=$?
(cd "$S" && find . -type f | sed 's|^\./||' | sort) >"$W/want.keys"
s3_ls dest/ 2>"$W/ls.err" | sed 's|^dest/||' | grep -v '/$' | grep -v '^$' | sort >"$W/got.keys"
if [ $rc -eq 0 ] && cmp -s "$W/want.keys" "$W/got.keys"; then pass "rsync -a --checksum --delete after local changes: the bucket matches the tree again"; else
    { echo "exit status $rc"; diff "$W/want.keys" "$W/got.keys"; } >>"$W/rs5.out" 2>&1
    fail "rsync -a --checksum --delete after local changes: the bucket matches the tree again" "$W/rs5.out"
fi
mkdir -p "$W/back"
shim rsync -a "$M/dest/" "$W/back/" >"$W/rs3.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && diff -r "$S" "$W/back" >"$W/back.diff" 2>&1; then
    pass "rsync -a back out of S3: diff -r finds no difference (empty directory too)"
else
    echo "exit status $rc" >>"$W/rs3.out"
    fail "rsync -a back out of S3: diff -r finds no difference" "$W/rs3.out" "$W/back.diff"
fi
shim rsync -a --checksum --stats -i "$M/dest/" "$W/back/" >"$W/rs4.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q '^Number of regular files transferred: 0$' "$W/rs4.out" && ! grep -q '^[<>]f' "$W/rs4.out"; then
    pass "rsync -a --checksum back again: nothing transferred"
else
    echo "exit status $rc" >>"$W/rs4.out"
    fail "rsync -a --checksum back again: nothing transferred" "$W/rs4.out"
fi

cat >"$W/walk.py" <<'EOF'
import os, stat, sys
# rsync 3.5 opens "/" and walks down its destination one component at a time.
parts = sys.argv[1].strip("/").split("/") + ["dest", "a"]
fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
for p in parts:
    st = os.stat(p, dir_fd=fd, follow_symlinks=False)
    assert stat.S_ISDIR(st.st_mode), (p, st)
    nfd = os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
    os.close(fd)
    fd = nfd
assert os.stat("mid", dir_fd=fd).st_size == 70000
os.fchdir(fd)
assert os.getcwd() == sys.argv[1] + "/dest/a", os.getcwd()
assert os.path.getsize("mid") == 70000
EOF
py_ok "openat/fstatat one component at a time from a descriptor of /, then fchdir" "$W/walk.py" "$M"

# --- a parent and its children ---------------------------------------------------------------
section "what a child changes, its parent sees at once"
# bash's [ -e ], [ -d ] and cd are builtins: their answers are bash's own, cached.
sh_ok "mkdir in a child, then cd and [ -d ] in the parent that saw it missing" '
    [ -e "$1/k/d1" ] && exit 3
    mkdir "$1/k/d1" || exit 4
    [ -d "$1/k/d1" ] || exit 5
    cd "$1/k/d1" || exit 6
    [ "$PWD" = "$1/k/d1" ] || exit 7' "$M"
sh_ok "mkdir -p in a child, then cd into the deepest directory" '
    [ -e "$1/k/p" ] && exit 3; [ -e "$1/k/p/q" ] && exit 3
    mkdir -p "$1/k/p/q/r" || exit 4
    cd "$1/k/p/q/r" && cd .. && [ -d r ] || exit 5' "$M"
sh_ok "cp in a child creates an object the parent saw missing" '
    [ -e "$1/k/new" ] && exit 3
    cp /etc/hostname "$1/k/new" || exit 4
    [ -f "$1/k/new" ] && [ -s "$1/k/new" ] || exit 5' "$M"
sh_ok "rm in a child: the parent that saw the object sees ENOENT" '
    [ -f "$1/k/new" ] || exit 3
    rm "$1/k/new" || exit 4
    [ -e "$1/k/new" ] && exit 5
    exit 0' "$M"
sh_ok "mv in a child: the parent sees the old name gone and the new one there" '
    cp /etc/hostname "$1/k/from" || exit 2
    [ -f "$1/k/from" ] || exit 3; [ -e "$1/k/to" ] && exit 3
    mv "$1/k/from" "$1/k/to" || exit 4
    [ -e "$1/k/from" ] && exit 5
    [ -f "$1/k/to" ] || exit 6' "$M"
sh_ok "rmdir in a child: the parent sees the directory gone" '
    mkdir "$1/k/gone" || exit 2
    [ -d "$1/k/gone" ] || exit 3
    rmdir "$1/k/gone" || exit 4
    [ -e "$1/k/gone" ] && exit 5
    exit 0' "$M"
sh_ok "an object written below a missing name makes it a directory for the parent" '
    [ -e "$1/k/impl" ] && exit 3
    cp /etc/hostname "$1/k/impl/deep/f" || exit 4
    [ -d "$1/k/impl" ] && [ -d "$1/k/impl/deep" ] || exit 5' "$M"
sh_ok "removing the only object below a directory the parent saw: the directory is gone" '
    [ -d "$1/k/impl/deep" ] || exit 3
    rm "$1/k/impl/deep/f" || exit 4
    [ -e "$1/k/impl/deep" ] && exit 5
    [ -e "$1/k/impl" ] && exit 6
    exit 0' "$M"
sh_ok "rm -r of a tree in a child: the parent that walked it sees it gone" '
    mkdir -p "$1/k/tree/a/b" && cp /etc/hostname "$1/k/tree/a/b/f" && cp /etc/hostname "$1/k/tree/g" || exit 2
    [ -d "$1/k/tree/a/b" ] && [ -f "$1/k/tree/a/b/f" ] && [ -d "$1/k/tree" ] || exit 3
    rm -r "$1/k/tree" || exit 4
    [ -e "$1/k/tree/a/b/f" ] && exit 5; [ -e "$1/k/tree/a/b" ] && exit 6; [ -e "$1/k/tree" ] && exit 7
    exit 0' "$M"

cat >"$W/overwrite.py" <<'EOF'
import os, subprocess, sys
k = sys.argv[1] + "/k/ow"
subprocess.run(["sh", "-c", 'printf 12345 > "$1"', "_", k], check=True)
assert os.stat(k).st_size == 5, os.stat(k)
subprocess.run(["sh", "-c", 'printf 1234567890 > "$1"', "_", k], check=True)
assert os.stat(k).st_size == 10, "the parent still sees the old size %d" % os.stat(k).st_size
subprocess.run(["sh", "-c", ': > "$1"', "_", k], check=True)
assert os.stat(k).st_size == 0, "after emptying in a child: %d" % os.stat(k).st_size
EOF
py_ok "a child overwrites an object: the parent sees the new size at once (twice)" "$W/overwrite.py" "$M"

cat >"$W/fork.py" <<'EOF'
import os, sys
d = sys.argv[1] + "/k/fork"
# A forked child (no exec) creates; the parent, which saw it missing, sees it.
assert not os.path.exists(d + "/a")
pid = os.fork()
if pid == 0:
    with open(d + "/a", "w") as f:
        f.write("from the child\n")
    os._exit(0)
_, st = os.waitpid(pid, 0)
assert st == 0
assert os.path.isfile(d + "/a"), "the parent does not see what its forked child wrote"
assert open(d + "/a").read() == "from the child\n"
# The other way: the child learns "missing" first, the parent then creates it.
r1, w1 = os.pipe(); r2, w2 = os.pipe()
pid = os.fork()
if pid == 0:
    ok = not os.path.exists(d + "/b")
    os.write(w1, b"1"); os.read(r2, 1)
    ok = ok and os.path.isfile(d + "/b") and os.path.isdir(d)
    os.unlink(d + "/b")
    os._exit(0 if ok else 7)
os.read(r1, 1)
with open(d + "/b", "w") as f:
    f.write("from the parent\n")
os.write(w2, b"1")
_, st = os.waitpid(pid, 0)
assert st == 0, "the forked child did not see what its parent wrote (status %d)" % st
assert not os.path.exists(d + "/b"), "the parent still sees what its child deleted"
EOF
py_ok "forked children without exec: both ways" "$W/fork.py" "$M"

cat >"$W/listing.py" <<'EOF'
import os, subprocess, sys
d = sys.argv[1] + "/k/list"
os.makedirs(d, exist_ok=True)
for n in ("x", "y", "z"):
    with open(d + "/" + n, "w") as f:
        f.write(n)
assert sorted(os.listdir(d)) == ["x", "y", "z"]
sizes = {n: os.stat(d + "/" + n).st_size for n in ("x", "y", "z")}  # answered by the listing
subprocess.run(["rm", d + "/y"], check=True)
subprocess.run(["sh", "-c", 'printf abc > "$1"', "_", d + "/z"], check=True)
assert not os.path.exists(d + "/y"), "a stat filled by a listing hides a child's rm"
assert os.stat(d + "/z").st_size == 3, "a stat filled by a listing hides a child's overwrite"
assert os.stat(d + "/x").st_size == 1
EOF
py_ok "answers filled by a listing: a child's rm and overwrite are seen" "$W/listing.py" "$M"

# --- repeated stats stay cached -----------------------------------------------------------
section "repeated stats stay cached"
cat >"$W/hot.py" <<'EOF'
import json, os, subprocess, sys
m, statsdir = sys.argv[1], sys.argv[2]
d = m + "/k/hot"
subprocess.run(["sh", "-c", 'mkdir -p "$1" && printf hot > "$1/key" && printf other > "$1/sib"', "_", d], check=True)
for _ in range(200):
    os.stat(d + "/key"); os.path.exists(d + "/missing")
# A child changes another key of the same directory: these answers stay good.
subprocess.run(["sh", "-c", 'printf changed > "$1/sib"', "_", d], check=True)
for _ in range(200):
    os.stat(d + "/key"); os.path.exists(d + "/missing")
# A child changes this key: one new HEAD, then cached again.
subprocess.run(["sh", "-c", 'printf changed > "$1/key"', "_", d], check=True)
for _ in range(200):
    assert os.stat(d + "/key").st_size == 7
print(os.getpid())
EOF
mkdir -p "$W/stats"
if S3SHIM_STATS_FILE="$W/stats/s.%p.json" shim "$PY" "$W/hot.py" "$M" "$W/stats" >"$W/hot.out" 2>&1; then
    pid=$(tail -n 1 "$W/hot.out")
    if "$PY" - "$W/stats/s.$pid.json" >"$W/hot.why" 2>&1 <<'EOF'; then
import json, sys
j = json.load(open(sys.argv[1]))
heads = lists = stats = 0
for m in j["mounts"]:
    stats += m.get("ops", {}).get("stat", {}).get("count", 0)
    for c in m.get("children", []):
        heads += c.get("ops", {}).get("stat", {}).get("count", 0)
        lists += c.get("ops", {}).get("read", {}).get("count", 0)
print("stat calls %d, HEAD requests %d, GET/LIST requests %d" % (stats, heads, lists))
# key: 1 HEAD, then 1 after its change; missing: 1 HEAD + 1 listing. A hash collision of
# the sibling with either key would add one more.
sys.exit(0 if stats >= 1000 and 2 <= heads <= 4 and lists <= 3 else 1)
EOF
        pass "1000 stats of two keys, a sibling changed, the key changed: $(cat "$W/hot.why")"
    else
        fail "repeated stats stay cached" "$W/hot.why"
    fi
else
    fail "repeated stats stay cached (the program failed)" "$W/hot.out"
fi

# --- directories this process made: known whole ---------------------------------------------
section "a directory this process made is known whole"
# requests STATS.json: "HEADS LISTINGS" the process that wrote the file sent
requests() {
    "$PY" - "$1" <<'EOF'
import json, sys
ops = {}
for m in json.load(open(sys.argv[1]))["mounts"]:
    for c in m.get("children", []):
        for k in ("stat", "read"):
            ops[k] = ops.get(k, 0) + c.get("ops", {}).get(k, {}).get("count", 0)
print(ops.get("stat", 0), ops.get("read", 0))
EOF
}
# requests_check DESC STATS.json MAX_HEADS MAX_LISTINGS: passes if the process sent no more
requests_check() {
    local nh nl
    read -r nh nl < <(requests "$2" 2>"$W/req.err") || { fail "$1 (no statistics)" "$W/req.err"; return; }
    if [ "$nh" -le "$3" ] && [ "$nl" -le "$4" ]; then pass "$1 (HEAD requests $nh, listings $nl)"; else
        fail "$1" "HEAD requests $nh (at most $3), listings $nl (at most $4)"
    fi
}
# counted DESC NAME MAX_HEADS MAX_LISTINGS: $W/NAME.py run on $M under the shim (it prints
# its pid last), then the requests its own process sent (requests_check).
counted() {
    rm -rf "$W/stats" && mkdir -p "$W/stats"
    if S3SHIM_STATS_FILE="$W/stats/s.%p.json" shim "$PY" "$W/$2.py" "$M" >"$W/$2.out" 2>&1; then
        requests_check "$1" "$W/stats/s.$(tail -n 1 "$W/$2.out").json" "$3" "$4"
    else
        fail "$1 (the program failed)" "$W/$2.out"
    fi
}
cat >"$W/whole.py" <<'EOF'
import errno, os, subprocess, sys
m = sys.argv[1]
d = m + "/k/whole"
os.mkdir(d)
for n in ("a", "b"):
    with open(d + "/" + n, "w") as f:
        f.write(n)
fd = os.open(d + "/c", os.O_WRONLY | os.O_CREAT | os.O_EXCL)  # cp -r and tar x open so
os.write(fd, b"c")
os.close(fd)
try:
    os.open(d + "/a", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    sys.exit("O_EXCL of an object this process made succeeded")
except FileExistsError:
    pass
assert not os.path.exists(d + "/missing")
assert os.stat(d + "/a").st_size == 1 and os.stat(d + "/c").st_size == 1
os.mkdir(d + "/s")  # nested: its parent already known whole
with open(d + "/s/f", "w") as f:
    f.write("ff")
with open(d + "/g", "w") as f:  # the grandparent stays known after a change below s
    f.write("g")
assert os.stat(d + "/s/f").st_size == 2 and os.stat(d + "/g").st_size == 1
for i in range(10):  # as cp -r and tar x create
    os.close(os.open(d + "/e%d" % i, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
assert sorted(os.listdir(d)) == sorted(["a", "b", "c", "g", "s"] + ["e%d" % i for i in range(10)]), sorted(os.listdir(d))
# another process of the run creates a name this one would answer "absent": seen at once
subprocess.run(["sh", "-c", 'printf child > "$1"', "_", d + "/fromchild"], check=True)
assert os.stat(d + "/fromchild").st_size == 5, "the parent does not see its child's object"
fd = os.open(d + "/fromchild2", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
os.close(fd)
subprocess.run(["sh", "-c", 'printf x > "$1"', "_", d + "/s/late"], check=True)
try:
    os.open(d + "/s/late", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    sys.exit("O_EXCL of an object a child made in a directory known whole succeeded")
except FileExistsError:
    pass
print(os.getpid())
EOF
# mkdir's own HEAD, O_EXCL of a (made here: its entry says it exists, the HEAD proves it),
# then what the children changed: fromchild, fromchild2 (the directory is no longer known
# whole) and s/late: 5 (one more if two keys share a generation slot). Without the known
# directories: 18 HEADs.
counted "mkdir, then creates, O_EXCL, a nested mkdir, stats: answered without HEADs, a child's objects seen" whole 6 99
cat >"$W/relist.py" <<'EOF'
import os, subprocess, sys, time
d = sys.argv[1] + "/k/relist"
ttl = float(os.environ["S3SHIM_STAT_TTL"])
os.mkdir(d)
other = dict(os.environ)
other.pop("S3SHIM_ROOT_PID", None)  # a run of its own: its change is not seen through the generations
t0 = time.time()
for i in range(30):  # a copy that outlives the TTL three times
    os.close(os.open(d + "/f%02d" % i, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    if i == 10:
        subprocess.run(["sh", "-c", 'printf x > "$1"', "_", d + "/other"], env=other, check=True)
    time.sleep(3.5 * ttl / 30)
time.sleep(ttl + 0.2)
# the listing made when the TTL ended saw the other run's object
try:
    os.open(d + "/other", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    sys.exit("O_EXCL of another run's object succeeded after the TTL")
except FileExistsError:
    pass
assert os.stat(d + "/other").st_size == 1
assert sorted(os.listdir(d)) == sorted(["f%02d" % i for i in range(30)] + ["other"])
print(os.getpid())
EOF
# mkdir's HEAD and the O_EXCL of "other"; listings: mkdir's, one per TTL of the
# directory, one per TTL of the bucket (the creating opens check it), listdir's: 11-13.
# Without the known directory: 34 HEADs and 8 listings.
TTL=1 counted "a directory made here stays known whole past the TTL by one listing per TTL; another run's object is seen then" \
    relist 3 14
cat >"$W/learn.py" <<'EOF'
import os, shutil, subprocess, sys
m, src, stats, tar, stats2 = sys.argv[1:6]
d = m + "/k/learn"
# made by another run (not this process): three objects, one directory below
other = dict(os.environ)
other.pop("S3SHIM_ROOT_PID", None)
subprocess.run(["sh", "-c", 'mkdir "$1" && printf aa > "$1/a" && printf bbb > "$1/b" && mkdir "$1/sub" && printf c > "$1/sub/c"',
                "_", d], env=other, check=True)
# cp of ten files into it: the first miss lists the directory, the other nine ask nothing
subprocess.run(["cp"] + [src + "/f%d" % i for i in range(10)] + [d + "/"], check=True,
               env=dict(os.environ, S3SHIM_STATS_FILE=stats))
assert os.stat(d + "/a").st_size == 2 and os.stat(d + "/b").st_size == 3  # from the listing
assert os.path.isdir(d + "/sub") and not os.path.exists(d + "/nothing")
assert sorted(os.listdir(d)) == sorted(["a", "b", "sub"] + ["f%d" % i for i in range(10)])
# a name below an object is no directory, and the object is still there
assert not os.path.exists(d + "/a/x")
assert os.stat(d + "/a").st_size == 2
assert not os.path.exists(d + "/nodir/x") and not os.path.exists(d + "/nodir")
# tar x into another directory another run made: the first create (O_EXCL, no stat before
# it) learns the directory, the other nine are known new
subprocess.run(["sh", "-c", 'mkdir "$1" && printf z > "$1/z"', "_", d + "2"], env=other, check=True)
subprocess.run(["tar", "xf", tar, "-C", d + "2"], check=True, env=dict(os.environ, S3SHIM_STATS_FILE=stats2))
assert sorted(os.listdir(d + "2")) == sorted(["z"] + ["f%d" % i for i in range(10)])
assert all(open(d + "2/f%d" % i).read() == str(i) for i in range(10))
print(os.getpid())
EOF
mkdir -p "$W/learnsrc" && for i in 0 1 2 3 4 5 6 7 8 9; do printf "%s" "$i" >"$W/learnsrc/f$i"; done
tar cf "$W/learn.tar" -C "$W/learnsrc" f0 f1 f2 f3 f4 f5 f6 f7 f8 f9
rm -rf "$W/stats" && mkdir -p "$W/stats"
# cp: the first name's HEAD, its directory's listing, the target directory's own stat and
# the bucket's check; the other nine names ask nothing. Before: 21 HEADs, 12 listings.
if shim "$PY" "$W/learn.py" "$M" "$W/learnsrc" "$W/stats/cp.%p.json" "$W/learn.tar" "$W/stats/tar.%p.json" \
    >"$W/learn.out" 2>&1; then
    requests_check "cp of ten files into a directory another run made: its listing answers the other nine" \
        "$(ls "$W"/stats/cp.*.json | head -n 1)" 2 3
    # tar: the first create's HEAD and its directory's listing (and the bucket's check);
    # the other nine: nothing. Before: a HEAD for each of the ten.
    requests_check "tar x of ten files into a directory another run made: the first create learns it" \
        "$(ls "$W"/stats/tar.*.json | head -n 1)" 2 3
else
    fail "cp into an existing directory, a name below an object (the program failed)" "$W/learn.out"
fi
# Keys "both" and "both/x": a listing has "both" as a file and as a common prefix. A HEAD
# finds the file, so the directory's listing must say the same, whichever entry comes
# first (the listing used to leave "both" cached as a directory), and so must readdir's.
printf abc >"$W/both" && s3_put "$W/both" k/dual/both && s3_put "$W/both" k/dual/both/x && s3_put "$W/both" k/dual/one
cat >"$W/dual.py" <<'EOF'
import os, stat, sys
d = sys.argv[1] + "/k/dual"
assert not os.path.exists(d + "/missing")  # HEAD 404: the directory is listed, its names cached
st = os.stat(d + "/both")
assert stat.S_ISREG(st.st_mode) and st.st_size == 3, "both: mode %o size %d" % (st.st_mode, st.st_size)
assert os.stat(d + "/one").st_size == 3
print(sorted(os.listdir(d)))
st = os.stat(d + "/both")  # after readdir, which caches its page too
assert stat.S_ISREG(st.st_mode) and st.st_size == 3, "both after listdir: mode %o" % st.st_mode
print(os.getpid())
EOF
counted "keys 'both' and 'both/x': the name is the file, from the listing as from a HEAD" dual 1 3
whole_listed() {
    s3_aws s3 ls --recursive "s3://$B/k/whole/" | awk '{ sub("k/whole/", "", $4); print $4, $3 }' | sort | tr '\n' ' '
}
got=$(whole_listed)
want=" 0 a 1 b 1 c 1 e0 0 e1 0 e2 0 e3 0 e4 0 e5 0 e6 0 e7 0 e8 0 e9 0 fromchild 5 fromchild2 0 g 1 s/ 0 s/f 2 s/late 1 "
if [ "$got" = "$want" ]; then pass "... and the server has every object with its size (aws s3 ls)"; else
    echo "aws s3 ls: $got" >"$W/whole.ls"; echo "expected:  $want" >>"$W/whole.ls"
    fail "... and the server has every object with its size (aws s3 ls)" "$W/whole.ls"
fi

# --- the shared file -----------------------------------------------------------------------
section "the run's shared file"
sh_ok "the run's file is /dev/shm/s3shim-gen-UID-PID, mode 0600, while the run lasts" '
    [ -e "$1/k/nothing" ]
    f=/dev/shm/s3shim-gen-$(id -u)-$$
    [ "$(stat -c "%a %u %s" "$f")" = "600 $(id -u) 32776" ] || { ls -l "$f"; exit 3; } # 4096 counters + the once-flags
    echo $$ >"$2"' "$M" "$W/root.pid"
rp=$(cat "$W/root.pid" 2>/dev/null)
if [ -n "$rp" ] && [ ! -e "/dev/shm/s3shim-gen-$UID_-$rp" ]; then pass "removed when the run's first process exits"; else
    ls -l /dev/shm >"$W/shm.ls" 2>&1
    fail "removed when the run's first process exits" "$W/shm.ls"
fi
rm -f "$W/ready"
shim bash -c '[ -e "$1/k/nothing" ]; echo $$ >"$2.tmp"; mv "$2.tmp" "$2"; exec sleep 60' _ "$M" "$W/ready" >/dev/null 2>&1 &
bg=$!
for _ in $(seq 1 100); do [ -s "$W/ready" ] && break; sleep 0.1; done
kp=$(cat "$W/ready" 2>/dev/null)
if [ -n "$kp" ] && [ -e "/dev/shm/s3shim-gen-$UID_-$kp" ]; then
    kill -KILL "$kp"
    wait "$bg" 2>/dev/null
    if [ -e "/dev/shm/s3shim-gen-$UID_-$kp" ]; then pass "a run killed with SIGKILL leaves its file behind"; else
        fail "a run killed with SIGKILL leaves its file behind (the test cannot check the sweep)"
    fi
    sh_ok "the next run removes the file of a run whose first process is gone" '
        [ -e "$1/k/nothing" ]
        [ -e "/dev/shm/s3shim-gen-$(id -u)-$2" ] && exit 3
        exit 0' "$M" "$kp"
else
    kill -TERM "$bg" 2>/dev/null # timeout passes it on to the program
    wait "$bg" 2>/dev/null
    ls -l /dev/shm >"$W/shm.ls" 2>&1
    fail "a run that touched S3 has its file while it runs" "$W/shm.ls"
fi
# A file by that name that others could write (or another user's) is left alone: the
# processes keep private tables, so a child's mkdir is seen only when the TTL runs out.
sh_ok "a file by that name that others may write is not used (a warning, TTL only)" '
    f=/dev/shm/s3shim-gen-$(id -u)-$$
    : >"$f"; chmod 644 "$f"
    [ -e "$1/k/foreign" ] && exit 3
    mkdir "$1/k/foreign" 2>/dev/null || exit 4
    [ -d "$1/k/foreign" ] && exit 5
    [ -s "$f" ] && exit 6
    exit 0' "$M"
if grep -q "is not a private file of this user" "$W/sh.out"; then pass "... and says so"; else
    fail "the refused file is named in a warning" "$W/sh.out"
fi

# --- another run ----------------------------------------------------------------------------
section "another run: S3 semantics, the TTL"
cat >"$W/other.py" <<'EOF'
import os, subprocess, sys, time
k = sys.argv[1] + "/k/otherrun"
env = dict(os.environ)
env.pop("S3SHIM_ROOT_PID", None)  # a run of its own
assert not os.path.exists(k)
subprocess.run(["sh", "-c", 'printf x > "$1"', "_", k], env=env, check=True)
still = os.path.exists(k)
time.sleep(float(os.environ["S3SHIM_STAT_TTL"]) + 0.5)
seen = os.path.exists(k)
print("another run's object: seen at once %s, after the TTL %s" % (still, seen))
sys.exit(0 if not still and seen else 1)
EOF
TTL=2 py_ok "another run's new object is seen when the TTL (S3SHIM_STAT_TTL=2) runs out, not before" "$W/other.py" "$M"
cat >"$W/append.py" <<'EOF'
import os, subprocess, sys
d = sys.argv[1] + "/k/appendother"
other = dict(os.environ)
other.pop("S3SHIM_ROOT_PID", None)  # a run of its own
os.mkdir(d)  # known whole, and the names below cached as missing (TTL 60)
assert not os.path.exists(d + "/log") and not os.path.exists(d + "/rw")
subprocess.run(["sh", "-c", 'printf "theirs\\n" > "$1/log"; printf "0123456789" > "$1/rw"', "_", d], env=other, check=True)
with open(d + "/log", "a") as f:  # the cache still says "missing": the open asks the server
    f.write("ours\n")
fd = os.open(d + "/rw", os.O_RDWR | os.O_CREAT)
os.pwrite(fd, b"ab", 4)
os.close(fd)
EOF
py_ok "another run's object where this process cached 'missing': an append and a patch keep its bytes" "$W/append.py" "$M"
check "...the server has theirs, then ours" test "$(s3_get k/appendother/log - 2>&1)/$(s3_get k/appendother/rw - 2>&1)" = \
    "$(printf 'theirs\nours')/0123ab6789"

# tail -f in one process, >> in others of the run: each append seen (the stat cache is
# told at once; no TTL to wait for), and the reader takes up each new version.
shim bash -c 'echo line0 >"$1"; ( for i in 1 2 3 4; do echo line$i >>"$1"; sleep 0.2; done ) &
    tail -s 0.1 --pid=$! -n 5 -f "$1" 2>/dev/null' _ "$M/k/tailf/log" >"$W/tailf.out" 2>&1
check "tail -f of an object other processes of the run append to (>>) prints every line" \
    test "$(tr '\n' ' ' <"$W/tailf.out")" = "line0 line1 line2 line3 line4 "

finish
