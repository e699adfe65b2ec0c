"""The Python side of tests/integration/programs.sh, run in the mount and in the real
directory alike (the working directory is the tree): what it prints must be the same.

  py_programs.py zipfile   Python's zipfile: write (it seeks back to patch each member's
                           header), append ('a': reads the central directory, writes past
                           it), read back and test
  py_programs.py numpy     numpy: save, load, load(mmap_mode='r') and ('r+': a MAP_SHARED
                           write, flushed), a new np.memmap (w+), then read again
"""
import hashlib
import os
import sys
import zipfile


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def zip_case():
    with zipfile.ZipFile("p.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(20):
            info = zipfile.ZipInfo("m%02d.txt" % i, (2020, 1, 2, 3, 4, 6))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, ("line %d\n" % i) * (i * 500 + 1))
        stored = zipfile.ZipInfo("big.bin", (2020, 1, 2, 3, 4, 6))
        with open("big.bin", "rb") as f:
            z.writestr(stored, f.read())
    print("written", sha("p.zip"), os.path.getsize("p.zip"))
    with zipfile.ZipFile("p.zip", "a") as z:
        z.writestr(zipfile.ZipInfo("late.txt", (2021, 1, 1, 0, 0, 0)), "late\n")
    print("appended", sha("p.zip"), os.path.getsize("p.zip"))
    with zipfile.ZipFile("p.zip") as z:
        print("testzip", z.testzip(), len(z.namelist()))
        print("big.bin", hashlib.sha256(z.read("big.bin")).hexdigest())
        print("m19", len(z.read("m19.txt")), z.read("late.txt"))
    os.remove("p.zip")


def numpy_case():
    import numpy as np

    a = np.arange(1_000_000, dtype=np.float64).reshape(500, 2000)
    np.save("n.npy", a)
    b = np.load("n.npy")
    m = np.load("n.npy", mmap_mode="r")
    print("load", type(m).__name__, bool((b == a).all()), bool((m == a).all()))
    del m
    w = np.load("n.npy", mmap_mode="r+")
    w[3, 4] = -1.5
    w[499, :] = 7
    w.flush()
    del w
    c = np.load("n.npy")
    print("r+", c[3, 4], c[499, 1999], c.sum())
    n = np.memmap("m.dat", dtype=np.int32, mode="w+", shape=(1000, 300))
    n[:] = np.arange(300, dtype=np.int32)
    n[999, 299] = -1
    n.flush()
    del n
    r = np.fromfile("m.dat", dtype=np.int32)
    print("w+", r.size, int(r.sum()), os.path.getsize("m.dat"))
    print(sha("n.npy"), sha("m.dat"))
    os.remove("n.npy")
    os.remove("m.dat")


{"zipfile": zip_case, "numpy": numpy_case}[sys.argv[1]]()
