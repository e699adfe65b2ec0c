#!/usr/bin/env bash
# tests/stdstream/run.sh - shim files on fds 0 and 1 (shell redirections, dd's if= and
# of=): the program's own calls go straight to the file, what bypasses us (glibc's stdio
# internals, children sharing the pipe, programs without the shim) goes through the
# pump's pipe, and no byte is ever lost, doubled or reordered between the two (pump.h).
#
#   BUILD=build tests/stdstream/run.sh                (release)
#   BUILD=build/asan SAN=asan tests/stdstream/run.sh  (ASan+UBSan, libasan preloaded first)
#
# Every check runs one bash script twice: on real files, and under the shim on a mount
# (file://, direct:// on a filesystem that does O_DIRECT, and S3: the rig's Swift unless
# AWS_ENDPOINT_URL is set; STDSTREAM_S3=0 leaves S3 out; ONLY=TEXT runs the cases whose
# description holds TEXT). The script gets the input
# file as $1 and an output file as $2; its stdout, its exit status and the output file
# must be the same byte for byte. tests/helpers/stdmix.c mixes read(), readv(),
# sendfile(), splice() and stdio on one descriptor. Output: "ok - ..." / "not ok - ..."
# and one closing "N passed, M failed".
set -u
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$HERE/../preamble.sh"
# shellcheck source=../variant.sh
. "$TOP/tests/variant.sh" "s3shim standard streams"
# shellcheck source=../report.sh
. "$TOP/tests/report.sh"
# shellcheck source=../capped.sh
. "$TOP/tests/capped.sh"
[ "$VARIANT" = asan ] && export "${SAN_ENV[@]}"
export MIX=$BUILD/tests/stdmix
TMO=120

TMPBASE=${TMPDIR:-/tmp}
[ "$(stat -f -c %T "$TMPBASE")" = tmpfs ] && TMPBASE=/var/tmp # direct:// needs O_DIRECT
W=$(mktemp -d "$TMPBASE/s3shim-std.XXXXXX")
cleanup() {
    rm -rf "$W"
    declare -F s3rig_env_cleanup >/dev/null && s3rig_env_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[ -x "$MIX" ] || bail "helper $MIX is built (make $MIX)"

# Inputs: binary (NULs, no lines to speak of) over 3 pump chunks and not a multiple of
# anything; text with short lines (the shells' read builtin, head -n).
mkdir -p "$W/in"
head -c $((3 * 1048576 + 12345)) /dev/urandom >"$W/in/big.bin"
seq 1 300000 | sed 's/$/ line of text/' >"$W/in/text.txt"

# READ DESC INPUT SCRIPT, WRITE DESC INPUT SCRIPT: see the header. On S3, WRITE scripts
# may also be marked `nos3` (an upload cannot pass from one program to another).
CASES=()
READ() { CASES+=("R|$1|$2|$3"); }
WRITE() { CASES+=("W|$1|$2|$3"); }

READ '{ read x; head -c 1000; cat; } < f (read builtin, then children through the pipe)' text.txt \
    '{ read x; printf "%s\n" "$x"; head -c 1000; cat; } < "$1"'
READ '{ head -c 100; sh -c "head -c 100"; cat; } < f (fork and exec in the middle)' big.bin \
    '{ head -c 100; sh -c "head -c 100"; cat; } < "$1"'
READ '{ head -c 100; <child without LD_PRELOAD> head -c 100; cat; } < f' big.bin \
    '{ head -c 100; env -u LD_PRELOAD sh -c "head -c 100"; cat; } < "$1"'
READ '{ read; head -c 20; <no preload> head -c 5000; read; cat; } < f (the shell reads after its children)' text.txt \
    '{ read x; echo "$x"; head -c 20; env -u LD_PRELOAD head -c 5000; read y; echo "<$y>"; cat; } < "$1"'
READ '{ read a; ( read b ); read c; cat; } < f (a forked subshell reads in the middle)' text.txt \
    '{ read a; ( read b; echo "sub $b" ); read c; echo "$a / $c"; cat; } < "$1"'
READ 'exec < f; head -c 10; read x; exec cat (the shell owns the stream, then execs)' text.txt \
    'exec < "$1"; head -c 10; read x; echo "[$x]"; exec cat'
READ 'stdmix in < f: read, getchar, getline, readv, sendfile, splice on fd 0' big.bin '"$MIX" in < "$1"'
READ 'stdmix in < f (text)' text.txt '"$MIX" in < "$1"'
READ 'dd if=f bs=1M (dd opens if= as fd 0)' big.bin 'dd if="$1" bs=1M status=none'
READ 'dd bs=64k < f' big.bin 'dd bs=64k status=none < "$1"'
READ 'cat < f; wc -c < f; md5sum < f' big.bin 'cat < "$1"; wc -c < "$1"; md5sum < "$1"'
READ '{ head -c 1000 >/dev/null; tail -c 300; } < f (lseek after direct reads)' big.bin \
    '{ head -c 1000 >/dev/null; tail -c 300; } < "$1"'
# (a buffer size of its own: python sizes it from st_blksize, which direct:// sets)
READ 'python3: os.read, a buffered reader, os.read, the rest' big.bin \
    "$PY"' -c "import os,sys; f=os.fdopen(0,\"rb\",buffering=65536); a=os.read(0,10); b=f.read(5); c=os.read(0,7); sys.stdout.buffer.write(a+b+c+f.read())" < "$1"'
READ 'env -u LD_PRELOAD cat < f: the shell child that owns the stream execs a program without the shim (nos3)' \
    big.bin 'env -u LD_PRELOAD cat < "$1"'
READ '{ read x; exec <no preload> cat; } < f (nos3)' text.txt '{ read x; echo "[$x]"; exec env -u LD_PRELOAD cat; } < "$1"'
READ 'stdmix fopen-in f: fopen lands on fd 0, a stdio stream of the shim reads it' big.bin '"$MIX" fopen-in "$1"'
WRITE '{ printf; echo; child sh; child without LD_PRELOAD; dd; echo; } > g' big.bin \
    '{ printf "a\n"; echo b; sh -c "echo c"; env -u LD_PRELOAD sh -c "echo d"; dd if="$1" bs=64k status=none; echo e; } > "$2"'
WRITE 'stdmix out 3 > g: write, printf (flushed and not), writev, fwrite, a forked child' big.bin '"$MIX" out 3 > "$2"'
WRITE '{ echo; echo >&2; stdmix out 1; } > g 2>&1 (two fds, one pipe)' big.bin \
    '{ echo out; echo err >&2; "$MIX" out 1; } > "$2" 2>&1'
WRITE 'dd if=f of=g bs=1M (fd 0 and fd 1 both shim files)' big.bin 'dd if="$1" of="$2" bs=1M status=none'
WRITE 'cat < f > g' big.bin 'cat < "$1" > "$2"'
WRITE 'exec > g; echo; stdmix out 1; exec cat f (nos3)' big.bin 'exec > "$2"; echo one; "$MIX" out 1; exec cat "$1"'
WRITE 'stdmix fopen-out g: fopen lands on fd 1, fprintf, fwrite and write(1) by turns' big.bin '"$MIX" fopen-out "$2"'
WRITE 'exec > g; echo; stdmix out 1; exec <no preload> sh -c "echo; seq" (nos3)' big.bin \
    'exec > "$2"; echo one; "$MIX" out 1; exec env -u LD_PRELOAD sh -c "echo two; seq 1 50000"'
WRITE 'stdmix badf < f > g: write(0) and read(1) fail with EBADF' big.bin '"$MIX" badf < "$1" > "$2"'
WRITE 'stdmix fclose-exec > g: fd 1 closed by stdio, then a socket there; exec: the socket stays' big.bin \
    '"$MIX" fclose-exec > "$2"'

# run_cases SCHEME MOUNT-DIR: MOUNT-DIR holds the inputs under the shim; $W/plain on disk.
# GET KEY FILE copies an output back from the backend.
run_cases() {
    local scheme=$1 mdir=$2 c kind desc in script n=0
    for c in "${CASES[@]}"; do
        IFS='|' read -r kind desc in script <<<"$c"
        n=$((n + 1))
        [[ $desc == *"${ONLY:-}"* ]] || continue
        if [ "$scheme" = s3 ] && [[ $desc == *"(nos3)"* ]]; then
            skip "$scheme: $desc" "an object's bytes cannot pass to a program exec'd without the shim, nor an upload under way to any (docs/semantics.md)"
            continue
        fi
        rm -f "$W/plain/out"
        (cd "$W/plain" && timeout "$TMO" bash -c "$script" sh "$W/in/$in" "$W/plain/out") >"$W/p.out" 2>"$W/p.err"
        local prc=$?
        rm -f "$W/hang.txt"
        (CAPPED_DUMP=$W/hang.txt capped "$TMO" env S3SHIM_MOUNTS="$MOUNTS" S3SHIM_LOG=warn LD_PRELOAD="$PRELOAD" bash -c "$script" sh \
            "$mdir/$in" "$mdir/out$n") >"$W/s.out" 2>"$W/s.err"
        local src=$?
        local why=""
        [ $prc = $src ] || why="exit status $prc plainly, $src under the shim"
        [ -z "$why" ] && ! cmp -s "$W/p.out" "$W/s.out" && why="stdout differs: $(cmp "$W/p.out" "$W/s.out" 2>&1 | head -1) (sizes $(stat -c %s "$W/p.out") / $(stat -c %s "$W/s.out"))"
        if [ -z "$why" ] && [ "$kind" = W ]; then
            rm -f "$W/got"
            GET "out$n" "$W/got"
            cmp -s "$W/plain/out" "$W/got" || why="output file differs: $(cmp "$W/plain/out" "$W/got" 2>&1 | head -1) (sizes $(stat -c %s "$W/plain/out" 2>/dev/null) / $(stat -c %s "$W/got" 2>/dev/null))"
        fi
        if [ -z "$why" ] && grep -q "ERROR\|AddressSanitizer\|runtime error" "$W/s.err"; then why="errors under the shim"; fi
        if [ -z "$why" ]; then pass "$scheme: $desc"; else DETAIL_LINES=150 fail "$scheme: $desc" "$why" "$W/s.err" "$([ -s "$W/hang.txt" ] && echo "$W/hang.txt")"; fi
    done
}

mkdir -p "$W/plain"
# file:// and direct:// on a directory holding the inputs.
for scheme in file direct; do
    back=$W/back-$scheme
    mkdir -p "$back" && cp "$W/in/big.bin" "$W/in/text.txt" "$back/"
    MOUNTS="/s3shim-std-$$=$scheme://$back"
    GET() { cp "$back/$1" "$2" 2>/dev/null; }
    run_cases "$scheme" "/s3shim-std-$$"
done

if [ "${STDSTREAM_S3:-1}" = 0 ]; then
    skip "s3: the same checks on an S3 bucket" "STDSTREAM_S3=0"
    finish
fi
# shellcheck source=../s3rig/s3env.sh
. "$TOP/tests/s3rig/s3env.sh" || bail "an S3 server for the s3 checks (tests/s3rig/s3env.sh)"
s3_put "$W/in/big.bin" std/big.bin >/dev/null && s3_put "$W/in/text.txt" std/text.txt >/dev/null ||
    bail "uploading the inputs"
MOUNTS=""
GET() { s3_get "std/$1" "$2" >/dev/null 2>&1; }
run_cases s3 "/s3/$S3_BUCKET/std"
finish
