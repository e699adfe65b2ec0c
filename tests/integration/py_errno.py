"""A successful call leaves the program's errno alone, as libc's do. Programs rely on it:
readdir() callers tell the end of a directory from an error by errno, and some code sets
errno to 0 before a call and looks at it after. Every call here runs with errno set to a
sentinel and prints whether it succeeded and whether the sentinel survived; the mount
must print what the real directory prints.

A file held open for reading and writing during the probe puts the S3 wing's staging area
to use, so the calls also run through its lookups (which meet ENOENT for every name not
staged)."""
import ctypes
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.c_void_p
libc.readdir.argtypes = [ctypes.c_void_p]
libc.closedir.argtypes = [ctypes.c_void_p]
libc.lseek.restype = ctypes.c_long
libc.lseek.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_int]
libc.read.restype = ctypes.c_ssize_t
libc.read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
libc.pread.restype = ctypes.c_ssize_t
libc.pread.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long]
libc.write.restype = ctypes.c_ssize_t
libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]

SENTINEL = 33  # EDOM: nothing here sets it
buf = ctypes.create_string_buffer(1 << 16)
st = ctypes.create_string_buffer(256)


def call(desc, fn, ok=lambda r: r == 0):
    ctypes.set_errno(SENTINEL)
    r = fn()
    e = ctypes.get_errno()
    print(desc, "ok" if ok(r) else "failed", "errno kept" if e == SENTINEL else "errno %d" % e)
    return r


nonneg = lambda r: r is not None and r >= 0
notnull = lambda r: bool(r)

if len(sys.argv) > 1:  # the directory to probe in (the integration battery runs it in its cwd)
    os.chdir(sys.argv[1])
held = os.open("errno-held.tmp", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(held, b"held open while the probe runs\n")

call("stat file", lambda: libc.stat(b"hello.txt", st))
call("stat dir", lambda: libc.stat(b"sub", st))
call("lstat file", lambda: libc.lstat(b"big.bin", st))
call("access file", lambda: libc.access(b"hello.txt", os.R_OK))
call("access dir", lambda: libc.access(b"sub/a", os.F_OK))
fd = call("open file", lambda: libc.open(b"big.bin", os.O_RDONLY), nonneg)
call("read", lambda: libc.read(fd, buf, 4096), nonneg)
call("pread", lambda: libc.pread(fd, buf, 65536, 100000), nonneg)
call("read to the end", lambda: sum(iter(lambda: libc.read(fd, buf, 65536), 0)), nonneg)
call("read at the end", lambda: libc.read(fd, buf, 4096), lambda r: r == 0)
call("lseek", lambda: libc.lseek(fd, 0, os.SEEK_SET), nonneg)
call("fstat", lambda: libc.fstat(fd, st))
call("close", lambda: libc.close(fd))
d = call("opendir", lambda: libc.opendir(b"sub"), notnull)
call("readdir to the end", lambda: sum(1 for _ in iter(lambda: libc.readdir(d), None)), nonneg)
call("closedir", lambda: libc.closedir(d))
fd = call("create", lambda: libc.open(b"errno-new.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), nonneg)
call("write", lambda: libc.write(fd, b"new file\n", 9), lambda r: r == 9)
call("close after write", lambda: libc.close(fd))
call("stat the new file", lambda: libc.stat(b"errno-new.txt", st))
call("rename", lambda: libc.rename(b"errno-new.txt", b"errno-moved.txt"))
call("mkdir", lambda: libc.mkdir(b"errno-dir", 0o755))
call("rmdir", lambda: libc.rmdir(b"errno-dir"))
call("unlink", lambda: libc.unlink(b"errno-moved.txt"))

os.close(held)
os.unlink("errno-held.tmp")
