#!/usr/bin/env python3
"""tests/s3/names.py DIR BIG - files open for writing, used by name, as on a disk.

Runs the same steps in DIR (a local directory, or one in S3 under the shim) and prints
a transcript: what each call answered and, at the end, every file with its size and
MD5. tests/s3/names.sh compares the two transcripts. BIG is the size in bytes of the
"large" writes, chosen past the S3 part size so that their uploads have sent parts
before the name is used.
"""
import dbm.dumb
import hashlib
import os
import subprocess
import sys

D, BIG = sys.argv[1], int(sys.argv[2])
out = []


def say(*a):
    out.append(" ".join(str(x) for x in a))


def attempt(label, fn):
    try:
        say(label, fn())
    except OSError as e:
        say(label, "error", e.errno)


def p(name):
    return os.path.join(D, name)


def blob(n, seed):
    return hashlib.sha256(seed.encode()).digest() * (n // 32) + b"z" * (n % 32)


# 1. A small file being written exists for stat, chmod, utime, access and listings.
f = open(p("w1"), "wb")
f.write(b"hello")
f.flush()
attempt("exists", lambda: os.path.exists(p("w1")))
attempt("size", lambda: os.path.getsize(p("w1")))
attempt("chmod", lambda: os.chmod(p("w1"), 0o644))
attempt("utime", lambda: os.utime(p("w1")))
attempt("access", lambda: os.access(p("w1"), os.W_OK))
attempt("listed", lambda: "w1" in os.listdir(D))
os.makedirs(p("sub"), exist_ok=True)
g = open(p("sub/inner"), "wb")
g.write(b"in")
g.flush()
attempt("listed below", lambda: os.listdir(p("sub")))
attempt("read while open", lambda: open(p("w1"), "rb").read())
f.write(b" world")
f.close()
g.close()
attempt("closed", lambda: open(p("w1"), "rb").read())

# 2. dbm.dumb chmods its files while they are open.
db = dbm.dumb.open(p("db"), "c")
db[b"k"] = b"v"
db.close()
db = dbm.dumb.open(p("db"), "r")
say("dbm", db[b"k"])
db.close()

# 3. open, unlink, write, close leaves nothing (small, and with parts sent).
for name, n in (("gone-small", 10), ("gone-big", BIG)):
    f = open(p(name), "wb")
    f.write(blob(n, name))
    f.flush()
    attempt("unlink " + name, lambda: os.unlink(p(name)))
    f.write(b"after")
    f.close()
    attempt("after close " + name, lambda: os.path.exists(p(name)))

# 4. rename while open: the bytes before and after are under the new name.
for name, n in (("mv-small", 10), ("mv-big", BIG)):
    f = open(p(name), "wb")
    f.write(blob(n, name))
    f.flush()
    attempt("rename " + name, lambda: os.rename(p(name), p(name + ".new")))
    attempt("old name " + name, lambda: os.path.exists(p(name)))
    attempt("new name size " + name, lambda: os.path.getsize(p(name + ".new")))
    f.write(b"tail")
    f.close()

# 4b. renamed twice, then removed, while open: nothing anywhere, and close succeeds.
f = open(p("twice"), "wb")
f.write(blob(BIG, "twice"))
f.flush()
os.rename(p("twice"), p("twice.1"))
os.rename(p("twice.1"), p("twice.2"))
attempt("twice renamed", lambda: [os.path.exists(p(n)) for n in ("twice", "twice.1", "twice.2")])
os.unlink(p("twice.2"))
f.write(b"tail")
attempt("twice closed", f.close)
attempt("twice gone", lambda: [os.path.exists(p(n)) for n in ("twice", "twice.1", "twice.2")])

# 5. rename over a file open for writing: its later bytes go nowhere.
g = open(p("target"), "wb")
g.write(b"first")
g.flush()
with open(p("src"), "wb") as s:
    s.write(b"replacement")
os.rename(p("src"), p("target"))
g.write(b"lost")
g.close()
attempt("replaced", lambda: open(p("target"), "rb").read())

# 6. An existing file patched read-write, renamed while open, written again.
with open(p("patched"), "wb") as s:
    s.write(b"old content of the file")
fd = os.open(p("patched"), os.O_RDWR)
os.write(fd, b"NEW")
os.rename(p("patched"), p("patched.moved"))
attempt("same inode", lambda: os.fstat(fd).st_ino == os.stat(p("patched.moved")).st_ino)
attempt("another process reads", lambda: subprocess.run(
    ["cat", p("patched.moved")], capture_output=True, check=True).stdout)
os.write(fd, b"MORE")
os.close(fd)
attempt("patched", lambda: open(p("patched.moved"), "rb").read())

# 7. A new file opened read-write (staged), renamed while open.
fd = os.open(p("rw-new"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"abc")
attempt("rename rw-new", lambda: os.rename(p("rw-new"), p("rw-new.moved")))
os.write(fd, b"def")
os.close(fd)
attempt("rw-new", lambda: open(p("rw-new.moved"), "rb").read())

# 8. The common idiom: write a temporary, replace the target while still open.
with open(p("final"), "wb") as s:
    s.write(b"version 1")
with open(p("final.tmp"), "wb") as s:
    s.write(b"version 2")
    s.flush()
    os.replace(p("final.tmp"), p("final"))
attempt("replaced in with", lambda: open(p("final"), "rb").read())

# 9. truncate by name of a file this process is writing, then more writes (past the end).
f = open(p("cut"), "wb")
f.write(b"hello ")
f.flush()
os.truncate(p("cut"), 0)
f.write(b"z")
f.close()
attempt("cut", lambda: open(p("cut"), "rb").read())

# 10. syncfs on one of two files being written: both go on and end whole.
import ctypes
f, g = open(p("sync1"), "wb"), open(p("sync2"), "wb")
f.write(b"one")
g.write(b"two")
f.flush()
g.flush()
say("syncfs", ctypes.CDLL(None).syncfs(f.fileno()))
f.write(b" more")
g.write(b" more")
f.close()
g.close()
attempt("synced", lambda: open(p("sync1"), "rb").read() + open(p("sync2"), "rb").read())

# 11. fsync, then more writes (a log kept durable as it goes), small and past a part.
for name, n in (("fs-small", 10), ("fs-big", BIG)):
    f = open(p(name), "wb")
    for i in range(3):
        f.write(blob(n, name + str(i)))
        f.flush()
        os.fsync(f.fileno())
    f.close()
    attempt("fsynced " + name, lambda: os.path.getsize(p(name)))

for name in sorted(os.listdir(D)):
    if os.path.isdir(p(name)):
        say("dir", name, sorted(os.listdir(p(name))))
    else:
        data = open(p(name), "rb").read()
        say("file", name, len(data), hashlib.md5(data).hexdigest())
print("\n".join(out))
