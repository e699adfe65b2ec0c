#!/usr/bin/env bash
# tests/direct/run.sh - direct:// on real filesystems and real loop devices: every byte
# read or written through the shim compared with what the kernel holds.
#
#   BUILD=build SAN= tests/direct/run.sh          (release)
#   BUILD=build/asan SAN=asan tests/direct/run.sh (ASan+UBSan)
#
# Sections: a directory on the filesystem of $TMPDIR (must do O_DIRECT); loop devices
# with 4096- and 512-byte sectors, raw (a direct:///dev mount) and with ext4 on them;
# a small filesystem that fills up (ENOSPC reaches the program); tmpfs (buffered
# fallback with one warning and stats that say so, or an error with
# S3SHIM_DIRECT_FALLBACK=error); the io_uring stats. The loop device sections need root
# and losetup and print "ok - ... # skip" lines without them. Every loop device and
# mount made here is detached/unmounted on exit. Output: "ok"/"not ok" lines, then
# "N passed, M failed".
set -u
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../preamble.sh
. "$HERE/../preamble.sh"
DIO_CMP=$BUILD/tests/dio_cmp
PREADS=$BUILD/tests/preads
TMO=60

# shellcheck source=../variant.sh
. "$TOP/tests/variant.sh" "s3shim direct:// tests"
# shellcheck source=../report.sh
. "$TOP/tests/report.sh"

W=$(mktemp -d "${TMPDIR:-/var/tmp}/s3shim-direct.XXXXXX")
# shellcheck source=../loopdev.sh
. "$TOP/tests/loopdev.sh"
trap 'release_devices; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM

# Run under the shim with mount map $1.
shim() {
    local mounts=$1
    shift
    timeout -k 5 "$TMO" env S3SHIM_MOUNTS="$mounts" LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" "${SHIM_WRAP[@]}" "$@"
}
SHIM_WRAP=() # a command the programs run under (no_uring, below)

[ "$(stat -f -c %T "$W")" = tmpfs ] && bail "$W must be on a filesystem that does O_DIRECT (set TMPDIR)"
SRC=$W/src
mkdir -p "$SRC"
for n in 0 1 511 4095 4097 1048579; do head -c "$n" /dev/urandom >"$SRC/s$n"; done
head -c $((3 * 1048576 + 1234)) /dev/urandom >"$SRC/big"

# --- sections, each on a directory served by direct:// ---------------------------------

# Odd sizes written by cp, dd and python, read back by cat, compared with the source.
writes_reads() { # label backing-dir
    local label=$1 back=$2 mp=/s3shim-direct-$$ out=$W/out.txt ok=1
    for n in 0 1 511 4095 4097 1048579; do
        shim "$mp=direct://$back" bash -c '
            cp "$1" "$2/c$3" && $5 if="$1" of="$2/d$3" bs=777 status=none &&
            dd if="$1" of="$2/m$3" bs=1M status=none &&
            "$4" -c "import sys
d = open(sys.argv[1], \"rb\").read()
with open(sys.argv[2], \"wb\") as f:
    for i in range(0, len(d), 333): f.write(d[i:i + 333])" "$1" "$2/p$3"' _ "$SRC/s$n" "$mp" "$n" "$PY" "$ODD_DD" \
            >"$out" 2>&1 || ok=0
        for k in c d m p; do
            cmp "$SRC/s$n" "$back/$k$n" >>"$out" 2>&1 || ok=0
            shim "$mp=direct://$back" cat "$mp/$k$n" | cmp - "$SRC/s$n" >>"$out" 2>&1 || ok=0
        done
    done
    if [ $ok = 1 ]; then pass "$label: cp, dd bs=777, dd bs=1M, python 333-byte writes of 0, 1, 511, 4095, 4097, 1 MiB+3 bytes; cat reads them back"
    else fail "$label: odd-size writes and reads" "$out"; fi

    cp "$SRC/big" "$back/ref"
    for t in 1 16; do
        if shim "$mp=direct://$back" "$DIO_CMP" "$mp/ref" "$SRC/big" "$t" 300 >"$out" 2>&1; then
            pass "$label: random preads (1-byte, across blocks and chunks, aligned, past EOF) and odd read() runs, $t thread(s): $(head -c 80 "$out")"
        else fail "$label: random reads, $t thread(s), byte for byte" "$out"; fi
    done
    if shim "$mp=direct://$back" "$PREADS" "$mp/ref" "$SRC/big" 200 >"$out" 2>&1; then
        pass "$label: 16 threads on one descriptor: pread, shared-offset read, own opens, dup+preadv"
    else fail "$label: 16 threads on one descriptor (preads)" "$out"; fi

    mkdir -p "$W/plain.$$"
    "$PY" "$HERE/rdwr.py" "$W/plain.$$" >"$W/rdwr.want" 2>&1
    if shim "$mp=direct://$back" "$PY" "$HERE/rdwr.py" "$mp" >"$W/rdwr.got" 2>&1 && diff "$W/rdwr.want" "$W/rdwr.got" >"$out" 2>&1; then
        pass "$label: O_RDWR overwrites read back on the same fd, O_APPEND, r+b, truncate, fsync: same as a plain directory"
    else
        cat "$W/rdwr.got" >>"$out"
        fail "$label: O_RDWR / O_APPEND / truncate like a plain directory" "$out"
    fi
    rm -rf "$W/plain.$$"
}

# A raw block device through a direct:///dev mount.
raw_device() { # label loopdev
    local label=$1 dev=$2 name=${2#/dev/} mp=/s3shim-dev-$$ out=$W/out.txt
    local size
    size=$(blockdev --getsize64 "$dev")
    # odd writes at odd offsets through the shim
    head -c 300001 /dev/urandom >"$W/pat"
    shim "$mp=direct:///dev" $ODD_DD if="$W/pat" of="$mp/$name" bs=777 seek=12345 oflag=seek_bytes conv=notrunc \
        status=none >"$out" 2>&1
    dd if="$dev" bs=1M iflag=direct status=none >"$W/dev.ref" 2>>"$out"
    if cmp -n 300001 "$W/pat" <(tail -c +12346 "$W/dev.ref") >>"$out" 2>&1; then
        pass "$label: dd bs=777 at byte offset 12345 onto the raw device through the shim lands exactly"
    else fail "$label: odd write onto the raw device" "$out"; fi
    if shim "$mp=direct:///dev" cat "$mp/$name" | cmp - "$W/dev.ref" >"$out" 2>&1; then
        pass "$label: cat of the whole raw device equals an O_DIRECT dd of it"
    else fail "$label: cat of the raw device" "$out"; fi
    if shim "$mp=direct:///dev" "$DIO_CMP" "$mp/$name" "$W/dev.ref" 4 200 >"$out" 2>&1; then
        pass "$label: random reads of the raw device, 4 threads: $(head -c 70 "$out")"
    else fail "$label: random reads of the raw device" "$out"; fi
    local st
    st=$(shim "$mp=direct:///dev" "$PY" -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); print(os.fstat(fd).st_size)' "$mp/$name" 2>&1)
    if [ "$st" = "$size" ]; then pass "$label: fstat reports the device size ($size)"
    else echo "fstat said '$st', device is $size" >"$out"; fail "$label: fstat size of the raw device" "$out"; fi
}

# --- 1. a directory on $TMPDIR's filesystem ----------------------------------------------
mkdir -p "$W/dir"
writes_reads "$(stat -f -c %T "$W") directory" "$W/dir"

# --- 2-4. loop devices -------------------------------------------------------------------
if [ $have_loop = 0 ]; then
    for s in 4096 512; do
        skip "loop device with $s-byte sectors, raw and with ext4" "$why"
    done
    skip "a small filesystem that fills up: ENOSPC reaches the program" "$why"
    skip "tmpfs: buffered fallback" "$why"
else
    for s in 4096 512; do
        new_loop 64 "$s"
        if [ -z "$dev" ]; then fail "losetup -b $s"; continue; fi
        if [ "$s" = 4096 ]; then
            if dd if="$dev" of=/dev/null bs=512 count=1 iflag=direct status=none 2>/dev/null; then
                fail "the 4096-byte-sector loop device refuses 512-byte O_DIRECT reads (else this test proves nothing)"
            else pass "the 4096-byte-sector loop device refuses 512-byte O_DIRECT reads"; fi
        fi
        raw_device "raw $s-byte-sector loop device" "$dev"
        mnt=$W/mnt$s
        mkdir -p "$mnt"
        if mkfs.ext4 -q -F "$dev" >/dev/null 2>&1 && mount "$dev" "$mnt"; then
            MNTS+=("$mnt")
            writes_reads "ext4 on a $s-byte-sector loop device" "$mnt"
            umount "$mnt" && MNTS=("${MNTS[@]/$mnt}")
        else fail "mkfs.ext4 and mount on $dev"; fi
    done

    # --- ENOSPC ---
    new_loop 8 512
    mnt=$W/full
    mkdir -p "$mnt"
    out=$W/out.txt
    if [ -n "$dev" ] && mkfs.ext4 -q -F "$dev" >/dev/null 2>&1 && mount "$dev" "$mnt"; then
        MNTS+=("$mnt")
        head -c $((16 << 20)) /dev/urandom >"$W/16m"
        mp=/s3shim-full-$$
        shim "$mp=direct://$mnt" cp "$W/16m" "$mp/a" >"$out" 2>&1
        rc=$?
        if [ $rc != 0 ] && grep -q "No space left on device" "$out"; then
            pass "cp onto a full filesystem fails with 'No space left on device' (exit $rc)"
        else fail "cp onto a full filesystem: exit $rc, want non-zero and ENOSPC" "$out"; fi
        rm -f "$mnt/a"
        shim "$mp=direct://$mnt" "$PY" -c '
import errno, sys
try:
    with open(sys.argv[1], "wb") as f:
        for i in range(256):
            f.write(b"y" * 65537)
    print("no error")
except OSError as e:
    print("errno", errno.errorcode.get(e.errno))' "$mp/b" >"$out" 2>&1
        if grep -q "errno ENOSPC" "$out"; then pass "python3 writing 16 MiB onto a full filesystem gets OSError ENOSPC"
        else fail "python3 onto a full filesystem: want ENOSPC" "$out"; fi
        rm -f "$mnt/b"
        # dd's of= is its fd 1: dd's own writes go straight to the file (not through the
        # pump's pipe), so dd itself reports ENOSPC.
        shim "$mp=direct://$mnt" dd if="$W/16m" of="$mp/c" bs=1M status=none >"$out" 2>&1
        rc=$?
        if [ $rc != 0 ] && grep -q "No space left" "$out"; then pass "dd bs=1M onto a full filesystem exits $rc with 'No space left'"
        else fail "dd onto a full filesystem: exit $rc" "$out"; fi
        umount "$mnt" && MNTS=("${MNTS[@]/$mnt}")
    else fail "set up a small ext4 filesystem"; fi

    # --- tmpfs: buffered fallback ---
    mnt=$W/tmpfs
    mkdir -p "$mnt"
    if mount -t tmpfs -o size=32m tmpfs "$mnt"; then
        MNTS+=("$mnt")
        mp=/s3shim-tmpfs-$$
        S3SHIM_STATS=1 shim "$mp=direct://$mnt" bash -c 'cp "$1" "$2/a" && cp "$1" "$2/b" && cat "$2/a" "$2/b" >/dev/null' _ "$SRC/big" "$mp" >"$out" 2>&1
        rc=$?
        nwarn=$(grep -c "BUFFERED" "$out")
        if [ $rc = 0 ] && cmp -s "$SRC/big" "$mnt/a" && grep -q "buffered fallback" "$out" && [ "$nwarn" -ge 1 ] && [ "$nwarn" -le 3 ]; then
            pass "tmpfs: buffered fallback, one warning per process ($nwarn for cp, cp, cat), stats say 'buffered fallback', bytes right"
        else fail "tmpfs fallback: rc $rc, $nwarn warnings" "$out"; fi
        shim "$mp=direct://$mnt" env S3SHIM_DIRECT_FALLBACK=error cp "$SRC/big" "$mp/c" >"$out" 2>&1
        rc=$?
        if [ $rc != 0 ] && grep -q "S3SHIM_DIRECT_FALLBACK=error" "$out" && [ ! -s "$mnt/c" ]; then
            pass "tmpfs with S3SHIM_DIRECT_FALLBACK=error: cp fails (exit $rc) and says why"
        else fail "tmpfs with S3SHIM_DIRECT_FALLBACK=error" "$out"; fi
        umount "$mnt" && MNTS=("${MNTS[@]/$mnt}")
    else fail "mount a tmpfs"; fi
fi

# --- without io_uring ------------------------------------------------------------------------
# Where io_uring is refused (a container's default seccomp profile, kernel.io_uring_disabled)
# or cannot work (valgrind), the same requests go to a pool of threads: every byte the same.
out=$W/out.txt
mkdir -p "$W/nou"
SHIM_WRAP=("$BUILD/tests/no_uring")
if ! "$BUILD/tests/no_uring" "$PY" -c 'import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
p = ctypes.create_string_buffer(120)
sys.exit(0 if libc.syscall(425, 8, p) < 0 and ctypes.get_errno() == 1 else 1)' >"$out" 2>&1; then
    fail "no_uring refuses io_uring_setup with EPERM (else the next tests prove nothing)" "$out"
else
    pass "no_uring refuses io_uring_setup with EPERM"
    writes_reads "io_uring refused by seccomp (pool of threads)" "$W/nou"
    S3SHIM_LOG=info S3SHIM_STATS=1 shim "/s3shim-nou-$$=direct://$W/nou" cat "/s3shim-nou-$$/ref" 2>"$out" >"$W/nou.got"
    if cmp -s "$W/nou.got" "$SRC/big" && grep -q "io_uring is not available (Operation not permitted" "$out" &&
        grep -q "O_DIRECT by threads (no io_uring)" "$out"; then
        pass "io_uring refused: one info line says so and why, the stats say 'by threads', cat reads every byte"
    else fail "io_uring refused: log line, stats, bytes" "$out"; fi
    SHIM_WRAP=("$BUILD/tests/no_uring" env S3SHIM_DIRECT_ENGINE=io_uring)
    shim "/s3shim-nou-$$=direct://$W/nou" cat "/s3shim-nou-$$/ref" >/dev/null 2>"$out"
    rc=$?
    if [ $rc != 0 ] && grep -q "cannot start the I/O engine (io_uring): Operation not permitted" "$out"; then
        pass "S3SHIM_DIRECT_ENGINE=io_uring where it is refused: cat fails (exit $rc) and says why"
    else fail "S3SHIM_DIRECT_ENGINE=io_uring refused: exit $rc" "$out"; fi
fi
SHIM_WRAP=(env S3SHIM_DIRECT_ENGINE=threads)
if shim "/s3shim-thr-$$=direct://$W/nou" "$DIO_CMP" "/s3shim-thr-$$/ref" "$SRC/big" 16 300 >"$out" 2>&1; then
    pass "S3SHIM_DIRECT_ENGINE=threads: random reads from 16 threads byte for byte: $(head -c 60 "$out")"
else fail "S3SHIM_DIRECT_ENGINE=threads: random reads, 16 threads" "$out"; fi
SHIM_WRAP=()
# (set for the whole run: a run's first process is the one that reports its settings)
S3SHIM_DIRECT_ENGINE=bogus shim "/s3shim-thr-$$=direct://$W/nou" cat "/s3shim-thr-$$/ref" 2>"$out" | cmp -s - "$SRC/big"
if [ "${PIPESTATUS[*]}" = "0 0" ] && grep -q "S3SHIM_DIRECT_ENGINE: 'bogus' is not auto, io_uring or threads" "$out"; then
    pass "S3SHIM_DIRECT_ENGINE=bogus: one clear line, then the default"
else fail "S3SHIM_DIRECT_ENGINE=bogus" "$out"; fi
# valgrind runs the program (and the shim inside it) on its own CPU: the shim must
# neither hang (valgrind 3.19 runs no other thread while one waits in io_uring_enter)
# nor make valgrind report errors. Not under a sanitizer: the two do not mix.
if valgrind_usable "valgrind on programs under the shim"; then
    TMO=300 shim "/s3shim-vg-$$=direct://$W/nou" valgrind -q --error-exitcode=9 --trace-children=yes bash -c '
        cat "$1/ref" | cmp - "$2" && cp "$2" "$1/vg" && cmp "$1/vg" "$2" && "$3" "$1/ref" "$2" 4 50' _ \
        "/s3shim-vg-$$" "$SRC/big" "$DIO_CMP" >"$out" 2>&1
    rc=$?
    if [ $rc = 0 ]; then pass "valgrind --trace-children: cat, cp and 4 threads of random reads on direct://, no error, no hang"
    else fail "valgrind on direct:// programs: exit $rc (9: valgrind found errors, 124/137: hung)" "$out"; fi
fi

# --- appends from several processes, and a reader following them -------------------------
# O_APPEND writes go through a buffered O_APPEND descriptor: four shells appending lines
# to one log lost lines and left zeros between them (each completed the last block,
# wrote it whole and truncated back); a reader that had met the end of file saw nothing
# of what others appended later (the end's chunk stayed cached).
out=$W/out.txt
mp=/s3shim-append-$$
mkdir -p "$W/app"
shim "$mp=direct://$W/app" bash -c 'for w in 1 2 3 4; do (for i in $(seq 50); do echo "writer $w line $i" >>"$1/log"; done) & done; wait' _ "$mp" >"$out" 2>&1
if [ "$(sort -u "$W/app/log" | wc -l) $(wc -l <"$W/app/log") $(tr -d '\000' <"$W/app/log" | wc -c) $(wc -c <"$W/app/log")" = "200 200 3364 3364" ]; then
    pass "four shells appending 50 lines each to one file (>>): 200 distinct lines, no zeros"
else { ls -l "$W/app/log"; sort "$W/app/log" | uniq -c | head; } >>"$out"; fail "four shells appending to one file" "$out"; fi
shim "$mp=direct://$W/app" "$PY" -c '
import os, subprocess, sys
p = sys.argv[1] + "/r.txt"
open(p, "w").write("l1\n")
f = open(p, "rb", buffering=0)
got = [f.read()]
for i in (2, 3):
    subprocess.run(["sh", "-c", "echo l%d >> %s" % (i, p)])
    got += [f.read(), f.read()]
print(got)' "$mp" >"$out" 2>&1
if [ "$(cat "$out")" = "[b'l1\n', b'l2\n', b'', b'l3\n', b'']" ]; then
    pass "a reader at the end of file reads what another process appended since"
else fail "a reader following another process's appends" "$out"; fi
rm -rf "$W/app"

# --- the program's own asynchronous I/O: io_uring, Linux AIO, POSIX AIO ---------------------
# fio's io_uring and libaio engines hand their requests to the kernel themselves, and
# glibc's POSIX AIO runs them on threads that call its internal pread: on a shim
# descriptor (a placeholder) all of them failed with EBADF. Each engine writes 8 MiB at
# random with checksummed blocks and reads them back; the same file is then verified
# through the shim's own path (psync) and on the backing file without the shim.
out=$W/out.txt
mp=/s3shim-kio-$$
mkdir -p "$W/kio"
fio_verify() { # LABEL SCHEME FILE FIO-ARGS...: a checksummed write read back, then checked twice more
    local label=$1 scheme=$2 f=$3 ok=1
    shift 3
    local common=(--name=kio --bs=4k --size=8M --verify=crc32c --verify_fatal=1 --verify_state_save=0 --norandommap --randrepeat=1)
    shim "$mp=$scheme://$W/kio" fio "${common[@]}" --filename="$mp/$f" --rw=randwrite --do_verify=1 "$@" >"$out" 2>&1 || ok=0
    shim "$mp=$scheme://$W/kio" fio "${common[@]}" --filename="$mp/$f" --rw=randwrite --verify_only \
        --ioengine=psync >>"$out" 2>&1 || ok=0
    fio "${common[@]}" --filename="$W/kio/$f" --rw=randwrite --verify_only --ioengine=psync >>"$out" 2>&1 || ok=0
    grep -q 'err= 0' "$out" || ok=0
    if [ $ok = 1 ] && [ "$(stat -c %s "$W/kio/$f")" = 8388608 ]; then
        pass "$scheme://: $label writes 8 MiB at random and reads it back verified; the shim's reads and the file agree"
    else fail "$scheme://: $label (fio --verify)" "$out"; fi
}
for scheme in direct file; do
    fio_verify "fio io_uring (iodepth 8, O_DIRECT)" $scheme u1 --ioengine=io_uring --iodepth=8 --direct=1
    fio_verify "fio io_uring (iodepth 8, buffered)" $scheme u0 --ioengine=io_uring --iodepth=8 --direct=0
    fio_verify "fio io_uring with registered files" $scheme ur --ioengine=io_uring --iodepth=8 --direct=1 --registerfiles=1
    fio_verify "fio libaio (iodepth 8, O_DIRECT)" $scheme a1 --ioengine=libaio --iodepth=8 --direct=1
    fio_verify "fio libaio (iodepth 8, buffered)" $scheme a0 --ioengine=libaio --iodepth=8 --direct=0
    fio_verify "fio posixaio (iodepth 8)" $scheme p0 --ioengine=posixaio --iodepth=8
    if shim "$mp=$scheme://$W/kio" "$BUILD/tests/aio_calls" "$mp" "$W" >"$out" 2>&1; then
        pass "$scheme://: POSIX AIO: aio_read/write/fsync/cancel, lio_listio with a plain file's request, signal and thread notification: $(tail -1 "$out")"
    else fail "$scheme://: POSIX AIO calls (aio_calls)" "$out"; fi
done
# A liburing program makes its system calls itself: with S3SHIM_KERNEL_FILES=1 its
# requests reach the file; without, they fail with EBADF (docs/semantics.md says so).
for scheme in direct file; do
    S3SHIM_KERNEL_FILES=1 shim "$mp=$scheme://$W/kio" "$BUILD/tests/uring_rw" "$mp/lu" >"$out" 2>&1
    if [ "$(cat "$out")" = "uring: ok 64" ] && shim "$mp=$scheme://$W/kio" "$BUILD/tests/uring_rw" "$mp/lu" >>"$out" 2>&1
    [ $? = 3 ] && grep -q "uring: error EBADF" "$out"; then
        pass "$scheme://: a liburing program's writes and reads with S3SHIM_KERNEL_FILES=1 (pread agrees); EBADF without"
    else fail "$scheme://: a liburing program (uring_rw)" "$out"; fi
done
# The engine's writes, then the kernel's reads of the same file in another process.
shim "$mp=direct://$W/kio" fio --name=kio --bs=4k --size=8M --verify=crc32c --verify_state_save=0 --norandommap --randrepeat=1 \
    --filename="$mp/e" --rw=randwrite --do_verify=0 --ioengine=psync >"$out" 2>&1
if shim "$mp=direct://$W/kio" fio --name=kio --bs=4k --size=8M --verify=crc32c --verify_fatal=1 --verify_state_save=0 --norandommap \
    --randrepeat=1 --filename="$mp/e" --rw=randwrite --verify_only --ioengine=io_uring --iodepth=8 --direct=1 >>"$out" 2>&1; then
    pass "direct://: what the engine wrote (fio psync) verified by fio io_uring"
else fail "direct://: engine writes read by io_uring" "$out"; fi
# Exposed descriptors and children: the offset stays shared with a forked child and with
# a program exec'd with the descriptor, and the number names the file again after.
printf 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz' >"$W/kio/letters"
S3SHIM_KERNEL_FILES=1 shim "$mp=direct://$W/kio" "$PY" -c '
import os, subprocess, sys
fd = os.open(sys.argv[1] + "/letters", os.O_RDONLY)
os.set_inheritable(fd, True)
real = lambda: os.readlink("/proc/self/fd/%d" % fd).endswith("/letters")
out = [real(), os.read(fd, 5)]
out.append(subprocess.run(["sh", "-c", "head -c 5 <&%d" % fd], pass_fds=[fd], capture_output=True).stdout)
out += [real(), os.read(fd, 5)]
pid = os.fork()
if pid == 0:
    os.write(1, os.read(fd, 5) + b"\n")
    os._exit(0)
os.waitpid(pid, 0)
out += [real(), os.read(fd, 5)]
print(out)' "$mp" >"$out" 2>&1
if [ "$(cat "$out")" = "[True, b'ABCDE', b'FGHIJ', True, b'KLMNO', True, b'UVWXY']
PQRST" ] || [ "$(cat "$out")" = "PQRST
[True, b'ABCDE', b'FGHIJ', True, b'KLMNO', True, b'UVWXY']" ]; then
    pass "S3SHIM_KERNEL_FILES=1: the descriptor names the file; an exec'd child and a forked one share its offset"
else fail "exposed descriptors across exec and fork" "$out"; fi
rm -rf "$W/kio"

# --- stats ---------------------------------------------------------------------------------
out=$W/out.txt
mp=/s3shim-stats-$$
head -c $((16 << 20)) /dev/urandom >"$W/dir/s16"
S3SHIM_STATS=1 shim "$mp=direct://$W/dir" cat "$mp/s16" >/dev/null 2>"$out"
qd=$(sed -n 's/.*queue depth max \([0-9]*\).*/\1/p' "$out" | head -1)
if grep -q "io_uring  O_DIRECT, alignment memory" "$out" && [ "${qd:-0}" -ge 2 ]; then
    pass "stats: the mount's io_uring requests with alignment and queue depth (max $qd for a sequential cat)"
else fail "stats: io_uring line with queue depth >= 2" "$out"; fi

finish
