# odd_dd.py - the part of dd that tests/direct/run.sh uses (if= of= bs= seek= with
# oflag=seek_bytes, conv=notrunc, status=none), for the ASan variant, where libasan
# aborts dd's own aligned_alloc of an odd block size before dd does any I/O.
import os
import sys

a = dict(x.split("=", 1) for x in sys.argv[1:])
bs = int(a["bs"])
seek = int(a.get("seek", 0)) * (1 if "seek_bytes" in a.get("oflag", "") else bs)
flags = os.O_WRONLY | os.O_CREAT | (0 if "notrunc" in a.get("conv", "") else os.O_TRUNC)
src = os.open(a["if"], os.O_RDONLY)
dst = os.open(a["of"], flags, 0o644)
off = seek
while True:
    b = os.read(src, bs)
    if not b:
        break
    while b:
        n = os.pwrite(dst, b, off)
        off += n
        b = b[n:]
os.close(dst)
os.close(src)
