"""Python programs that tests/s3/run.sh runs under the shim. One subcommand per check;
each prints what it saw and exits 0 when everything was as expected, 1 otherwise.

  read PATH REF             open/read, readinto, seek+read (SET, CUR, END), tell, all
                            compared with the local file REF
  write PATH REF            write REF's bytes in odd-sized chunks through one file object
  badwrites DIR EXISTING    a streaming writer's pwrite back or past its end after parts
                            were sent must fail with EINVAL/ENOTSUP; prints what happened
  overwrite PATH OLD READY GO
                            read 1 MiB, create READY, wait for GO, read on: must get
                            OSError EIO, and every byte read before must be OLD's
  slowwrite PATH MIB HALF READY GO
                            write MIB MiB (1 MiB writes), create READY after HALF MiB,
                            wait for GO, write the rest, close: reports what failed
  pool BASE SUMS            multiprocessing (fork) workers, each reading other objects
                            under BASE; SUMS is a file of "sha256  name" lines
  walk DIR SIZES            os.listdir / os.scandir / os.walk / os.stat of DIR, compared
                            with SIZES ("size name" lines, names relative to DIR)
"""
import errno
import hashlib
import multiprocessing
import os
import sys
import time

MIB = 1 << 20


def wait_for(path, secs=120):
    t = time.time() + secs
    while not os.path.exists(path):
        if time.time() > t:
            raise SystemExit("timed out waiting for " + path)
        time.sleep(0.02)


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def cmd_read(path, ref):
    want = open(ref, "rb").read()
    n = len(want)
    bad = []
    with open(path, "rb") as f:
        got = f.read()
        if got != want:
            bad.append("read(): %d bytes, want %d, equal=%s" % (len(got), n, got == want))
        if f.read() != b"":
            bad.append("read() at EOF is not empty")
        if f.tell() != n:
            bad.append("tell() at EOF is %d, want %d" % (f.tell(), n))
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(n + 7)
        got = 0
        while True:
            k = f.readinto(memoryview(buf)[got:])
            if not k:
                break
            got += k
        if got != n or bytes(buf[:got]) != want:
            bad.append("readinto(): %d bytes, want %d" % (got, n))
        for off, ln in ((n // 2, 1000), (max(n - 1, 0), 10), (n // 3, 200000), (0, 1), (n + 5, 10)):
            f.seek(off)
            b = f.read(ln)
            if b != want[off:off + ln]:
                bad.append("seek(%d)+read(%d): %d bytes, wrong" % (off, ln, len(b)))
        f.seek(0)
        f.read(min(n, 3))
        f.seek(2, os.SEEK_CUR)
        b = f.read(5)
        if b != want[5:10]:
            bad.append("seek(2, SEEK_CUR)+read(5) wrong")
        pos = f.seek(-min(n, 10), os.SEEK_END)
        if pos != n - min(n, 10) or f.read() != want[n - min(n, 10):]:
            bad.append("seek(-10, SEEK_END)+read() wrong")
        if f.seek(0, os.SEEK_END) != n:
            bad.append("seek(0, SEEK_END) is not the size")
    st = os.stat(path)
    if st.st_size != n:
        bad.append("os.stat size %d, want %d" % (st.st_size, n))
    for b in bad:
        print("  " + b)
    print("read %s: %d bytes, %s" % (os.path.basename(path), n, "ok" if not bad else "WRONG"))
    return 1 if bad else 0


def cmd_write(path, ref):
    data = open(ref, "rb").read()
    with open(path, "wb") as f:
        pos = 0
        step = 100003
        while pos < len(data):
            f.write(data[pos:pos + step])
            pos += step
            step = 3 * MIB if step == 100003 else 100003
    print("wrote %s: %d bytes" % (os.path.basename(path), len(data)))
    return 0


def cmd_badwrites(d, existing):
    """Each case must fail with EINVAL or ENOTSUP; whatever happens to the object is
    checked by the caller with aws (new keys must not exist, EXISTING must be unchanged)."""
    ok = True

    def expect(what, fn):
        nonlocal ok
        try:
            fn()
        except OSError as e:
            good = e.errno in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP)
            print("%s: %s %s" % (what, ename(e), "ok" if good else "(want EINVAL or ENOTSUP)"))
            ok = ok and good
            return
        print("%s: succeeded (want EINVAL or ENOTSUP)" % what)
        ok = False

    # O_RDWR, O_APPEND and writes that go back before a part was sent are staged
    # (tests/s3/staging.sh). A streaming writer (O_WRONLY|O_TRUNC) that goes back after
    # parts were sent cannot be: the write fails; the program then closes the descriptor
    # (the usual error path). Nothing partial may appear: the file it wanted was never
    # written, so close must fail or the object must not exist afterwards.
    n = 9 * MIB + 123  # more than one 8 MiB part
    for name, off in (("pwrite-back", 10), ("pwrite-hole", 12 * MIB)):
        fd = os.open(d + "/" + name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"a" * n)
        expect("pwrite at %d after %d sequential bytes (%s)" % (off, n, name),
               lambda: os.pwrite(fd, b"x" * 100, off))
        try:
            os.close(fd)
            print("%s: close returned 0" % name)
        except OSError as e:
            print("%s: close failed with %s" % (name, ename(e)))
    return 0 if ok else 1


def cmd_overwrite(path, old, ready, go):
    want = open(old, "rb").read()
    got = bytearray()
    with open(path, "rb", buffering=0) as f:
        got += f.read(MIB)
        open(ready, "w").close()
        wait_for(go)
        err = None
        while True:
            try:
                b = f.read(MIB)
            except OSError as e:
                err = e
                break
            if not b:
                break
            got += b
    same = bytes(got) == want[:len(got)]
    print("read %d bytes of the old object before %s; those bytes are %s" %
          (len(got), "OSError " + ename(err) if err else "EOF",
           "the old object's" if same else "NOT the old object's (mixed)"))
    return 0 if err is not None and err.errno == errno.EIO and same else 1


def cmd_slowwrite(path, mib, half, ready, go):
    mib, half = int(mib), int(half)
    chunk = bytes(range(256)) * (MIB // 256)
    werr = None
    f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for i in range(mib):
        if i == half:
            open(ready, "w").close()
            wait_for(go)
        try:
            os.write(f, chunk)
        except OSError as e:
            werr = werr or "write %d failed with %s" % (i, ename(e))
        if i < half:
            time.sleep(0.02)
    try:
        os.close(f)
        print((werr + "; " if werr else "") + "close returned 0")
        return 0
    except OSError as e:
        print((werr + "; " if werr else "") + "close failed with " + ename(e))
        return 0


def digest(args):
    base, name = args
    h = hashlib.sha256()
    with open(os.path.join(base, name), "rb") as f:
        while True:
            b = f.read(300000)
            if not b:
                break
            h.update(b)
    return name, h.hexdigest(), os.getpid()


def cmd_pool(base, sums):
    want = {}
    for line in open(sums):
        s, name = line.rstrip("\n").split("  ", 1)
        want[name] = s
    names = sorted(want)
    # The parent uses the mount first (engine threads and connections exist at fork).
    first = digest((base, names[0]))
    bad = [] if first[1] == want[names[0]] else ["parent: " + names[0]]
    pids = set()
    with multiprocessing.get_context("fork").Pool(4) as pool:
        for name, s, pid in pool.map(digest, [(base, n) for n in names], chunksize=1):
            pids.add(pid)
            if s != want[name]:
                bad.append("worker %d: %s" % (pid, name))
    for b in bad:
        print("  wrong bytes: " + b)
    print("pool: %d objects read by %d forked workers, %s" % (len(names), len(pids), "ok" if not bad else "WRONG"))
    return 0 if not bad and len(pids) >= 2 and os.getpid() not in pids else 1


def cmd_walk(d, sizes):
    want = {}
    for line in open(sizes, encoding="utf-8", errors="surrogateescape"):
        size, name = line.rstrip("\n").split(" ", 1)
        want[name] = int(size)
    top = sorted(n.split("/")[0] for n in want)
    top = sorted(set(top))
    bad = []
    ld = sorted(os.listdir(d))
    if ld != top:
        bad.append("os.listdir: %d names, want %d" % (len(ld), len(top)))
    sc = {}
    with os.scandir(d) as it:
        for e in it:
            sc[e.name] = e
    if sorted(sc) != top:
        bad.append("os.scandir: %d names, want %d" % (len(sc), len(top)))
    walked = {}
    for root, dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            walked[os.path.relpath(p, d)] = os.stat(p).st_size
    if walked != want:
        miss = sorted(set(want) - set(walked))[:3]
        extra = sorted(set(walked) - set(want))[:3]
        diff = [k for k in want if k in walked and walked[k] != want[k]][:3]
        bad.append("os.walk+os.stat: %d files, want %d; missing %s extra %s size differs %s" %
                   (len(walked), len(want), miss, extra, diff))
    for name, e in list(sc.items())[:50]:
        if e.is_file() and e.stat().st_size != want.get(name):
            bad.append("scandir stat %s: size %d, want %s" % (name, e.stat().st_size, want.get(name)))
    for b in bad:
        print("  " + b)
    print("walk: %d top names, %d files, %s" % (len(ld), len(walked), "ok" if not bad else "WRONG"))
    return 1 if bad else 0


if __name__ == "__main__":
    cmds = {"read": cmd_read, "write": cmd_write, "badwrites": cmd_badwrites, "overwrite": cmd_overwrite,
            "slowwrite": cmd_slowwrite, "pool": cmd_pool, "walk": cmd_walk}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    sys.exit(cmds[sys.argv[1]](*sys.argv[2:]))
