"""Several processes on the mount: a multiprocessing Pool of forked readers (and a small
spawned one), the file offset shared with a forked child, writes from parent and child
through one description, a descriptor handed to exec'd programs (subprocess, which uses
vfork), and children that open and write their own files at the same time. Each part
reports an exception instead of stopping, so that one failure does not hide the rest."""
import hashlib
import multiprocessing
import os
import subprocess
import sys
import traceback


def digest(name):
    with open(name, "rb") as f:
        data = f.read()
    return name, hashlib.sha256(data).hexdigest()[:16], len(data), os.getpid() != PARENT


def part(fn):
    print("##", fn.__name__)
    sys.stdout.flush()
    try:
        fn()
    except Exception as e:
        print("  exception:", type(e).__name__, e)
        traceback.print_exc(limit=1)
    sys.stdout.flush()


def pools():
    files = sorted(os.path.join(r, f) for r, ds, fs in os.walk(".") for f in fs)
    with multiprocessing.get_context("fork").Pool(4) as pool:
        for r in pool.map(digest, files, chunksize=1):
            print("fork pool", *r)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for r in pool.map(digest, ["big.bin", "lines.txt", "sub/a/b/c/deep.txt"]):
            print("spawn pool", *r)


def fork_offset():
    # The offset is shared with a forked child, as with the kernel.
    fd = os.open("lines.txt", os.O_RDONLY)
    print("parent read", os.read(fd, 6))
    pid = os.fork()
    if pid == 0:
        os.read(fd, 6)
        os.lseek(fd, 10, os.SEEK_CUR)
        os._exit(0)
    os.waitpid(pid, 0)
    print("after child", os.lseek(fd, 0, os.SEEK_CUR), os.read(fd, 6))
    os.close(fd)


def fork_write():
    # Parent and child write through one description: nothing is overwritten.
    fd = os.open("forkw.txt", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    os.write(fd, b"parent\n")
    pid = os.fork()
    if pid == 0:
        os.write(fd, b"child\n")
        os._exit(0)
    os.waitpid(pid, 0)
    os.write(fd, b"parent again\n")
    os.close(fd)
    with open("forkw.txt") as f:
        print(repr(f.read()))


def subprocess_inherit():
    # subprocess (vfork + exec, close_fds) hands the descriptor to exec'd programs.
    fd = os.open("lines.txt", os.O_RDONLY)
    os.read(fd, 28)
    out = subprocess.run(["head", "-c", "12"], stdin=fd, capture_output=True).stdout
    print("exec'd head", out, os.lseek(fd, 0, os.SEEK_CUR))
    out = subprocess.run([sys.executable, "-c", "import os,sys; print(os.read(int(sys.argv[1]), 8))", str(fd)],
                         pass_fds=(fd,), capture_output=True, text=True).stdout
    print("exec'd python", out.strip(), os.lseek(fd, 0, os.SEEK_CUR))
    os.close(fd)


def subprocess_keeps_parent_fds():
    # A child started by subprocess closes the descriptors it does not need; the
    # parent's must stay open.
    fd = os.open("lines.txt", os.O_RDONLY)
    subprocess.run(["true"])
    print("parent fd after subprocess.run", os.read(fd, 6))
    w = os.open("subw.txt", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    os.write(w, b"before\n")
    subprocess.run(["cat", "hello.txt"], stdout=w)
    os.write(w, b"after\n")
    os.close(w)
    os.close(fd)
    with open("subw.txt") as f:
        print(repr(f.read()))


def parallel_children():
    # Children that open, write and close their own files at the same time.
    pids = []
    for i in range(6):
        pid = os.fork()
        if pid == 0:
            with open("par_%d.txt" % i, "w") as f:
                for j in range(200):
                    f.write("%d %d\n" % (i, j))
            with open("big.bin", "rb") as f:
                f.seek(i * 1000)
                h = hashlib.sha256(f.read(100000)).hexdigest()[:16]
            with open("par_%d.txt" % i, "a") as f:
                f.write(h + "\n")
            os._exit(0)
        pids.append(pid)
    print("children", [os.waitpid(p, 0)[1] for p in pids])
    for i in range(6):
        with open("par_%d.txt" % i) as f:
            lines = f.read().splitlines()
        print("child file", i, len(lines), lines[0], lines[-1])


PARENT = os.getpid()
if __name__ == "__main__":
    for p in (pools, fork_offset, fork_write, subprocess_inherit, subprocess_keeps_parent_fds, parallel_children):
        part(p)
