"""Read-only file system use from Python, run with the working directory at the top of
the test tree (REAL, or the mount under the shim). Prints deterministic lines that
run.sh compares between the two runs; $D (the tree's absolute path) shows up in some
lines and is normalised by run.sh. Inode and device numbers differ legitimately, so only
their consistency is printed (as booleans)."""
import hashlib
import mmap
import os
import pathlib
import shutil
import stat
import sys

D = os.environ["D"]


def h(b):
    return hashlib.sha256(b).hexdigest()[:16]


def section(name):
    print("##", name)


section("buffered binary: read, seek, tell, readinto")
with open("big.bin", "rb") as f:
    a = f.read(10)
    print("read10", a.hex(), f.tell())
    f.seek(-100, os.SEEK_END)
    b = f.read()
    print("tail100", h(b), len(b), f.tell())
    f.seek(12345)
    ba = bytearray(1000)
    print("readinto", f.readinto(ba), h(ba), f.tell())
    f.seek(0)
    print("all", h(f.read()), f.tell())
    print("at eof", f.read(10), f.read())
    f.seek(5, os.SEEK_SET)
    f.seek(7, os.SEEK_CUR)
    print("seek cur", f.tell(), f.read(3).hex())
    f.seek(10_000_000)
    print("past eof", f.read(5), f.tell())
    print("peek/readline", len(f.peek(0)) >= 0, f.seekable(), f.readable(), f.writable())

section("unbuffered raw file, absolute path")
with open(D + "/odd.bin", "rb", buffering=0) as f:
    print("raw", type(f).__name__, len(f.read(70000)), f.tell())
    mv = memoryview(bytearray(50000))
    print("raw readinto", f.readinto(mv), f.tell(), h(mv))
    print("raw readall", h(f.readall()), f.tell())
    f.seek(0, os.SEEK_END)
    print("raw end", f.tell(), f.read(5))

section("text mode")
with open("lines.txt", encoding="utf-8") as f:
    n = s = 0
    for line in f:
        n += 1
        s += int(line.split()[0])
    print("lines", n, s)
with open("lines.txt") as f:
    f.readline()
    pos = f.tell()
    second = f.readline()
    f.seek(pos)
    print("text tell/seek", pos, second == f.readline())
with open("ünïcødé 名前.txt", encoding="utf-8") as f:
    print("unicode name", repr(f.read()))
with open("with space.txt") as f:
    print("space name", repr(f.readline()), repr(f.readline()))
with open("dir with space/inner file.txt") as f:
    print("space dir", repr(f.read()))
for name in ("empty", "one"):
    with open(name, "rb") as f:
        print("small", name, f.read(), f.read(1))

section("os-level descriptors")
fd = os.open("big.bin", os.O_RDONLY)
print("os.read", h(os.read(fd, 4096)), os.lseek(fd, 0, os.SEEK_CUR))
print("os.pread", h(os.pread(fd, 5000, 3145000)), os.lseek(fd, 0, os.SEEK_CUR))
b1, b2 = bytearray(100), bytearray(200)
print("os.preadv", os.preadv(fd, [b1, b2], 1000), h(b1 + b2), os.lseek(fd, 0, os.SEEK_CUR))
print("os.readv", os.readv(fd, [b1, b2]), h(b1 + b2), os.lseek(fd, 0, os.SEEK_CUR))
print("lseek", os.lseek(fd, 0, os.SEEK_END), os.lseek(fd, 10, os.SEEK_END), os.read(fd, 10))
print("lseek cur", os.lseek(fd, -20, os.SEEK_CUR), len(os.read(fd, 100)))
st = os.fstat(fd)
print("fstat", st.st_size, oct(st.st_mode), st.st_nlink, st.st_uid, st.st_mtime_ns, st.st_blocks)
print("fstat == stat (ino, dev)", (st.st_ino, st.st_dev) == (os.stat("big.bin").st_ino, os.stat("big.bin").st_dev))
with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as m:
    print("mmap", len(m), h(m[:]), h(m[1000:2000]), m[3145727])
with mmap.mmap(fd, 8192, access=mmap.ACCESS_READ, offset=4096) as m:
    print("mmap offset", len(m), h(m[:]))
os.lseek(fd, 0, os.SEEK_SET)
with open(fd, "rb", closefd=False) as f:
    print("open(fd)", h(f.read(1000)))
print("isatty", os.isatty(fd))
os.close(fd)

section("listing")
print("listdir .", sorted(os.listdir(".")))
print("listdir ''-cwd", sorted(os.listdir()) == sorted(os.listdir(".")))
print("listdir D/sub", sorted(os.listdir(D + "/sub")))
print("listdir bytes", sorted(os.listdir(b"."))[:4])
print("listdir emptydir", os.listdir("emptydir"))
with os.scandir(".") as it:
    for e in sorted(it, key=lambda e: e.name):
        st = e.stat()
        print("scandir", e.name, e.is_dir(), e.is_file(), e.is_symlink(),
              "-" if e.is_dir() else st.st_size, oct(st.st_mode), e.inode() == os.lstat(e.name).st_ino)
for top in (".", D, D + "/sub/", "sub"):
    for root, dirs, files in os.walk(top):
        dirs.sort()
        print("walk", root.replace(D, "@D"), dirs, sorted(files))
# Bottom-up: every directory after its subdirectories. Siblings come in readdir order,
# which no filesystem promises (ext4 hashes names, a block:// store sorts them): the rows
# are checked for the order that is promised, then printed sorted.
rows = [(root, sorted(dirs), sorted(files)) for root, dirs, files in os.walk("sub", topdown=False)]
seen, late = set(), []
for root, dirs, _ in rows:
    late += [root] if not all(os.path.join(root, d) in seen for d in dirs) else []
    seen.add(root)
print("walk bottom-up: directories after their subdirectories", late)
for root, dirs, files in sorted(rows):
    print("walk bottom-up", root, dirs, files)

section("stat")
names = sorted(os.listdir(".")) + ["sub/a/b/c/deep.txt", ".", D, D + "/sub/..", "sub/a/", "./sub//b"]
for name in names:
    st, lst = os.stat(name), os.lstat(name)
    size = "dir" if stat.S_ISDIR(st.st_mode) else st.st_size
    print("stat", name.replace(D, "@D"), size, oct(st.st_mode), st.st_nlink, st.st_uid, st.st_gid,
          st.st_mtime_ns, st.st_blocks, st.st_blksize, st.st_rdev, st.st_ino == lst.st_ino)
print("same dir", os.path.samefile(".", D), os.path.samefile("sub/..", "."), os.path.samefile("hello.txt", "one"))

section("pathlib")
print("glob", sorted(str(x) for x in pathlib.Path(".").glob("**/*.txt")))
print("rglob", sorted(str(x).replace(D, "@D") for x in pathlib.Path(D).rglob("*")))
print("iterdir", sorted(x.name for x in pathlib.Path("sub").iterdir()))
q = pathlib.Path(D, "hello.txt")
print("path", q.exists(), q.is_file(), q.is_dir(), q.stat().st_size, repr(q.read_text()),
      len(pathlib.Path("big.bin").read_bytes()), pathlib.Path("missing").exists())
print("cwd", os.getcwd(), pathlib.Path.cwd())
print("resolve", pathlib.Path("sub/a/../b").resolve(), os.path.realpath("sub/a/../b/y.txt"))
print("abspath", os.path.abspath("x/../y"))
print("exists", os.path.exists("missing"), os.path.isdir("sub"), os.path.isfile("sub"),
      os.path.getsize("odd.bin"), os.path.lexists("hello.txt"), os.path.getmtime("hello.txt"))
print("access", [os.access(n, m) for n in ("hello.txt", "script.sh", "ro.txt", "missing", "sub")
                 for m in (os.R_OK, os.W_OK, os.X_OK, os.F_OK)])

section("directory descriptors")
dfd = os.open("sub", os.O_RDONLY | os.O_DIRECTORY)
print("fstat dir", stat.S_ISDIR(os.fstat(dfd).st_mode))
print("dir_fd stat", os.stat("a/x.txt", dir_fd=dfd).st_size, os.access("b/y.txt", os.R_OK, dir_fd=dfd))
fd = os.open("b/y.txt", os.O_RDONLY, dir_fd=dfd)
print("openat", os.read(fd, 100))
os.close(fd)
print("listdir(fd)", sorted(os.listdir(dfd)))
os.fchdir(dfd)
print("fchdir", os.getcwd(), sorted(os.listdir(".")))
os.chdir("..")
print("chdir ..", os.getcwd())
os.close(dfd)
os.chdir("sub/a")
print("chdir", os.getcwd(), sorted(os.listdir()), open("../b/y.txt").read().strip())
os.chdir(D)
print("chdir abs", os.getcwd())
os.chdir("sub/a/b/c")
os.chdir("../../../..")
print("chdir up", os.getcwd(), os.path.exists("hello.txt"))
sv = os.statvfs(".")
print("statvfs", sv.f_bsize, sv.f_namemax, sv.f_frsize)

section("shutil reads")
with open("big.bin", "rb") as f:
    hh = hashlib.sha256()
    while True:
        b = f.read(65536)
        if not b:
            break
        hh.update(b)
    print("chunked", hh.hexdigest()[:16])
# The filesystem's size: the real directory's, or for a block:// store its own capacity
# (IT_FS_TOTAL, from s3shim blk df), which the mount must report.
want = shutil.disk_usage(os.environ["R"]).total
if os.environ.get("IT_FS_TOTAL") and D != os.environ["R"]:
    want = int(os.environ["IT_FS_TOTAL"])
print("disk_usage", shutil.disk_usage(".").total == want)
sys.stdout.flush()
