#!/usr/bin/env python3
"""mktree.py DIR SIZE_MB [SEED] - the tree that bench/s3/programs.sh zips: SIZE_MB MiB in
a mix of file sizes, about 40% compressible text (log-like lines) and 60% already
compressed data (random bytes named .jpg and .gz, which zip -n stores as they are).
Deterministic for a given SEED, so every arm of the benchmark zips the same bytes.

Layout (fractions of SIZE_MB):
  src/NN/fileNNNN.txt   small text files, 1-64 KiB       ~ 8%
  logs/NN.log           text files of 1-8 MiB              ~32%
  img/NN/imgNNNN.jpg    random, 64 KiB-4 MiB               ~30%
  data/NN.gz            random, 16-64 MiB                  ~30%
"""
import os
import random
import sys

def main():
    top, size_mb = sys.argv[1], int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    rnd = random.Random(seed)
    total = size_mb << 20
    words = ("GET PUT POST HEAD DELETE ok error retry timeout user session cache miss hit "
             "commit rollback open close read write flush sync index table row page node "
             "shard replica leader follower vote term apply snapshot compact").split()
    # a pool of text: 8 MiB of log lines, sliced at random offsets for every text file
    lines = []
    n = 0
    while n < (8 << 20):
        ln = "2026-12-%02d %02d:%02d:%02d.%03d %s [%s] %s %s id=%d bytes=%d ms=%d\n" % (
            rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59),
            rnd.randint(0, 999), rnd.choice(("INFO", "WARN", "DEBUG", "ERROR")),
            rnd.choice(words), rnd.choice(words), rnd.choice(words), rnd.randint(0, 10**9),
            rnd.randint(0, 1 << 20), rnd.randint(0, 5000))
        lines.append(ln)
        n += len(ln)
    pool = "".join(lines).encode()
    pool += pool  # slices may wrap

    def text(path, size):
        off = rnd.randrange(0, len(pool) // 2)
        with open(path, "wb") as f:
            while size > 0:
                k = min(size, len(pool) - off)
                f.write(pool[off:off + k])
                size -= k
                off = 0

    def noise(path, size):
        r = random.Random(rnd.getrandbits(64))
        with open(path, "wb") as f:
            while size > 0:
                k = min(size, 1 << 20)
                f.write(r.randbytes(k))
                size -= k

    def fill(sub, share, lo, hi, maker, name):
        budget, i = int(total * share), 0
        while budget > 0:
            sz = min(budget, rnd.randint(lo, hi))
            d = os.path.join(top, sub, "%02d" % (i // 100)) if "%" in name else os.path.join(top, sub)
            os.makedirs(d, exist_ok=True)
            maker(os.path.join(d, (name % i) if "%" in name else name), sz)
            budget -= sz
            i += 1
        return i

    counts = [
        fill("src", 0.08, 1 << 10, 64 << 10, text, "file%04d.txt"),
        fill("logs", 0.32, 1 << 20, 8 << 20, text, "%03d.log"),
        fill("img", 0.30, 64 << 10, 4 << 20, noise, "img%04d.jpg"),
        fill("data", 0.30, 16 << 20, 64 << 20, noise, "%02d.gz"),
    ]
    print("files=%d" % sum(counts))

main()
