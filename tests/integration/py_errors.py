"""Error cases from Python: every call prints its errno name (or ok). The mount must fail
exactly as the real directory does. File names are not printed (they differ between the
two runs), only errno and strerror."""
import errno
import os


def tryit(desc, fn):
    try:
        r = fn()
        print(desc, "ok", "" if r is None else r)
    except OSError as e:
        print(desc, errno.errorcode.get(e.errno, e.errno), e.strerror)


def opened(path, flags, mode=0o644):
    fd = os.open(path, flags, mode)
    os.close(fd)
    return "opened"


tryit("open missing", lambda: open("missing"))
tryit("open missing abs", lambda: open(os.environ["D"] + "/missing/x"))
tryit("open file/x", lambda: open("hello.txt/x"))
tryit("open file/", lambda: open("hello.txt/"))
tryit("open dir for write", lambda: open("sub", "w"))
tryit("open dir (python)", lambda: open("sub"))
tryit("open O_DIRECTORY on file", lambda: opened("hello.txt", os.O_RDONLY | os.O_DIRECTORY))
tryit("open O_EXCL existing", lambda: opened("hello.txt", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
tryit("open O_EXCL existing dir", lambda: opened("sub", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
tryit("open missing O_WRONLY", lambda: opened("missing", os.O_WRONLY))
tryit("open O_CREAT in missing dir", lambda: opened("nodir/x", os.O_CREAT | os.O_WRONLY))
tryit("open dir O_RDWR", lambda: opened("sub", os.O_RDWR))
tryit("open name too long", lambda: open("x" * 300))
tryit("open empty name", lambda: open(""))

fd = os.open("sub", os.O_RDONLY)
tryit("read dir fd", lambda: os.read(fd, 10))
tryit("fstat dir fd", lambda: oct(os.fstat(fd).st_mode))
tryit("lseek dir fd", lambda: os.lseek(fd, 0, os.SEEK_SET))
os.close(fd)

fd = os.open("hello.txt", os.O_RDONLY)
tryit("write O_RDONLY", lambda: os.write(fd, b"x"))
tryit("pwrite O_RDONLY", lambda: os.pwrite(fd, b"x", 0))
tryit("ftruncate O_RDONLY", lambda: os.ftruncate(fd, 0))
tryit("lseek negative", lambda: os.lseek(fd, -1, os.SEEK_SET))
tryit("lseek bad whence", lambda: os.lseek(fd, 0, 77))
tryit("pread negative", lambda: os.pread(fd, 10, -1))
tryit("fsync O_RDONLY", lambda: os.fsync(fd))
tryit("read ok", lambda: os.read(fd, 5))
os.close(fd)
tryit("read closed", lambda: os.read(fd, 1))
tryit("close closed", lambda: os.close(fd))
tryit("fstat closed", lambda: os.fstat(fd))

fd = os.open("wo.tmp", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
tryit("read O_WRONLY", lambda: os.read(fd, 1))
tryit("pread O_WRONLY", lambda: os.pread(fd, 1, 0))
os.close(fd)
os.unlink("wo.tmp")

tryit("mkdir existing", lambda: os.mkdir("sub"))
tryit("mkdir existing file", lambda: os.mkdir("hello.txt"))
tryit("mkdir missing parent", lambda: os.mkdir("missing/x"))
tryit("mkdir under file", lambda: os.mkdir("hello.txt/x"))
tryit("mkdir empty", lambda: os.mkdir(""))
tryit("rmdir nonempty", lambda: os.rmdir("sub"))
tryit("rmdir file", lambda: os.rmdir("hello.txt"))
tryit("rmdir missing", lambda: os.rmdir("missing"))
tryit("unlink dir", lambda: os.unlink("sub"))
tryit("unlink missing", lambda: os.unlink("missing"))
tryit("listdir file", lambda: os.listdir("hello.txt"))
tryit("listdir missing", lambda: os.listdir("missing"))
tryit("rename missing", lambda: os.rename("missing", "x"))
tryit("rename dir into itself", lambda: os.rename("sub", "sub/a/inside"))
tryit("rename file over dir", lambda: os.rename("hello.txt", "sub"))
tryit("rename dir over file", lambda: os.rename("emptydir", "hello.txt"))
tryit("rename dir over nonempty dir", lambda: os.rename("emptydir", "sub"))
tryit("rename to missing dir", lambda: os.rename("hello.txt", "nodir/x"))
tryit("stat missing", lambda: os.stat("missing"))
tryit("stat file/", lambda: os.stat("hello.txt/"))
tryit("stat empty", lambda: os.stat(""))
tryit("lstat missing", lambda: os.lstat("sub/missing"))
tryit("chdir file", lambda: os.chdir("hello.txt"))
tryit("chdir missing", lambda: os.chdir("missing"))
tryit("truncate dir", lambda: os.truncate("sub", 0))
tryit("truncate missing", lambda: os.truncate("missing", 0))
tryit("truncate negative", lambda: os.truncate("hello.txt", -1))
tryit("utime missing", lambda: os.utime("missing"))
tryit("chmod missing", lambda: os.chmod("missing", 0o644))
tryit("access missing", lambda: os.access("missing", os.F_OK))
tryit("access file/", lambda: os.access("hello.txt/", os.F_OK))
tryit("scandir file", lambda: list(os.scandir("hello.txt")))
tryit("walk missing", lambda: list(os.walk("missing")))

# Calls that would destroy something if the trailing "/" or "/." were dropped: on victims.
with open("victim.txt", "w") as f:
    f.write("v\n")
os.mkdir("victimdir")
tryit("unlink file/", lambda: os.unlink("victim.txt/"))
tryit("rmdir dir/.", lambda: os.rmdir("victimdir/."))
tryit("rename file/", lambda: os.rename("victim.txt/", "victim2.txt"))
tryit("mkdir existing/.", lambda: os.mkdir("victimdir/."))
for fn, name in ((os.unlink, "victim.txt"), (os.unlink, "victim2.txt"), (os.rmdir, "victimdir")):
    try:
        fn(name)
    except OSError:
        pass
