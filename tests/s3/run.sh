#!/usr/bin/env bash
# tests/s3/run.sh - real programs through the shim against a real S3 server, every result
# compared byte for byte with what /usr/bin/aws stores or returns for the same object.
#
#   BUILD=build SAN= tests/s3/run.sh          (release: build/libs3shim.so)
#   BUILD=build/asan SAN=asan tests/s3/run.sh (ASan+UBSan build, libasan preloaded first)
#
# The server comes from tests/s3rig/s3env.sh: AWS_ENDPOINT_URL set = that server (and its
# keys); unset = a private Swift+s3api instance started here and removed at exit. Every
# run uses a fresh bucket. Programs reach it as /s3/BUCKET/KEY (the default mount) and
# s3://BUCKET/KEY; the aws CLI (never under the shim) is the reference client.
#
# Sections: objects of 0 B, 1 B, 5 MiB-1, 5 MiB, 5 MiB+1 written and read with cp, cat,
# dd, sha256sum, shell redirections and python3; one >= 200 MiB multipart object (one
# write, one read); 1500 keys listed by ls, find, python; mkdir/rmdir/rm/mv, tar x into
# and tar c out of S3, cd into S3, redirections, gzip; odd keys both ways; failures
# (wrong secret, missing object or bucket, object changed while read, a streaming writer
# going back after parts were sent, the server stopped during an upload); 16 threads of preads and forked python
# readers; per-endpoint statistics.
#
# S3TEST_BIG_MIB (default 200) sets the size of the multipart object. S3TEST_SHIM_ENV holds
# extra VAR=VALUE words for every program under the shim (tests/s3/endpoints.sh runs the
# battery with S3SHIM_ENDPOINTS naming fault-injecting proxies; the aws CLI, the
# reference, keeps talking to AWS_ENDPOINT_URL). The server-stop
# check stops and restarts the Swift proxy by PID, so it only runs on a Swift instance
# this script started (otherwise it is skipped and says so). With a plain-http endpoint
# the programs run without AWS_CA_BUNDLE, except in one check that sets it on purpose.
#
# Output: "ok - ..." / "not ok - ..." per check, "# ..." comments, then exactly one line
# "N passed, M failed"; exit status 0 only if M is 0.

set -u
export LC_ALL=C.UTF-8 TZ=UTC
umask 022

read -r -a SHIM_ENV <<<"${S3TEST_SHIM_ENV:-}"
unset S3_BUCKET
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$HERE/../preamble.sh"
PREADS=$BUILD/tests/s3_preads
BIG_MIB=${S3TEST_BIG_MIB:-200}
TMO=60 # seconds per command: a hang fails its check instead of the whole run

T_START=$(date +%s)

# shellcheck source=../variant.sh
. "$TOP/tests/variant.sh" "s3shim S3 tests"
# shellcheck source=../report.sh
. "$TOP/tests/report.sh"
S3PY=$HERE/s3py.py

# --- reporting ---------------------------------------------------------------------------
# check DESC CMD...: passes if CMD succeeds; CMD's output is the failure detail.
section() { echo "# --- $1"; }

# shim CMD...: CMD under the shim, bounded by $TMO (the caller redirects).
shim() {
    timeout -k 5 "$TMO" env LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" "${SHIM_ENV[@]}" "$@"
}
# sc DESC CMD...: CMD under the shim must succeed (stderr and stdout are the detail).
sc() {
    local desc=$1
    shift
    if shim "$@" >"$W/sc.out" 2>&1; then pass "$desc"; else
        echo "exit status $?" >>"$W/sc.out"
        fail "$desc" "$W/sc.out"
    fi
}
# sh_ok DESC SCRIPT [ARGS...]: bash -c SCRIPT under the shim (bash itself preloaded).
sh_ok() {
    local desc=$1 script=$2
    shift 2
    sc "$desc" bash -c "$script" _ "$@"
}
# sh_err DESC MESSAGE SCRIPT [ARGS...]: the script under the shim must fail and the
# program (not the shim's log, kept apart) must print MESSAGE.
sh_err() {
    local desc=$1 msg=$2 script=$3
    shift 3
    : >"$W/se.log"
    S3SHIM_LOG_FILE="$W/se.log" shim bash -c "$script" _ "$@" >"$W/se.out" 2>&1
    local rc=$?
    if [ $rc -ne 0 ] && grep -qF -- "$msg" "$W/se.out"; then pass "$desc"; else
        { echo "exit status $rc, want non-zero and '$msg'"; sed 's/^/log: /' "$W/se.log"; } >>"$W/se.out"
        fail "$desc" "$W/se.out"
    fi
}
# same DESC WANT GOT: the two local files are identical.
same() {
    if [ -f "$2" ] && [ -f "$3" ] && cmp "$2" "$3" >"$W/same.out" 2>&1; then pass "$1"; else
        { ls -l "$2" "$3"; cat "$W/same.out"; } >"$W/same.why" 2>&1
        fail "$1" "$W/same.why"
    fi
}
# sout DESC WANT CMD...: CMD under the shim succeeds and its stdout is the file WANT.
sout() {
    local desc=$1 want=$2
    shift 2
    rm -f "$W/sout.got"
    shim "$@" >"$W/sout.got" 2>"$W/sout.err"
    local rc=$?
    if [ $rc -eq 0 ] && cmp "$want" "$W/sout.got" >>"$W/sout.err" 2>&1; then pass "$desc"; else
        echo "exit status $rc" >>"$W/sout.err"
        fail "$desc" "$W/sout.err"
    fi
}
# sfile DESC WANT GOT CMD...: CMD under the shim succeeds and leaves the local file GOT
# identical to WANT.
sfile() {
    local desc=$1 want=$2 got=$3
    shift 3
    rm -f "$got"
    shim "$@" >"$W/sfile.err" 2>&1
    local rc=$?
    if [ $rc -eq 0 ] && cmp "$want" "$got" >>"$W/sfile.err" 2>&1; then pass "$desc"; else
        echo "exit status $rc" >>"$W/sfile.err"
        fail "$desc" "$W/sfile.err"
    fi
}
# has_key KEY / no_key KEY: in the aws listing taken last ($W/keys.txt); both fail when
# that listing failed.
KEYS_OK=0
has_key() { [ $KEYS_OK = 1 ] && grep -qxF -- "$1" "$W/keys.txt"; }
no_key() { [ $KEYS_OK = 1 ] && ! grep -qxF -- "$1" "$W/keys.txt"; }
aws_keys() { # aws_keys PREFIX: "size<TAB>key" of every key below PREFIX into $W/keys.tsv, keys into $W/keys.txt
    KEYS_OK=0
    : >"$W/keys.txt"
    s3_aws s3api list-objects-v2 --bucket "$S3_BUCKET" --prefix "$1" \
        --query 'Contents[].[Size,Key]' --output text >"$W/keys.tsv" 2>"$W/keys.err" || { cat "$W/keys.err"; return 1; }
    sed -i '/^None$/d' "$W/keys.tsv"
    cut -f2- "$W/keys.tsv" >"$W/keys.txt"
    KEYS_OK=1
}

# --- work area and server ------------------------------------------------------------------
W=$(mktemp -d "${TMPDIR:-/tmp}/s3shim-s3.XXXXXX")
BGPIDS=()
B=""
cleanup() {
    local p
    for p in "${BGPIDS[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$W"
    # the shim's shadow working directories for this run's bucket (cd into S3)
    if [ -n "$B" ] && [ -d "/tmp/.s3shim-cwd-$(id -u)/s3/$B" ]; then rm -rf "/tmp/.s3shim-cwd-$(id -u)/s3/$B"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "setup"
t_rig=$(date +%s)
. "$TOP/tests/s3rig/s3env.sh" || bail "an S3 server and a fresh bucket (tests/s3rig/s3env.sh)"
B=$S3_BUCKET
M=/s3/$B
echo "# server $AWS_ENDPOINT_URL, bucket $B, $(($(date +%s) - t_rig)) s to get them$([ "$S3RIG_STARTED_SWIFT" = 1 ] && echo ' (Swift started here)')"
pass "S3 server at $AWS_ENDPOINT_URL and a fresh bucket $B"
# A CA bundle means nothing to a plain-http endpoint; the battery runs without one and
# one check below sets it on purpose.
CA_FROM_ENV=${AWS_CA_BUNDLE:-}
case $AWS_ENDPOINT_URL in http://*) unset AWS_CA_BUNDLE ;; esac

if [ ! -x "$PREADS" ] || [ "$PREADS" -ot "$TOP/tests/helpers/s3_preads.c" ]; then
    make -s -C "$TOP" BUILD="$BUILD" "$PREADS" >"$W/make.out" 2>&1
fi
check "helper $PREADS is built" test -x "$PREADS"

# Local data. up/ is uploaded with one aws call, to the same keys.
SIZES=(0 1 5242879 5242880 5242881)
U=$W/up
mkdir -p "$U/sz/r" "$U/pr" "$U/ow" "$U/mp" "$U/odd-r/a b" "$U/tar" "$U/ns/mvd/src" "$U/ns/full" "$U/ns/rmr/a/b" \
    "$U/bad" "$W/dl" "$W/rd" "$W/d1500" "$W/tree/sub/deeper" "$W/tree/with space"
for s in "${SIZES[@]}"; do head -c "$s" /dev/urandom >"$U/sz/r/s$s"; done
head -c $((24 << 20)) /dev/urandom >"$U/pr/p24"
head -c $((12 << 20)) /dev/urandom >"$U/ow/ow"
head -c $((12 << 20)) /dev/urandom >"$W/ow.new"
for i in 1 2 3 4 5 6 7 8; do head -c $((i * 300001)) /dev/urandom >"$U/mp/m$i"; done
(cd "$U/mp" && sha256sum m*) >"$W/mp.sums"
ODD=("with space.txt" "ünïcødé 名前.txt" "plus+sign.txt" "eq=amp&.txt" "q?mark.txt" "hash#tag.txt"
    "pct%20%zz%.txt" "tilde~.txt" "all + = & ? # % ~ mixed ü.txt" "a b/c d+e.txt")
for n in "${ODD[@]}"; do printf 'odd key: %s\n' "$n" >"$U/odd-r/$n"; done
printf 'hello from the tree\n' >"$W/tree/hello.txt"
head -c 2000000 /dev/urandom >"$W/tree/sub/blob.bin"
seq 1 2000 >"$W/tree/sub/deeper/numbers.txt"
printf 'spaced\n' >"$W/tree/with space/inner file.txt"
: >"$W/tree/sub/empty"
tar cf "$U/tar/src.tar" -C "$W/tree" .
printf 'remove me\n' >"$U/ns/rm-me"
head -c 1000000 /dev/urandom >"$U/ns/mv-src"
printf 'a\n' >"$U/ns/mvd/src/a"
printf 'bb\n' >"$U/ns/mvd/src/b"
printf 'x\n' >"$U/ns/full/x"
printf 'c\n' >"$U/ns/rmr/a/b/c"
printf 'd\n' >"$U/ns/rmr/d"
for i in $(seq 1 300); do echo "Line $i of a text: The Quick Brown Fox jumps over the lazy dog."; done >"$U/ns/text"
printf 'original\n' >"$U/bad/existing"
for i in $(seq -w 1 1500); do printf 'file %s\n' "$i" >"$W/d1500/f$i.txt"; done
head -c $((BIG_MIB << 20)) /dev/urandom >"$W/big.bin"
BIGSUM=$(sha256sum <"$W/big.bin" | cut -d' ' -f1)

# 1500 keys by parallel, bounded PUTs (curl, 16 at a time), in the background while the
# rest goes on; one status code per line in d1500.codes.
(
    args=()
    for f in "$W"/d1500/*.txt; do args+=(-T "$f" -o /dev/null "$AWS_ENDPOINT_URL/$B/dir/${f##*/}"); done
    # s3_curl's options; exec, so that $! is curl itself
    exec curl -sS --max-time 300 --aws-sigv4 "aws:amz:$AWS_REGION:s3" --netrc-file "$S3RIG_NETRC" \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --parallel --parallel-max 16 -w '%{http_code}\n' \
        "${args[@]}" >"$W/d1500.codes" 2>"$W/d1500.err"
) &
BGPIDS+=($!)
D1500_PID=$!

t0=$(date +%s)
check "aws s3 cp --recursive uploads the reference objects" s3_aws s3 cp --recursive --only-show-errors "$U" "s3://$B/"
echo "# reference upload: $(($(date +%s) - t0)) s"

# --- settings ------------------------------------------------------------------------------
section "AWS settings"
CA=${CA_FROM_ENV:-/etc/ssl/certs/ca-certificates.crt}
case $AWS_ENDPOINT_URL in
http://*)
    if [ -f "$CA" ]; then
        AWS_CA_BUNDLE=$CA sh_ok "AWS_CA_BUNDLE=$CA set (plain-http endpoint): cp, cmp and python3 write work" \
            'cp "$1" "$2/ca-cp" && cmp "$1" "$2/ca-cp" && "$3" -c "open(\"$2/ca-py\", \"wb\").write(b\"x\")"' \
            "$U/sz/r/s5242881" "$M/ca" "$PY"
    else
        skip "https with the CA bundle" "AWS_CA_BUNDLE set: no CA file at $CA"
    fi ;;
*) skip "https with the CA bundle" "AWS_CA_BUNDLE set on purpose: the endpoint is not plain http (the battery uses its own)" ;;
esac

# --- sizes ---------------------------------------------------------------------------------
section "objects of 0 B, 1 B, 5 MiB-1, 5 MiB, 5 MiB+1: written through the shim, read back by aws"
for s in "${SIZES[@]}"; do
    src=$U/sz/r/s$s
    sc "cp writes $s B" cp "$src" "$M/sz/w/cp-$s"
    sc "dd bs=1M writes $s B" dd if="$src" of="$M/sz/w/dd-$s" bs=1M status=none
    sc "python3 write() writes $s B" "$PY" "$S3PY" write "$M/sz/w/py-$s" "$src"
    sh_ok "shell redirect (cat f > /s3/...) writes $s B" 'cat "$1" >"$2"' "$src" "$M/sz/w/redir-$s"
done
sc "cp to an s3:// URL path writes 5242881 B" cp "$U/sz/r/s5242881" "s3://$B/sz/w/url-5242881"
check "aws s3 cp --recursive downloads sz/" s3_aws s3 cp --recursive --only-show-errors "s3://$B/sz/" "$W/dl/sz/"
for s in "${SIZES[@]}"; do
    for how in cp dd py redir; do
        same "aws returns the $s B written by $how" "$U/sz/r/s$s" "$W/dl/sz/w/$how-$s"
    done
    same "aws returns the $s B it stored itself" "$U/sz/r/s$s" "$W/dl/sz/r/s$s"
done
same "aws returns the 5242881 B written to s3://$B/..." "$U/sz/r/s5242881" "$W/dl/sz/w/url-5242881"

section "the same sizes stored by aws, read through the shim"
for s in "${SIZES[@]}"; do
    ref=$W/dl/sz/r/s$s # what aws returns for the object
    sout "cat reads $s B" "$ref" cat "$M/sz/r/s$s"
    sfile "cp reads $s B" "$ref" "$W/rd/cp-$s" cp "$M/sz/r/s$s" "$W/rd/cp-$s"
    sfile "dd bs=1M reads $s B" "$ref" "$W/rd/dd-$s" dd if="$M/sz/r/s$s" of="$W/rd/dd-$s" bs=1M status=none
    sout "shell redirect (cat < /s3/...) reads $s B" "$ref" bash -c 'cat <"$1"' _ "$M/sz/r/s$s"
    want=$(sha256sum <"$ref" | cut -d' ' -f1)
    got=$(shim sha256sum "$M/sz/r/s$s" 2>"$W/rd.err" | cut -d' ' -f1)
    if [ -n "$got" ] && [ "$got" = "$want" ]; then pass "sha256sum reads $s B"; else fail "sha256sum reads $s B (got '$got', want $want)" "$W/rd.err"; fi
    sc "python3 open/read/readinto/seek/tell read $s B" "$PY" "$S3PY" read "$M/sz/r/s$s" "$ref"
done
sout "cat s3://$B/... reads 5242881 B" "$W/dl/sz/r/s5242881" cat "s3://$B/sz/r/s5242881"
(cd "$W/dl/sz/w" && sha256sum -- *) | sed "s|  |  $M/sz/w/|" >"$W/w.sums"
sc "sha256sum -c through the shim: the 21 objects written through it" sha256sum --quiet -c "$W/w.sums"

# --- the multipart object ---------------------------------------------------------------
section "a $BIG_MIB MiB object: one multipart write, one read"
t0=$(date +%s%N)
sc "cp writes $BIG_MIB MiB" cp "$W/big.bin" "$M/big/big.bin"
ms=$(( ($(date +%s%N) - t0) / 1000000 + 1 ))
echo "# write: $((BIG_MIB * 1000 / ms)) MiB/s ($ms ms)"
s3_aws s3api head-object --bucket "$B" --key big/big.bin --query '[ContentLength,ETag]' --output text >"$W/big.head" 2>&1
if grep -qE "^$((BIG_MIB << 20))[[:space:]]+\"[0-9a-f]{32}-[0-9]+\"\$" "$W/big.head"; then
    pass "aws s3api head-object: $((BIG_MIB << 20)) bytes, multipart ETag ($(awk '{print $2}' "$W/big.head"))"
else
    fail "aws s3api head-object: $((BIG_MIB << 20)) bytes, multipart ETag \"...-N\"" "$W/big.head"
fi
t0=$(date +%s%N)
got=$(shim sha256sum "$M/big/big.bin" 2>"$W/big.err" | cut -d' ' -f1)
ms=$(( ($(date +%s%N) - t0) / 1000000 + 1 ))
echo "# read: $((BIG_MIB * 1000 / ms)) MiB/s ($ms ms)"
if [ "$got" = "$BIGSUM" ]; then pass "sha256sum reads $BIG_MIB MiB"; else fail "sha256sum reads $BIG_MIB MiB (got '$got')" "$W/big.err"; fi
# Small sequential reads (sha256sum's 32 KiB, dd's 1 MiB, python's 128 KiB) must still be
# fetched in whole 8 MiB parts: once, every read moved the window's edge by its own size
# and started a GET that small (1040 GETs for 1 GiB read 128 KiB at a time).
# (The read-ahead memory is raised so that a window the probe grew past 32 MiB on a fast
# machine is not split into smaller GETs: that is the next check's.)
mkdir -p "$W/seqst"
for bs in 32k 128k 1M; do
    S3SHIM_READAHEAD_MEMORY=256M S3SHIM_STATS_FILE="$W/seqst/$bs.json" \
        shim dd if="$M/big/big.bin" of=/dev/null bs=$bs status=none 2>"$W/seqst/$bs.err"
done
check "reads of 32 KiB, 128 KiB and 1 MiB fetch $BIG_MIB MiB in 8 MiB GETs (at most $((BIG_MIB / 8 + 8)) each, backups included)" \
    "$PY" - "$W/seqst" "$((BIG_MIB << 20))" "$((BIG_MIB / 8 + 8))" <<'EOF'
import json, sys
d, size, most = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ok = True
for bs in ("32k", "128k", "1M"):
    j = json.load(open("%s/%s.json" % (d, bs)))
    got = sum(m["ops"].get("read", {}).get("bytes", 0) for m in j["mounts"])
    gets = sum(c["ops"].get("read", {}).get("count", 0) for m in j["mounts"] for c in m.get("children", []))
    print("bs=%s: %d bytes read, %d GETs" % (bs, got, gets))
    ok = ok and got == size and 0 < gets <= most
sys.exit(0 if ok else 1)
EOF
# A window larger than S3SHIM_READAHEAD_MEMORY is fetched in as many GETs as it has
# parts, each a share of that memory (at least 1 MiB): with 2M, the first window of two
# parts is already two GETs of 1 MiB, and so is every later one (reads of 128 KiB: a read
# of a part or more goes into the reader's own buffer, in part-size GETs).
got=$(S3SHIM_READAHEAD_MEMORY=2M S3SHIM_STATS_FILE="$W/seqst/split.json" \
    shim dd if="$M/big/big.bin" bs=128k status=none 2>"$W/seqst/split.err" | sha256sum | cut -d' ' -f1)
check "S3SHIM_READAHEAD_MEMORY=2M: 128 KiB reads get the $BIG_MIB MiB right, in GETs of 1 MiB ($BIG_MIB to $((BIG_MIB + 16)))" \
    "$PY" - "$W/seqst/split.json" "$BIG_MIB" "$got" "$BIGSUM" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
mib, got, want = int(sys.argv[2]), sys.argv[3], sys.argv[4]
gets = sum(c["ops"].get("read", {}).get("count", 0) for m in j["mounts"] for c in m.get("children", []))
print("sha256 %s (want %s), %d GETs" % (got, want, gets))
sys.exit(0 if got == want and mib <= gets <= mib + 16 else 1)
EOF
# A stream on fd 0 whose reader is quiet fills the pump's pipe (a reader we do not see
# may be waiting there); a seek gives that read-ahead back to the offset and it is read
# again. The mount's byte count is what the program got, once (it once counted 2 MiB
# twice: dd's lseek after an ASan start-up slower than the pump's quiet time).
S3SHIM_STATS_FILE="$W/seqst/quiet.json" shim "$PY" -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY); os.dup2(fd, 0); os.close(fd)
time.sleep(0.3)
os.lseek(0, 0, os.SEEK_CUR)
n = 0
while True:
    b = os.read(0, 1 << 20)
    if not b: break
    n += len(b)
print(n)' "$M/big/big.bin" >"$W/seqst/quiet.out" 2>&1
check "fd 0 read after a quiet start and a seek: $BIG_MIB MiB read, and counted, once" \
    "$PY" - "$W/seqst/quiet.json" "$((BIG_MIB << 20))" "$W/seqst/quiet.out" <<'EOF2'
import json, sys
j = json.load(open(sys.argv[1]))
size, out = int(sys.argv[2]), open(sys.argv[3]).read().strip()
got = sum(m["ops"].get("read", {}).get("bytes", 0) for m in j["mounts"])
print("program got %s bytes; the mount counted %d (want %d)" % (out, got, size))
sys.exit(0 if out == str(size) and got == size else 1)
EOF2
got=$(s3_aws s3 cp "s3://$B/big/big.bin" - 2>"$W/big.err" | sha256sum | cut -d' ' -f1)
if [ "$got" = "$BIGSUM" ]; then pass "aws returns the $BIG_MIB MiB written through the shim"; else
    fail "aws returns the $BIG_MIB MiB written through the shim (got '$got')" "$W/big.err"; fi
rm -f "$W/big.bin"

# --- concurrency ---------------------------------------------------------------------------
section "threads and processes"
sc "16 threads of random preads on one descriptor of a 24 MiB object" "$PREADS" "$M/pr/p24" "$U/pr/p24"
sc "python3 multiprocessing (fork): 4 workers read 8 objects" "$PY" "$S3PY" pool "$M/mp" "$W/mp.sums"

# --- directories -------------------------------------------------------------------------
section "directories: 1500 keys"
t0=$(date +%s)
for _ in $(seq 1 1800); do kill -0 "$D1500_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$D1500_PID" 2>/dev/null; then
    echo "the PUTs did not finish in 3 minutes" >>"$W/d1500.err"
    kill "$D1500_PID"
fi
wait "$D1500_PID"
n200=$(grep -c '^200$' "$W/d1500.codes" 2>/dev/null)
echo "# 1500 PUTs done $(($(date +%s) - T_START)) s into the run (waited $(($(date +%s) - t0)) s here)"
if [ "${n200:-0}" -eq 1500 ]; then pass "1500 keys under dir/ by parallel PUTs"; else
    fail "1500 keys under dir/ by parallel PUTs ($n200 answered 200)" "$W/d1500.err"; fi
aws_keys dir/
awk -F'\t' '{ sub(/^dir\//, "", $2); print $1 " " $2 }' "$W/keys.tsv" | sort >"$W/dir.sizes"
sed 's/^[0-9]* //' "$W/dir.sizes" | sort >"$W/dir.names"
check "aws lists 1500 keys under dir/" test "$(wc -l <"$W/dir.names")" -eq 1500
shim ls "$M/dir" >"$W/ls.out" 2>"$W/ls.err"
if [ "$(wc -l <"$W/ls.out")" -eq 1500 ] && cmp -s "$W/ls.out" "$W/dir.names"; then pass "ls | wc -l is 1500, the names are aws's"; else
    { echo "ls printed $(wc -l <"$W/ls.out") lines"; diff "$W/dir.names" "$W/ls.out" | head -n 5; cat "$W/ls.err"; } >"$W/ls.why"
    fail "ls | wc -l is 1500, the names are aws's" "$W/ls.why"
fi
shim bash -c 'ls "$1" | wc -l' _ "$M/dir" >"$W/ls2.out" 2>&1
check "ls /s3/B/dir | wc -l (pipe in a shimmed shell) prints 1500" grep -qx 1500 "$W/ls2.out"
shim ls "s3://$B/dir" >"$W/ls3.out" 2>&1
check "ls s3://B/dir lists the same 1500 names" cmp "$W/dir.names" "$W/ls3.out"
shim find "$M/dir" -type f -printf '%s %P\n' 2>"$W/find.err" | sort >"$W/find.out"
if cmp -s "$W/find.out" "$W/dir.sizes"; then pass "find -type f -printf '%s %P': sizes and names are aws's"; else
    { diff "$W/dir.sizes" "$W/find.out" | head -n 5; cat "$W/find.err"; } >"$W/find.why"
    fail "find -type f -printf '%s %P': sizes and names are aws's" "$W/find.why"
fi
sc "python3 os.listdir / os.scandir / os.walk / os.stat match aws's listing" "$PY" "$S3PY" walk "$M/dir" "$W/dir.sizes"
shim ls -l "$M/dir/f0001.txt" "$M/dir/f0750.txt" "$M/dir/f1500.txt" >"$W/lsl.out" 2>&1
if [ "$(awk '/^-rw/ && $5 == 10 { n++ } END { print n + 0 }' "$W/lsl.out")" -eq 3 ]; then pass "ls -l of 3 entries: regular files of 10 bytes"; else
    fail "ls -l of 3 entries: regular files of 10 bytes" "$W/lsl.out"; fi
shim ls -ld "$M/dir" >"$W/lsd.out" 2>&1
check "ls -ld /s3/B/dir: a directory" grep -q '^d' "$W/lsd.out"
shim bash -c 'cd "$1" && pwd && ls | wc -l && cat f0001.txt && cat ./f1500.txt ../dir/f0002.txt' _ "$M/dir" >"$W/cd.out" 2>&1
printf '%s\n1500\nfile 0001\nfile 1500\nfile 0002\n' "$M/dir" >"$W/cd.want"
same "cd /s3/B/dir && pwd && ls | wc -l && cat f0001.txt (cwd inside S3)" "$W/cd.want" "$W/cd.out"

section "directories: mkdir, rmdir, rm, mv, redirections, gzip"
N=$M/ns
sc "open(directory, O_RDONLY) without O_DIRECTORY (as tar c does) works; it stays a directory" "$PY" -c '
import os, sys
p = sys.argv[1]
before = os.path.isdir(p)
try:
    fd = os.open(p, os.O_RDONLY)
    print("open: fd", fd, "mode %o" % os.fstat(fd).st_mode)
    os.close(fd)
    opened = True
except OSError as e:
    print("open:", e)
    opened = False
after = os.path.isdir(p)
print("isdir before", before, "after", after)
sys.exit(0 if before and after and opened else 1)' "$M/tar"
sh_ok "mkdir; test -d; ls -A shows it empty" 'mkdir "$1" && test -d "$1" && test -z "$(ls -A "$1")"' "$N/newdir"
sh_ok "mkdir -p a/b/c" 'mkdir -p "$1" && test -d "$1"' "$N/p/q/r"
sh_ok "mkdir then rmdir of an empty directory" 'mkdir "$1" && rmdir "$1" && ! test -e "$1"' "$N/gone"
sh_err "rmdir of a non-empty directory fails" "Directory not empty" 'rmdir "$1"' "$N/full"
sh_err "mkdir of an existing directory fails" "File exists" 'mkdir "$1"' "$N/full"
sh_ok "rm" 'rm "$1" && ! test -e "$1"' "$N/rm-me"
sh_ok "mv of an object (copy + delete)" 'mv "$1" "$2" && ! test -e "$1" && test -f "$2"' "$N/mv-src" "$N/mv-dst"
sh_ok "mv of a directory" 'mv "$1" "$2" && ! test -e "$1" && test -d "$2"' "$N/mvd/src" "$N/mvd/dst"
# Above two parts, a rename copies in parallel parts (UploadPartCopy, if-match on the source
# written here in one PUT).
head -c $((40 << 20)) /dev/urandom >"$W/mvbig"
S3SHIM_PART_SIZE=64M sh_ok "a 40 MiB object written in one PUT" 'cp "$1" "$2"' "$W/mvbig" "$N/mvbig-src"
sh_ok "mv of a 40 MiB object (copied in 8 MiB parts, then deleted)" 'mv "$1" "$2" && ! test -e "$1" && test -f "$2"' \
    "$N/mvbig-src" "$N/mvbig-dst"
sh_ok "rm -r of a tree" 'rm -r "$1" && ! test -e "$1"' "$N/rmr"
sh_ok "echo x > /s3/B/f" 'echo x >"$1"' "$N/echo"
sh_ok "printf builtin > /s3/B/f" 'printf "%s\n" one two three >"$1"' "$N/printf"
sh_ok "tr < /s3/B/x > /s3/B/y" 'tr a-z A-Z <"$1" >"$2"' "$N/text" "$N/text.upper"
sh_ok "gzip -c < /s3 > /s3 of 5 MiB+1" 'gzip -c <"$1" >"$2"' "$M/sz/r/s5242881" "$N/s.gz"
sh_ok "cat /s3 | gzip -c | cat > /s3 (pipeline)" 'cat "$1" | gzip -c | cat >"$2"' "$N/text" "$N/text.gz"
sout "gzip -dc /s3/B/s.gz gives the 5 MiB+1 back" "$U/sz/r/s5242881" gzip -dc "$N/s.gz"
check "aws lists ns/" aws_keys ns/
check "mkdir left the marker ns/newdir/" has_key ns/newdir/
check "mkdir -p left ns/p/q/r/" has_key ns/p/q/r/
check "rmdir removed the marker ns/gone/" no_key ns/gone/
check "the non-empty directory is untouched" has_key ns/full/x
check "rm deleted ns/rm-me" no_key ns/rm-me
check "mv deleted the source ns/mv-src" no_key ns/mv-src
check "mv of a directory moved both keys" has_key ns/mvd/dst/a
check "mv of a directory left nothing under the source" bash -c "[ $KEYS_OK = 1 ] && ! grep '^ns/mvd/src/.' '$W/keys.txt'"
check "rm -r left nothing under ns/rmr/" bash -c "[ $KEYS_OK = 1 ] && ! grep '^ns/rmr/' '$W/keys.txt'"
check "aws s3 cp --recursive downloads ns/" s3_aws s3 cp --recursive --only-show-errors "s3://$B/ns/" "$W/dl/ns/"
same "mv: aws returns the moved bytes" "$U/ns/mv-src" "$W/dl/ns/mv-dst"
same "mv of 40 MiB: aws returns the moved bytes" "$W/mvbig" "$W/dl/ns/mvbig-dst"
mvbig_moved() {
    [ "$KEYS_OK" = 1 ] && ! grep -qxF ns/mvbig-src "$W/keys.txt" &&
        [[ $(s3_aws s3api head-object --bucket "$S3_BUCKET" --key ns/mvbig-dst --query ETag --output text) == *-5* ]]
}
check "mv of 40 MiB: the copy is a 5-part multipart object, the source is gone" mvbig_moved
same "mv of a directory: aws returns b" "$U/ns/mvd/src/b" "$W/dl/ns/mvd/dst/b"
printf 'x\n' >"$W/want.echo"
same "echo x > f: aws returns 'x\\n'" "$W/want.echo" "$W/dl/ns/echo"
printf 'one\ntwo\nthree\n' >"$W/want.printf"
same "printf > f: aws returns three lines" "$W/want.printf" "$W/dl/ns/printf"
tr a-z A-Z <"$U/ns/text" >"$W/want.upper"
same "tr < x > y: aws returns the upper-cased text" "$W/want.upper" "$W/dl/ns/text.upper"
gzip -dc <"$W/dl/ns/s.gz" >"$W/s.gunz" 2>/dev/null
same "gzip -c < /s3 > /s3: aws returns a gzip of the 5 MiB+1" "$U/sz/r/s5242881" "$W/s.gunz"
gzip -dc <"$W/dl/ns/text.gz" >"$W/t.gunz" 2>/dev/null
same "gzip pipeline: aws returns a gzip of the text" "$U/ns/text" "$W/t.gunz"

section "tar"
tar tf "$U/tar/src.tar" >"$W/tar.want"
sout "tar tf /s3/B/src.tar lists what tar tf of the local copy lists" "$W/tar.want" tar tf "$M/tar/src.tar"
sh_ok "mkdir /s3/B/dst && tar xf /s3/B/src.tar -C /s3/B/dst/" 'mkdir "$2" && tar xf "$1" -C "$2/"' "$M/tar/src.tar" "$M/tarx"
check "aws s3 cp --recursive downloads what tar x wrote" s3_aws s3 cp --recursive --only-show-errors "s3://$B/tarx/" "$W/dl/tarx/"
check "tar x into S3: aws returns the tree (diff -r)" diff -r "$W/tree" "$W/dl/tarx"
check "tar x into S3: the empty file is there" test -f "$W/dl/tarx/sub/empty"
sh_ok "tar cf of an S3 directory (to a local file)" 'tar cf "$2" -C "$1" .' "$M/tarx" "$W/from-s3.tar"
mkdir -p "$W/untar" && tar xf "$W/from-s3.tar" -C "$W/untar" 2>"$W/untar.err"
check "tar c from S3: the archive holds the tree (diff -r)" diff -r "$W/tree" "$W/untar"
sh_ok "tar cf - /s3/... | tar xf - -C /s3/... (S3 to S3)" 'mkdir "$2" && tar cf - -C "$1" . | tar xf - -C "$2"' "$M/tarx" "$M/tarx2"
check "aws s3 cp --recursive downloads the S3-to-S3 copy" s3_aws s3 cp --recursive --only-show-errors "s3://$B/tarx2/" "$W/dl/tarx2/"
check "tar S3 to S3: aws returns the tree (diff -r)" diff -r "$W/tree" "$W/dl/tarx2"

# --- odd keys ---------------------------------------------------------------------------
section "odd keys (spaces, unicode, + = & ? # % ~)"
(cd "$U/odd-r" && find . -type f | sed 's|^\./||' | sort) >"$W/odd.names"
shim find "$M/odd-r" -type f -printf '%P\n' 2>"$W/odd.err" | sort >"$W/odd.find"
if cmp -s "$W/odd.names" "$W/odd.find"; then pass "find lists the odd keys aws stored"; else
    { diff "$W/odd.names" "$W/odd.find"; cat "$W/odd.err"; } >"$W/odd.why"; fail "find lists the odd keys aws stored" "$W/odd.why"; fi
for n in "${ODD[@]}"; do
    sout "cat reads '$n' stored by aws" "$U/odd-r/$n" cat "$M/odd-r/$n"
    sc "cp writes '$n'" cp "$U/odd-r/$n" "$M/odd-w/$n"
done
sout "cat s3://B/... of an odd key" "$U/odd-r/all + = & ? # % ~ mixed ü.txt" cat "s3://$B/odd-r/all + = & ? # % ~ mixed ü.txt"
check "aws s3 cp --recursive downloads odd-w/" s3_aws s3 cp --recursive --only-show-errors "s3://$B/odd-w/" "$W/dl/odd-w/"
for n in "${ODD[@]}"; do
    same "aws returns '$n' written through the shim" "$U/odd-r/$n" "$W/dl/odd-w/$n"
done
check "aws lists exactly the odd keys written through the shim" diff "$W/odd.names" <(cd "$W/dl/odd-w" && find . -type f | sed 's|^\./||' | sort)

# --- failures ---------------------------------------------------------------------------
section "failures"
LOG=$W/log
# wrong_secret DESC SCRIPT ARGS...: EACCES ("Permission denied"), one log line naming
# SignatureDoesNotMatch and AWS_SECRET_ACCESS_KEY, no secret in the output.
wrong_secret() {
    local desc=$1 script=$2
    shift 2
    : >"$LOG"
    AWS_SECRET_ACCESS_KEY=wrong-secret-$$ S3SHIM_LOG_FILE="$LOG" shim bash -c "$script" _ "$@" >"$W/ws.out" 2>&1
    local rc=$? why=$W/ws.why
    : >"$why"
    [ $rc -ne 0 ] || echo "exit status 0" >>"$why"
    grep -q 'Permission denied' "$W/ws.out" || echo "no 'Permission denied' from the program" >>"$why"
    grep 'SignatureDoesNotMatch' "$LOG" | grep -q 'AWS_SECRET_ACCESS_KEY' ||
        echo "no log line naming both SignatureDoesNotMatch and AWS_SECRET_ACCESS_KEY" >>"$why"
    [ "$(grep -c 'SignatureDoesNotMatch' "$LOG")" -le 1 ] || echo "SignatureDoesNotMatch is on more than one log line" >>"$why"
    ! grep -q "wrong-secret-$$" "$LOG" "$W/ws.out" || echo "the secret appears in the output" >>"$why"
    if [ -s "$why" ]; then
        { echo "output:"; cat "$W/ws.out"; echo "log:"; cat "$LOG"; } >>"$why"
        fail "$desc" "$why"
    else
        pass "$desc"
    fi
}
wrong_secret "wrong secret: cat gets EACCES and one clear log line" 'cat "$1" >/dev/null' "$M/sz/r/s1"
wrong_secret "wrong secret: ls gets EACCES and one clear log line" 'ls "$1" >/dev/null' "$M/dir"
wrong_secret "wrong secret: stat gets EACCES and one clear log line" 'stat "$1" >/dev/null' "$M/sz/r/s5242880"
wrong_secret "wrong secret: cp into S3 gets EACCES and one clear log line" 'cp "$1" "$2"' "$U/sz/r/s1" "$M/bad/wrong-secret"
sh_err "missing object: cat says 'No such file or directory'" "No such file or directory" 'cat "$1"' "$M/no/such/key"
sh_err "missing object: stat says 'No such file or directory'" "No such file or directory" 'stat "$1"' "$M/nokey"
sc "missing object: python3 open raises FileNotFoundError (ENOENT)" "$PY" -c '
import errno, sys
try:
    open(sys.argv[1], "rb")
except FileNotFoundError as e:
    sys.exit(0 if e.errno == errno.ENOENT else 1)
sys.exit(1)' "$M/nokey"
NB=/s3/s3shim-no-such-bucket-$$
sh_err "missing bucket: cat says 'No such file or directory'" "No such file or directory" 'cat "$1"' "$NB/key"
sh_err "missing bucket: ls says 'No such file or directory'" "No such file or directory" 'ls "$1"' "$NB"
sh_err "missing bucket: cp into it says 'No such file or directory'" "No such file or directory" 'cp "$1" "$2"' "$U/sz/r/s1" "$NB/key"
# A name no bucket can have (under 3 characters): ENOENT without asking the server, and a
# create says why in the log.
sh_err "a 2-character bucket: cp into it says 'No such file or directory'" "No such file or directory" 'cp "$1" "$2"' "$U/sz/r/s1" /s3/ab/key
if grep -q "cannot create 'ab/key': 'ab' is not a bucket name" "$W/se.log"; then pass "a 2-character bucket: the log says it is not a bucket name"; else
    fail "a 2-character bucket: the log says it is not a bucket name" "$W/se.log"; fi
sh_err "a 2-character bucket: mkdir says 'No such file or directory'" "No such file or directory" 'mkdir -p "$1"' /s3/zz/d
if grep -q "cannot make directory 'zz': 'zz' is not a bucket name" "$W/se.log"; then pass "a bad bucket name: mkdir's log line says why"; else
    fail "a bad bucket name: mkdir's log line says why" "$W/se.log"; fi
sh_err "a 2-character bucket: cat stays quiet (a lookup, not a create)" "No such file or directory" 'cat "$1"' /s3/ab/key
if [ ! -s "$W/se.log" ]; then pass "a lookup under a bad bucket name logs nothing at the default level"; else
    fail "a lookup under a bad bucket name logs nothing at the default level" "$W/se.log"; fi

# The engine's own descriptors (libcurl's wake-up socketpairs included) stay out of the
# program's way: after a 24 MiB read has started the engine, the next open still gets the
# lowest free number and an exec'd child inherits no socket.
sc "engine descriptors: the next open gets the lowest free number, a child inherits no socket" "$PY" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
while os.read(fd, 1 << 20): pass
low = os.open("/dev/null", os.O_RDONLY)
if low != fd + 1: sys.exit("next open got %d, want %d" % (low, fd + 1))
r, w = os.pipe()
if os.fork() == 0:
    os.dup2(w, 1)
    os.execv("/bin/sh", ["sh", "-c", "ls -l /proc/self/fd/"])
os.close(w)
out = os.read(r, 65536).decode()
os.wait()
if "socket:" in out: sys.exit("a child inherited sockets:\n" + out)' "$M/pr/p24"

# An object replaced (by aws) while a reader has it open: EIO, never mixed bytes.
rm -f "$W/ow.ready" "$W/ow.go"
shim "$PY" "$S3PY" overwrite "$M/ow/ow" "$U/ow/ow" "$W/ow.ready" "$W/ow.go" >"$W/ow.out" 2>&1 &
ow_pid=$!
BGPIDS+=($ow_pid)
for _ in $(seq 1 600); do [ -e "$W/ow.ready" ] || ! kill -0 $ow_pid 2>/dev/null && break; sleep 0.05; done
s3_aws s3 cp --only-show-errors "$W/ow.new" "s3://$B/ow/ow" >>"$W/ow.out" 2>&1
touch "$W/ow.go"
wait $ow_pid
rc=$?
if [ $rc -eq 0 ]; then pass "object overwritten by aws while open: the reader gets EIO, no mixed bytes ($(tail -n 1 "$W/ow.out" | cut -c1-60)...)"; else
    fail "object overwritten by aws while open: the reader gets EIO, no mixed bytes" "$W/ow.out"; fi

# Writes S3 cannot take: a clear EINVAL/ENOTSUP, nothing partial on the server.
shim "$PY" "$S3PY" badwrites "$M/bad" "$M/bad/existing" >"$W/bw.out" 2>&1
rc=$?
if [ $rc -eq 0 ]; then pass "a streaming writer's pwrite backwards and past the end after parts were sent: EINVAL/ENOTSUP"; else
    fail "a streaming writer's pwrite backwards and past the end after parts were sent: EINVAL/ENOTSUP" "$W/bw.out"; fi
# Links: S3 keeps none. EPERM as on a filesystem without them (EEXIST first), one log line
# per run (two ln processes); readlink: EINVAL (exit 1, no output). Nothing appears on the server.
shim bash -c 'ln "$1" "$2"; echo rc=$?; ln -s x "$2"; echo rc=$?; ln -s x "$1"; echo rc=$?; readlink "$1"; echo rc=$?' _ \
    "$M/bad/existing" "$M/bad/link" >"$W/ln.out" 2>"$W/ln.err"
if [ "$(cat "$W/ln.out")" = "$(printf 'rc=1\nrc=1\nrc=1\nrc=1')" ] &&
    grep -qxF "ln: failed to create hard link '$M/bad/link' => '$M/bad/existing': Operation not permitted" "$W/ln.err" &&
    grep -qxF "ln: failed to create symbolic link '$M/bad/link': Operation not permitted" "$W/ln.err" &&
    grep -qxF "ln: failed to create symbolic link '$M/bad/existing': File exists" "$W/ln.err" &&
    [ "$(grep -c 'keeps no hard or symbolic links' "$W/ln.err")" = 1 ]; then
    pass "ln, ln -s: EPERM (EEXIST over an object), one log line per run; readlink: not a link"
else
    cat "$W/ln.out" "$W/ln.err" >"$W/ln.why"
    fail "ln, ln -s on S3: EPERM, one log line" "$W/ln.why"
fi
check "aws lists bad/" aws_keys bad/
if diff <(printf 'bad/existing\n') "$W/keys.txt" >"$W/bw.diff"; then pass "refused writes left nothing partial: no new key under bad/"; else
    { echo "aws lists: $(tr '\n' ' ' <"$W/keys.txt")"; grep -v '^ *$' "$W/bw.out"; } >"$W/bw.why"
    fail "refused writes left nothing partial: no new key under bad/" "$W/bw.why"
fi
existing_unchanged() { s3_aws s3 cp --only-show-errors "s3://$B/bad/existing" - | cmp - "$U/bad/existing"; }
check "refused writes left bad/existing unchanged" existing_unchanged

# --- statistics ---------------------------------------------------------------------------
section "statistics"
mkdir -p "$W/stats"
S3SHIM_STATS_FILE="$W/stats/s.%p.json" shim bash -c 'cat "$1" >/dev/null; cp "$2" "$3"; ls "$4" >/dev/null' _ \
    "$M/sz/r/s5242881" "$U/sz/r/s1" "$N/stats-w" "$M/dir" >"$W/stats.out" 2>&1
check "S3SHIM_STATS_FILE with %p: per-endpoint figures (endpoint url, request counts > 0)" "$PY" - "$W/stats" "$AWS_ENDPOINT_URL" "${SHIM_ENV[@]}" <<'EOF'
import glob, json, os, sys
d, url = sys.argv[1:3]
for kv in sys.argv[3:]:  # the endpoints the programs were given, when not the server's own
    if kv.startswith("S3SHIM_ENDPOINTS="):
        url = kv.split("=", 1)[1].split(",")[0].strip()
files = sorted(glob.glob(d + "/s.*.json"))
tot = {}
urls = set()
for fn in files:
    j = json.load(open(fn))
    assert "s.%d.json" % j["pid"] == os.path.basename(fn), fn
    for m in j["mounts"]:
        for c in m.get("children", []):
            urls.add(c.get("uri"))
            for op, v in c.get("ops", {}).items():
                tot[op] = tot.get(op, 0) + v.get("count", 0)
print(len(files), "files; endpoints", sorted(urls), "; request counts", tot)
ok = len(files) >= 3 and url in urls and tot.get("read", 0) > 0 and tot.get("write", 0) > 0 \
    and sum(tot.values()) >= 3
sys.exit(0 if ok else 1)
EOF

# --- the server stops during an upload --------------------------------------------------
section "the server stops during an upload"
# The proxy of the Swift instance started here is stopped by PID while a slow writer is
# half-way through a > 16 MiB upload, then started again with the same configuration
# (storage servers keep running, so the data is kept): close must fail with EIO, and the
# key must not exist.
proxy_restart() { # start the proxy again the way start-swift.sh does, record it
    local d=$S3RIG_SWIFT_RUNDIR
    EVENTLET_NO_GREENDNS=yes nohup /usr/bin/python3 "$S3RIG_DIR/swift-launch.py" "$d/etc/swift.conf" proxy \
        "$d/etc/proxy-server-0.conf" >>"$d/log/proxy-0.log" 2>&1 </dev/null &
    s3rig_track "$d/run/pids" proxy-0 $!
    # ready when it answers for our bucket, not only a healthcheck that any Swift on this
    # port would give (under make test's two lanes the other lane's Swift once took the
    # port while ours was down: NoSuchBucket; S3RIG_PORT_OFFSET now keeps them apart)
    for _ in $(seq 1 300); do
        [ "$(curl -s -m 2 "$AWS_ENDPOINT_URL/healthcheck" 2>/dev/null)" = OK ] &&
            [ "$(s3_curl -s -m 5 -I -o /dev/null -w '%{http_code}' "$AWS_ENDPOINT_URL/$B" 2>/dev/null)" = 200 ] &&
            return 0
        sleep 0.1
    done
    return 1
}
if [ "$S3RIG_STARTED_SWIFT" = 1 ] && [ -n "$S3RIG_SWIFT_RUNDIR" ] && grep -q '^proxy-0 ' "$S3RIG_SWIFT_RUNDIR/run/pids"; then
    read -r _ ppid pst < <(grep '^proxy-0 ' "$S3RIG_SWIFT_RUNDIR/run/pids" | tail -n 1)
    rm -f "$W/sw.ready" "$W/sw.go"
    S3SHIM_LOG_FILE="$W/sw.log" shim "$PY" "$S3PY" slowwrite "$M/stop/slow" 20 10 "$W/sw.ready" "$W/sw.go" >"$W/sw.out" 2>&1 &
    sw_pid=$!
    BGPIDS+=($sw_pid)
    for _ in $(seq 1 600); do [ -e "$W/sw.ready" ] || ! kill -0 $sw_pid 2>/dev/null && break; sleep 0.05; done
    stopped=0
    if s3rig_tracked_alive "$ppid" "$pst"; then
        kill -TERM "$ppid"
        for _ in $(seq 1 100); do s3rig_tracked_alive "$ppid" "$pst" || { stopped=1; break; }; sleep 0.1; done
        if [ $stopped = 0 ]; then kill -KILL -- "-$ppid" 2>/dev/null || kill -KILL "$ppid"; sleep 0.5; stopped=1; fi
    fi
    touch "$W/sw.go"
    wait $sw_pid
    check "the Swift proxy (pid $ppid) was stopped mid-upload" test $stopped = 1
    if grep -q 'close failed with EIO' "$W/sw.out"; then pass "server stopped mid-upload: close fails with EIO ($(head -n 1 "$W/sw.out"))"; else
        { cat "$W/sw.out"; cat "$W/sw.log"; } >"$W/sw.why"
        fail "server stopped mid-upload: close fails with EIO" "$W/sw.why"
    fi
    check "the writer's failure is logged" grep -q 'upload failed' "$W/sw.log"
    if proxy_restart; then
        pass "the Swift proxy starts again"
        check "aws lists stop/" aws_keys stop/
        check "after the failed upload the key does not exist" no_key stop/slow
    else
        fail "the Swift proxy starts again" "$S3RIG_SWIFT_RUNDIR/log/proxy-0.log"
    fi
else
    skip "server stopped mid-upload" "needs a Swift instance started by this script"
fi

# --- a mount of a key prefix ---------------------------------------------------------------
# Its root is the prefix (it listed the bucket's top), and a directory even with nothing
# under it yet (it said ENOENT once that was mended).
section "a mount of a key prefix"
shim S3SHIM_MOUNTS="/pm=s3://$B/pm-pfx;/pe=s3://$B/pm-empty" bash -c 'mkdir -p /pm/a && echo top >/pm/top &&
    echo f >/pm/a/f && echo other >"/s3/$1/pm-other"
ls /pm | tr "\n" " "; echo; find /pm | sort | tr "\n" " "; echo; ls /s3/$1/pm-pfx | tr "\n" " "; echo
ls -a /pe | tr "\n" " "; stat -c %F /pe; echo e >/pe/x && ls /pe && rm /pe/x; rmdir /pe 2>&1 | grep -c busy
rm -r /pm/a /pm/top "/s3/$1/pm-other"' _ "$B" >"$W/pm.out" 2>&1
check "a mount of a key prefix lists the prefix, find walks it, its root is a directory while empty (mkdir, create, rm in it; rmdir refused)" \
    diff - "$W/pm.out" <<EOF
a top 
/pm /pm/a /pm/a/f /pm/top 
a top 
. .. directory
x
1
EOF

# A name over 255 bytes (NAME_MAX): refused at the call, as a filesystem does; it was
# written, then skipped by every listing, and its directory could not be removed.
shim bash -c 'n=$(printf "L%.0s" {1..256}) m=$(printf "M%.0s" {1..255}); d=/s3/$1/nl
echo x >"$d/$n"; echo "create $?"; mkdir -p "$d/$n/x"; echo "mkdir $?"; echo x >"$d/$m"; echo "255 $?"
ls "$d" | wc -c; rm -r "$d"; echo "rm $?"' _ "$B" >"$W/nl.out" 2>&1
check "a name of 256 bytes: ENAMETOOLONG at create and mkdir; 255 is written, listed and removed" \
    diff - <(grep -v 'too long' "$W/nl.out") <<EOF
create 1
mkdir 1
255 0
256
rm 0
EOF

# A program kept in S3 reads as mode 0644: running it is EACCES, as on a noexec mount (it
# was ENOENT: the kernel looked for the path on disk).
shim bash -c 'cp "$(command -v env)" "/s3/$1/ex-env"; "/s3/$1/ex-env" echo ran; echo "rc $?"; rm "/s3/$1/ex-env"' _ "$B" >"$W/ex.out" 2>&1
check "a program kept in S3: Permission denied (126), not 'No such file'" \
    sh -c "grep -q 'Permission denied' '$W/ex.out' && grep -qx 'rc 126' '$W/ex.out'"

# What the stat cache knows keeps the namespace a tree: no object over a directory it
# has listed, nothing under an object it has seen (they made twin names in listings).
shim "$PY" -c '
import os, shutil, sys
B = "/s3/%s/nstree" % sys.argv[1]
os.makedirs(B + "/d"); open(B + "/d/f", "w").write("1"); open(B + "/f", "w").write("2")
r = [sorted(os.listdir(B))]
for fn in (lambda: open(B + "/d", "w"), lambda: os.mkdir(B + "/f/x"), lambda: open(B + "/f/x", "w")):
    try: fn(); r.append("made")
    except OSError as e: r.append(e.strerror)
r.append(sorted(os.listdir(B)))
shutil.rmtree(B)
print(r)' "$B" >"$W/ns.out" 2>&1
check "a process that listed a directory gets EISDIR writing over it, ENOTDIR under an object it saw (mkdir, create); the listing keeps one name each" \
    diff - "$W/ns.out" <<'EOF'
[['d', 'f'], 'Is a directory', 'Not a directory', 'Not a directory', ['d', 'f']]
EOF

# --- valgrind ------------------------------------------------------------------------------
# A user's program under valgrind with the shim inside it (libcurl, OpenSSL, our threads):
# every byte right, no error reported, no hang. Not under a sanitizer: the two do not mix.
section "valgrind"
if valgrind_usable "valgrind on programs reading, writing and listing S3"; then
    head -c $((3 << 20)) /dev/urandom >"$W/vg.src"
    TMO=300 shim valgrind -q --error-exitcode=9 --trace-children=yes bash -c '
        cp "$2" "$1/vg/a" && cat "$1/vg/a" | cmp - "$2" && cmp "$1/vg/a" "$2" && ls -l "$1/vg/" | grep -q " a$" &&
        mv "$1/vg/a" "$1/vg/b" && rm "$1/vg/b"' _ "/s3/$B" "$W/vg.src" >"$W/vg.out" 2>&1
    rc=$?
    if [ $rc = 0 ]; then pass "valgrind --trace-children: cp, cat, cmp, ls, mv, rm on S3: no error, no hang"
    else fail "valgrind on S3 programs: exit $rc (9: valgrind found errors, 124/137: hung)" "$W/vg.out"; fi
fi

# --- end ---------------------------------------------------------------------------------
section "end"
echo "# $VARIANT: $(($(date +%s) - T_START)) s"
finish
