"""Writing from Python: buffered and os-level writes, truncate, append, rename, copy,
makedirs/rmtree, pathlib, tempfile, unlinked-but-open files. Run inside the tree (REAL
or the mount); run.sh compares the output and then the trees."""
import fcntl
import hashlib
import os
import pathlib
import random
import shutil
import stat
import tempfile

O = os.environ["O"]


def h(b):
    return hashlib.sha256(b).hexdigest()[:16]


def walk(top):
    out = []
    for root, dirs, files in os.walk(top):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            out.append("%s:%d" % (p, os.path.getsize(p)))
    return out


def section(name):
    print("##", name)


section("buffered binary writes")
data = random.Random(42).randbytes(200000)
with open("pw.bin", "wb") as f:
    print("write", f.write(data), f.tell())
    f.seek(5000)
    f.write(b"X" * 10)
    print("tell", f.tell())
    f.seek(0, os.SEEK_END)
    f.write(b"END")
    print("end", f.tell())
print("size", os.path.getsize("pw.bin"))
with open("pw.bin", "r+b") as f:
    f.seek(100)
    print("r+b read", f.read(5).hex())
    f.write(b"yy")
    f.seek(0)
    print("r+b all", h(f.read()))
    print("truncate", f.truncate(150000), f.tell())
    f.seek(0, os.SEEK_END)
    print("after truncate", f.tell())
print("size", os.path.getsize("pw.bin"))
with open("pw.bin", "ab") as f:
    f.write(b"appended")
    print("append tell", f.tell())
with open("pw.bin", "rb") as f:
    d = f.read()
    print("final", len(d), h(d), d[-12:])
with open("pw.bin", "rb+", buffering=0) as f:
    mv = memoryview(bytearray(64))
    f.seek(149990)
    print("raw readinto", f.readinto(mv), h(mv))
    f.seek(0)
    print("raw write", f.write(b"RAW"), f.tell())

section("text writes")
with open("pw.txt", "w", encoding="utf-8") as f:
    f.write("line1\nline2\n")
    print("ünï", file=f)
with open("pw.txt", "a") as f:
    f.writelines(["x\n", "y\n"])
with open("pw.txt") as f:
    print(repr(f.read()))
try:
    open("pw.txt", "x")
except FileExistsError as e:
    print("mode x", e.errno)
with open("new_x.txt", "x") as f:
    f.write("exclusive\n")

section("os-level writes")
fd = os.open("os.bin", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o640)
print("write", os.write(fd, b"abcdef"), os.lseek(fd, 0, os.SEEK_CUR))
print("pwrite", os.pwrite(fd, b"ZZ", 2), os.lseek(fd, 0, os.SEEK_CUR))
os.lseek(fd, 10, os.SEEK_END)
os.write(fd, b"tail")
print("writev", os.writev(fd, [b"a", b"bc", b""]), os.lseek(fd, 0, os.SEEK_CUR))
print("pwritev", os.pwritev(fd, [b"P", b"Q"], 7), os.lseek(fd, 0, os.SEEK_CUR))
os.fsync(fd)
os.fdatasync(fd)
st = os.fstat(fd)
print("fstat", oct(st.st_mode), st.st_size, st.st_nlink)
os.ftruncate(fd, 30)
print("ftruncate", os.fstat(fd).st_size)
os.close(fd)
print(open("os.bin", "rb").read())
fd = os.open("os.bin", os.O_WRONLY | os.O_APPEND)
os.lseek(fd, 0, os.SEEK_SET)
os.write(fd, b"APP")
print("O_APPEND pos", os.lseek(fd, 0, os.SEEK_CUR))
fl = fcntl.fcntl(fd, fcntl.F_GETFL)
print("F_GETFL", bool(fl & os.O_APPEND), fl & os.O_ACCMODE == os.O_WRONLY)
fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~os.O_APPEND)
os.lseek(fd, 0, os.SEEK_SET)
os.write(fd, b"S")
print("F_SETFL", bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND), os.lseek(fd, 0, os.SEEK_CUR))
os.close(fd)
print(open("os.bin", "rb").read())
fd = os.open("os.bin", os.O_RDWR | os.O_TRUNC)
print("O_TRUNC", os.fstat(fd).st_size, os.write(fd, b"fresh"), os.pread(fd, 10, 0))
os.close(fd)
fd = os.open("os.bin", os.O_RDONLY | os.O_CLOEXEC)
print("cloexec", os.get_inheritable(fd))
os.set_inheritable(fd, True)
print("inheritable", os.get_inheritable(fd), fcntl.fcntl(fd, fcntl.F_GETFD))
os.close(fd)

section("dup")
fd = os.open("lines.txt", os.O_RDONLY)
fd2 = os.dup(fd)
os.read(fd, 10)
print("dup shares offset", os.lseek(fd2, 0, os.SEEK_CUR))
os.dup2(fd, 50)
print("dup2", os.lseek(50, 0, os.SEEK_CUR), os.read(50, 5))
os.close(50)
os.close(fd)
print("after close", os.read(fd2, 5), os.lseek(fd2, 0, os.SEEK_CUR))
fd3 = fcntl.fcntl(fd2, fcntl.F_DUPFD_CLOEXEC, 100)
print("F_DUPFD_CLOEXEC", fd3 >= 100, os.get_inheritable(fd3), os.read(fd3, 3))
os.close(fd3)
os.close(fd2)

section("metadata")
os.utime("pw.txt", ns=(1_500_000_000_123_456_789, 1_600_000_000_987_654_321))
st = os.stat("pw.txt")
# IT_NO_ATIME: the store keeps no access time (a block:// store; run.sh says so).
print("utime", st.st_mtime_ns, "-" if os.environ.get("IT_NO_ATIME") else st.st_atime_ns)
os.utime("pw.txt", (1_000_000_000, 1_100_000_000))
print("utime s", os.stat("pw.txt").st_mtime_ns)
os.chmod("pw.txt", 0o600)
print("chmod", oct(os.stat("pw.txt").st_mode))
with open("pw.txt") as f:
    os.fchmod(f.fileno(), 0o640)
    os.utime(f.fileno(), ns=(1, 2_000_000_003))
print("fchmod/futimens", oct(os.stat("pw.txt").st_mode), os.stat("pw.txt").st_mtime_ns)
os.truncate("pw.txt", 3)
print("truncate path", os.path.getsize("pw.txt"), repr(open("pw.txt").read()))

section("rename, replace, remove")
os.rename("pw.txt", "pw2.txt")
print("rename", os.path.exists("pw.txt"), os.path.exists("pw2.txt"))
os.replace("os.bin", "pw2.txt")
print("replace", os.path.exists("os.bin"), open("pw2.txt", "rb").read())
os.rename("pw2.txt", "sub/a/pw3.txt")
os.rename("sub/a/pw3.txt", "pw4.txt")
print("rename through dirs", os.path.exists("pw4.txt"))
os.remove("pw4.txt")
print("remove", os.path.exists("pw4.txt"))

section("shutil")
shutil.copyfile("big.bin", "py_copy.bin")
print("copyfile", h(open("py_copy.bin", "rb").read()), oct(os.stat("py_copy.bin").st_mode))
shutil.copy2("odd.bin", "py_copy2.bin")
s1, s2 = os.stat("odd.bin"), os.stat("py_copy2.bin")
print("copy2", s1.st_mtime_ns == s2.st_mtime_ns, oct(s2.st_mode), s2.st_size)
shutil.copy("script.sh", "py_script.sh")
print("copy mode", oct(os.stat("py_script.sh").st_mode))
shutil.copyfile("big.bin", O + "/py_out.bin")
print("copyfile out", h(open(O + "/py_out.bin", "rb").read()))
shutil.copyfile(O + "/ext.bin", "py_in.bin")
print("copyfile in", h(open("py_in.bin", "rb").read()))
os.replace("py_copy2.bin", "py_copy.bin")
print("replace", h(open("py_copy.bin", "rb").read()))
os.remove("py_copy.bin")
os.mkdir("pydir")
os.makedirs("pydir/a/b/c", exist_ok=True)
os.makedirs("pydir/a/b", exist_ok=True)
shutil.copytree("sub", "pydir/tree")
print("copytree", walk("pydir"))
shutil.move("pydir/tree", "pydir/moved")
shutil.move("py_in.bin", "pydir/moved/b/")
print("move", walk("pydir"))
shutil.rmtree("pydir/a")
print("rmtree", sorted(os.listdir("pydir")))
shutil.copytree("pydir", O + "/pydir_out")
print("copytree out", walk(O + "/pydir_out") == [p.replace("pydir", O + "/pydir_out", 1) for p in walk("pydir")])
shutil.move(O + "/pydir_out", "pydir_back")
print("move in", walk("pydir_back"), os.path.exists(O + "/pydir_out"))
shutil.rmtree("pydir_back")

section("pathlib")
p = pathlib.Path("pl/x/y")
p.mkdir(parents=True)
(p / "f.txt").write_text("pathlib\n")
(p / "g.bin").write_bytes(b"\0" * 10)
print("pathlib", sorted(str(x) for x in pathlib.Path("pl").rglob("*")))
(p / "f.txt").rename(p / "h.txt")
(p / "g.bin").unlink()
(p / "t").touch()
(p / "t").touch()
print("pathlib 2", sorted(x.name for x in p.iterdir()), (p / "h.txt").read_text(), (p / "t").stat().st_size)
(p / "t").unlink()
(p / "h.txt").unlink()
p.rmdir()
p.parent.rmdir()
print("pathlib 3", sorted(os.listdir("pl")))

section("tempfile")
fd, name = tempfile.mkstemp(dir=".", prefix="tmp")
os.write(fd, b"tmp")
os.close(fd)
print("mkstemp", os.path.dirname(name), os.path.basename(name).startswith("tmp"), open(name).read(),
      oct(os.stat(name).st_mode))
os.unlink(name)
with tempfile.TemporaryDirectory(dir=".") as td:
    with open(os.path.join(td, "x"), "w") as f:
        f.write("x")
    print("tempdir", os.listdir(td))
print("tempdir gone", os.path.exists(td))
with tempfile.NamedTemporaryFile(dir="sub") as tf:
    tf.write(b"named")
    tf.flush()
    print("named temp", os.path.getsize(tf.name))

section("unlinked open file")
f = open("unl.bin", "w+b")
f.write(b"still here")
f.flush()
os.unlink("unl.bin")
f.seek(0)
print("unlinked", f.read(), os.fstat(f.fileno()).st_nlink, os.path.exists("unl.bin"))
f.write(b"!")
f.seek(0)
print("unlinked write", f.read())
f.close()

section("holes, umask, O_EXCL")
with open("hole.bin", "wb") as f:
    f.seek(100000)
    f.write(b"x")
with open("hole.bin", "rb") as f:
    print("hole", os.path.getsize("hole.bin"), f.read(100000) == bytes(100000), f.read())
os.umask(0o027)
fd = os.open("m.bin", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o777)
os.close(fd)
print("umask", oct(os.stat("m.bin").st_mode))
os.mkdir("mdir", 0o777)
print("umask dir", oct(os.stat("mdir").st_mode))
os.truncate("m.bin", 1234)
print("truncate", os.path.getsize("m.bin"))
