# rdwr.py - O_RDWR, O_APPEND, overwrites inside a file, read-after-write on one
# descriptor, truncate, fsync: run in a plain directory and in a direct:// mount, the
# outputs (and files) must be the same. Argument: the directory to work in.
import hashlib
import os
import sys

d = sys.argv[1]
p = os.path.join(d, "rw.bin")
src = bytes((i * 131 + 7) % 251 for i in range(300000))
with open(p, "wb") as f:
    f.write(src)

fd = os.open(p, os.O_RDWR)
# overwrites inside the file at odd places, each read back on the same descriptor
for off, n in ((1, 1), (511, 2), (4095, 3), (4097, 700), (65535, 9000), (299990, 10), (299995, 100)):
    data = bytes((off + k) % 256 for k in range(n))
    os.pwrite(fd, data, off)
    back = os.pread(fd, n, off)
    print("overwrite", off, n, back == data, os.fstat(fd).st_size)
os.lseek(fd, 100, os.SEEK_SET)
os.write(fd, b"X" * 77)
print("read after write", os.read(fd, 5), os.lseek(fd, 0, os.SEEK_CUR))
os.fsync(fd)
os.ftruncate(fd, 123457)
print("after truncate", os.fstat(fd).st_size, len(os.pread(fd, 1 << 20, 0)))
os.ftruncate(fd, 200001)
print("after extend", os.fstat(fd).st_size, os.pread(fd, 8, 123455))
os.close(fd)

fd = os.open(p, os.O_WRONLY | os.O_APPEND)
for k in range(50):
    os.write(fd, b"line %d\n" % k)
os.lseek(fd, 0, os.SEEK_SET)
os.write(fd, b"appended even after a seek\n")
os.close(fd)
with open(p, "ab") as f:
    f.write(b"python append\n" * 3)
with open(p, "r+b") as f:
    f.seek(1000)
    f.write(b"r+b")
    f.seek(0, 2)
    f.write(b"end")
    f.flush()
    os.fdatasync(f.fileno())
data = open(p, "rb").read()
print("final", len(data), hashlib.sha256(data).hexdigest())
for size in (0, 1, 511, 4095, 4097, 1048579):
    q = os.path.join(d, "sz%d" % size)
    with open(q, "wb") as f:
        f.write(src[:size] if size <= len(src) else (src * 4)[:size])
    print("size", size, os.path.getsize(q), hashlib.sha256(open(q, "rb").read()).hexdigest()[:16])
