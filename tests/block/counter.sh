#!/usr/bin/env bash
# tests/block/counter.sh - lookups that keep the roots they verified last while the shared
# change counter (/dev/shm) and the root slots' headers say nothing changed (docs/
# block-format.md, "Shared change counter"), against processes that change the store:
#  1. two long-lived writers (python under the shim) committing at the same time (create,
#     overwrite, rename, remove, the same keys from both sides), two long-lived readers
#     and the writers themselves asked after every round: each answer must be the model's
#     once the commits returned; on an image file (headers read with a pread) and on a
#     loop device (read in place), group commit and every commit durable;
#  2. a writer SIGKILLed in the middle of its commits (a root write cut anywhere, also
#     between the root and the counter's bump): the readers' answers are a new process's;
#  3. the /dev/shm file removed under the running readers: the changes of the processes
#     after it (which make a new one) are still seen; blk check clean after each part.
# The readers' stats must show lookups served on kept roots, else it tests nothing.
#
#   BUILD=build SAN= tests/block/counter.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/counter.sh (ASan+UBSan)
TMO=300
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" counter "s3shim block:// kept roots and the shared change counter"

# agent.py: reads commands on stdin, one answer line each. Writers and readers alike:
#   put KEY TEXT | mv A B | rm KEY | q KEY... (KEY:size:crc or KEY:-) | spin DIR N
cat >"$W/agent.py" <<'EOF'
import os, sys, threading, zlib
mp = sys.argv[1]
stop = False
def churn():  # lookups on other threads all along (the kept roots under contention)
    i = 0
    while not stop:
        try: os.stat(os.path.join(mp, "r", "k%d" % (i % 40)))
        except OSError: pass
        i += 1
if len(sys.argv) > 2 and sys.argv[2] == "churn":
    threading.Thread(target=churn, daemon=True).start()
def q(k):
    try:
        with open(os.path.join(mp, k), "rb") as f: b = f.read()
        return "%s:%d:%08x" % (k, len(b), zlib.crc32(b))
    except FileNotFoundError:
        return k + ":-"
for line in sys.stdin:
    a = line.split()
    if not a: continue
    try:
        if a[0] == "put":
            with open(os.path.join(mp, a[1]), "w") as f: f.write(a[2])
            out = "done"
        elif a[0] == "mv":
            os.rename(os.path.join(mp, a[1]), os.path.join(mp, a[2])); out = "done"
        elif a[0] == "rm":
            os.unlink(os.path.join(mp, a[1])); out = "done"
        elif a[0] == "q":
            out = " ".join(q(k) for k in a[1:])
        elif a[0] == "spin":  # commits until killed, each one reported
            d, n = a[1], int(a[2])
            for i in range(n):
                with open(os.path.join(mp, d, "s%d" % (i % 50)), "w") as f:
                    f.write("spin%d" % i)
                    if i % 40 == 39:  # durable now and then (bounds what group commit holds)
                        f.flush(); os.fsync(f.fileno())
                if i % 3 == 2: os.unlink(os.path.join(mp, d, "s%d" % ((i - 1) % 50)))
            out = "done"
        else:
            out = "bad command"
    except OSError as e:
        out = "error %s" % e
    print(out, flush=True)
stop = True
EOF

# drive.py MP ROUNDS -- PREFIX...: two writers, two readers (PREFIX python3 agent.py MP),
# rounds of concurrent operations, every key asked of all four after each round.
cat >"$W/drive.py" <<'EOF'
import random, subprocess, sys, zlib
mp, rounds = sys.argv[1], int(sys.argv[2])
prefix = sys.argv[4:]
def agent(*extra):
    return subprocess.Popen(prefix + [sys.argv[0].replace("drive.py", "agent.py"), mp] + list(extra),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
w = [agent(), agent()]
r = [agent("churn"), agent("churn")]
def send(p, line): p.stdin.write(line + "\n"); p.stdin.flush()
def recv(p): return p.stdout.readline().strip()
model = {}
def crc(t): return "%08x" % zlib.crc32(t.encode())
rng = random.Random(4242)
keys = ["r/k%d" % i for i in range(40)]
bad = 0
for rnd in range(rounds):
    # each writer one operation on keys of its own this round (so the end state is known),
    # both sent before either answer is read: the two commits run together
    free = keys[:]
    rng.shuffle(free)
    ops = []
    for wi in range(2):
        k = free.pop()
        have = k in model
        c = rng.randrange(4)
        if not have or c == 0:
            text = "w%dr%d-%s" % (wi, rnd, "x" * rng.randrange(1, 200))
            ops.append(("put", k, text))
        elif c == 1:
            dst = free.pop()  # rename, also over an existing object
            ops.append(("mv", k, dst))
        elif c == 2:
            ops.append(("rm", k))
        else:
            text = "o%dr%d" % (wi, rnd)
            ops.append(("put", k, text))
    for wi, op in enumerate(ops): send(w[wi], " ".join(op))
    for wi, op in enumerate(ops):
        a = recv(w[wi])
        if a != "done": print("round %d writer %d %s: %s" % (rnd, wi, op, a)); bad += 1
        if op[0] == "put": model[op[1]] = op[2]
        elif op[0] == "mv": model[op[2]] = model.pop(op[1])
        else: model.pop(op[1], None)
    want = " ".join("%s:%d:%s" % (k, len(model[k]), crc(model[k])) if k in model else k + ":-" for k in keys)
    for name, p in (("reader 0", r[0]), ("reader 1", r[1]), ("writer 0", w[0]), ("writer 1", w[1])):
        send(p, "q " + " ".join(keys))
        got = recv(p)
        if got != want:
            bad += 1
            if bad < 5:
                g, x = got.split(), want.split()
                print("round %d %s after %s: %s" % (rnd, name, ops, [(a, b) for a, b in zip(g, x) if a != b][:4]))
for p in w + r:
    p.stdin.close()
    p.wait()
print("rounds %d bad %d objects %d" % (rounds, bad, len(model)))
sys.exit(1 if bad else 0)
EOF

kept() { sed -n 's/.*, \([0-9]*\) lookups on kept roots.*/\1/p' "$1" | tail -1; }
ROUNDS=${COUNTER_ROUNDS:-120}

# 1. concurrent writers, readers asked after every round
concurrent() { # LABEL COMMIT_MS
    shim "$DEV" sh -c 'rm -rf "$1/r" && mkdir -p "$1/r"' _ "$MP" 2>"$OUT"
    if S3SHIM_BLOCK_COMMIT_MS=$2 S3SHIM_STATS=1 "$PY" "$W/drive.py" "$MP" "$ROUNDS" -- \
        timeout -k 5 300 env S3SHIM_MOUNTS="$MP=block://$DEV" LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" \
        "$PY" >"$OUT" 2>"$W/stats"; then
        local k
        k=$(kept "$W/stats")
        if [ "${k:-0}" -gt 0 ]; then
            pass "$1: two writers committing together, two readers and the writers asked after each round: every answer the model's ($(tail -1 "$OUT"); lookups on kept roots in the last process: $k)"
        else
            fail "$1: lookups were served on kept roots" "$W/stats"
        fi
    else
        fail "$1: two writers committing together, two readers and the writers asked after each round: every answer the model's" "$OUT"
    fi
    check_clean "$DEV" "$1"
}

# The answer of a new process (nothing kept) for every name in DIR, and the reader's.
fresh_ls() { shim "$DEV" "$PY" -c 'import os, sys, zlib
d = sys.argv[1]
for n in sorted(os.listdir(d)):
    b = open(os.path.join(d, n), "rb").read(); print("%s:%d:%08x" % (n, len(b), zlib.crc32(b)))' "$1"; }
AGENT_LS='import os, sys, zlib
d = sys.argv[1]
print(" ".join("%s:%d:%08x" % (n, len(b), zlib.crc32(b)) for n, b in ((n, open(os.path.join(d, n), "rb").read()) for n in sorted(os.listdir(d)))))'

# 2. a writer killed in the middle of its commits; 3. the /dev/shm file removed.
killed_and_removed() { # LABEL COMMIT_MS
    local label=$1 ms=$2
    shim "$DEV" mkdir -p "$MP/s" 2>"$OUT"
    # a reader that keeps its roots, answering "ls" of $MP/s on request
    mkfifo "$W/rq.$ms" "$W/ra.$ms"
    S3SHIM_BLOCK_COMMIT_MS=$ms shim "$DEV" "$PY" -c 'import os, sys, zlib
d = sys.argv[1]
q, a = open(sys.argv[2]), open(sys.argv[3], "w")
for line in q:
    line = line.strip()
    names = sorted(os.listdir(d))
    # one line per name, none for an empty directory (as fresh_ls: a writer killed before
    # its first commit leaves the directory empty)
    a.write("".join("%s:%d:%08x\n" % (n, len(b), zlib.crc32(b)) for n, b in ((n, open(os.path.join(d, n), "rb").read()) for n in names)) + "--end--\n")
    a.flush()' "$MP/s" "$W/rq.$ms" "$W/ra.$ms" 2>>"$OUT" &
    local rpid=$!
    exec 7>"$W/rq.$ms" 8<"$W/ra.$ms"
    ask() { echo ls >&7; local l; while read -r l <&8 && [ "$l" != --end-- ]; do echo "$l"; done; }
    ask >/dev/null
    local i bad=0 kills=0
    for i in 1 2 3 4 5 6; do
        # (env execs python: $! is the writer itself, not a wrapper)
        env S3SHIM_BLOCK_COMMIT_MS="$ms" S3SHIM_MOUNTS="$MP=block://$DEV" LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" \
            "$PY" "$W/agent.py" "$MP" <<<"spin s 100000000" >/dev/null 2>&1 &
        local sp=$!
        sleep "0.$((RANDOM % 9 + 1))"
        kill -9 "$sp" 2>/dev/null && kills=$((kills + 1))
        wait "$sp" 2>/dev/null
        # the killed writer's visible commits are made durable by the next process that
        # finds them old (group commit); what matters: the reader agrees with a new process
        ask >"$W/ask.$i"
        fresh_ls "$MP/s" >"$W/fresh.$i"
        cmp -s "$W/ask.$i" "$W/fresh.$i" || { bad=$((bad + 1)); diff "$W/ask.$i" "$W/fresh.$i" >>"$OUT"; }
    done
    if [ "$bad" = 0 ] && [ "$kills" -gt 0 ]; then
        pass "$label: a writer SIGKILLed in the middle of its commits ($kills times): a running reader's listing and contents are a new process's"
    else
        fail "$label: a writer SIGKILLed in the middle of its commits: a running reader's listing and contents are a new process's ($bad differ, $kills kills)" "$OUT"
    fi
    check_clean "$DEV" "$label, after the killed writers"
    # 3. the store's file in /dev/shm (and its lock files) removed under the reader, once
    # everything is durable (commits only published in a file that is gone are lost to the
    # processes after it: docs/block-format.md)
    shim "$DEV" "$PY" -c 'import os, sys
with open(sys.argv[1], "w") as f: f.write("x"); f.flush(); os.fsync(f.fileno())' "$MP/s/synced" 2>>"$OUT"
    local uuid
    uuid=$(od -An -tx1 -j24 -N16 "$DEV" | tr -d ' \n')
    rm -rf /dev/shm/s3shim-blk-"$uuid"-*
    bad=0
    for i in 1 2 3 4 5; do
        S3SHIM_BLOCK_COMMIT_MS=$ms shim "$DEV" sh -c 'echo "gone$2" >"$1/s/g$2" && mv "$1/s/g$2" "$1/s/h$2" && rm -f "$1/s/s1"' _ "$MP" "$i" 2>>"$OUT"
        ask >"$W/ask.$i"
        fresh_ls "$MP/s" >"$W/fresh.$i"
        cmp -s "$W/ask.$i" "$W/fresh.$i" && grep -q "^h$i:" "$W/ask.$i" ||
            { bad=$((bad + 1)); diff "$W/ask.$i" "$W/fresh.$i" >>"$OUT"; }
    done
    if [ "$bad" = 0 ]; then
        pass "$label: /dev/shm file removed under a running reader: it sees each change of the processes after it at once"
    else
        fail "$label: /dev/shm file removed under a running reader: it sees each change of the processes after it at once ($bad differ)" "$OUT"
    fi
    exec 7>&- 8<&-
    wait "$rpid"
    rm -f "$W/rq.$ms" "$W/ra.$ms"
    check_clean "$DEV" "$label, after the /dev/shm file was removed"
}

IMG=$W/store.img
truncate -s 1G "$IMG" && "$TOOL" blk format "$IMG" >"$OUT" 2>&1 || bail "format the store" "$OUT"
DEV=$IMG
concurrent "image file, group commit" 1000
concurrent "image file, every commit durable" 0
killed_and_removed "image file, group commit" 1000

if [ "$have_loop" = 1 ] && new_loop 1024 && [ -n "$dev" ]; then
    DEV=$dev
    "$TOOL" blk format "$DEV" >"$OUT" 2>&1 || bail "format $DEV" "$OUT"
    concurrent "loop device, group commit" 1000
    concurrent "loop device, every commit durable" 0
    killed_and_removed "loop device, group commit" 1000
    killed_and_removed "loop device, every commit durable" 0
else
    skip "loop device cases: ${why:-could not attach one}"
fi
finish
