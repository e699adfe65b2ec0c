#!/usr/bin/env bash
# tests/block/unlinked.sh - the store's /dev/shm file removed while processes use it (by
# hand, systemd's RemoveIPC; docs/block-format.md "The /dev/shm file removed while in
# use"): two long-lived processes keep committing (group commit: their closes only
# visible, in the file) and looking up while the file is removed again and again, and new
# processes (which make a new file) commit in between. After every step each long-lived
# process and a new one must see exactly the model: nothing one side published is lost
# to the other, no commit is made on a base that misses one. blk check clean at the end,
# and no /dev/shm file of the store left once every process ended.
#
#   BUILD=build SAN= tests/block/unlinked.sh          (release)
#   BUILD=build/asan SAN=asan tests/block/unlinked.sh (ASan+UBSan)
TMO=300
# shellcheck source=setup.sh
. "$(dirname "$0")/setup.sh" unlinked "s3shim block:// with its /dev/shm file removed while in use"

cat >"$W/agent.py" <<'EOF'
import os, sys, zlib
mp = sys.argv[1]
def q(k):
    try:
        with open(os.path.join(mp, k), "rb") as f: b = f.read()
        return "%s:%d:%08x" % (k, len(b), zlib.crc32(b))
    except FileNotFoundError:
        return k + ":-"
for line in sys.stdin:
    a = line.split()
    try:
        if a[0] == "put":
            with open(os.path.join(mp, a[1]), "w") as f: f.write(a[2])
            out = "done"
        elif a[0] == "rm":
            os.unlink(os.path.join(mp, a[1])); out = "done"
        elif a[0] == "q":
            out = " ".join(q(k) for k in a[1:])
        else:
            out = "bad command"
    except OSError as e:
        out = "error %s" % e
    print(out, flush=True)
EOF

# drive.py DEVUUID ROUNDS -- PREFIX...: two agents (PREFIX python3 agent.py), rounds of
# a put or rm by each, the file removed, a new process's put; everyone asked each time.
cat >"$W/drive.py" <<'EOF'
import glob, os, random, subprocess, sys, zlib
uuid, rounds, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[4:]
mp = os.environ["MP"]
agent_py = sys.argv[0].replace("drive.py", "agent.py")
def agent(): return subprocess.Popen(prefix + [agent_py, mp], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
a = [agent(), agent()]
def ask(p, line): p.stdin.write(line + "\n"); p.stdin.flush(); return p.stdout.readline().strip()
model = {}
keys = ["u/k%d" % i for i in range(24)]
def crc(t): return "%08x" % zlib.crc32(t.encode())
def want(): return " ".join("%s:%d:%s" % (k, len(model[k]), crc(model[k])) if k in model else k + ":-" for k in keys)
rng = random.Random(11)
bad = removed = 0
def check(what):
    global bad
    w = want()
    got = [("agent 0", ask(a[0], "q " + " ".join(keys))), ("agent 1", ask(a[1], "q " + " ".join(keys))),
           ("new process", subprocess.run(prefix + [agent_py, mp], input="q " + " ".join(keys) + "\n",
                                          capture_output=True, text=True).stdout.strip())]
    for name, g in got:
        if g != w:
            bad += 1
            if bad < 6:
                print("%s: %s differs: %s" % (what, name, [(x, y) for x, y in zip(g.split(), w.split()) if x != y][:4]))
for rnd in range(rounds):
    for i in (0, 1):
        k = rng.choice(keys)
        if k in model and rng.randrange(3) == 0:
            r = ask(a[i], "rm " + k); model.pop(k)
        else:
            t = "a%dr%d-%s" % (i, rnd, "y" * rng.randrange(1, 300))
            r = ask(a[i], "put %s %s" % (k, t)); model[k] = t
        if r != "done": print("round %d agent %d: %s" % (rnd, i, r)); bad += 1
    # the file removed while both agents hold commits only published in it
    for f in glob.glob("/dev/shm/s3shim-blk-%s-*" % uuid):
        subprocess.run(["rm", "-rf", f]); removed += 1
    if rnd % 2 == 0:  # a new process commits first: it makes a new file
        k = rng.choice(keys); t = "n%d" % rnd
        r = subprocess.run(prefix + [agent_py, mp], input="put %s %s\n" % (k, t), capture_output=True, text=True)
        if r.stdout.strip() != "done": print("round %d new process: %s %s" % (rnd, r.stdout, r.stderr)); bad += 1
        model[k] = t
    check("round %d" % rnd)
for p in a:
    p.stdin.close(); p.wait()
print("rounds %d removals %d bad %d objects %d" % (rounds, removed, bad, len(model)))
sys.exit(1 if bad or not removed else 0)
EOF

run() { # LABEL DEV COMMIT_MS
    local label=$1 dev=$2 ms=$3 uuid
    uuid=$(od -An -tx1 -j24 -N16 "$dev" | tr -d ' \n')
    shim "$dev" sh -c 'rm -rf "$1/u" && mkdir "$1/u"' _ "$MP" 2>"$OUT"
    if MP=$MP S3SHIM_BLOCK_COMMIT_MS=$ms "$PY" "$W/drive.py" "$uuid" "${UNLINKED_ROUNDS:-12}" -- \
        timeout -k 5 "$TMO" env S3SHIM_MOUNTS="$MP=block://$dev" LD_PRELOAD="$PRELOAD" "${SAN_ENV[@]}" "$PY" \
        >"$OUT" 2>"$W/err"; then
        pass "$label: the /dev/shm file removed under two committing processes, new processes committing in between: every process sees every commit ($(tail -1 "$OUT"))"
    else
        cat "$W/err" >>"$OUT"
        fail "$label: the /dev/shm file removed under two committing processes, new processes committing in between: every process sees every commit" "$OUT"
    fi
    check_clean "$dev" "$label"
    local left
    left=$(find /dev/shm -maxdepth 1 -name "s3shim-blk-$uuid-*" | wc -l)
    check "$label: no /dev/shm file of the store left once every process ended" test "$left" = 0
}

IMG=$W/store.img
truncate -s 256M "$IMG" && "$TOOL" blk format "$IMG" >"$OUT" 2>&1 || bail "format the store" "$OUT"
run "image file, group commit" "$IMG" 1000
run "image file, group commit every 50 ms" "$IMG" 50
if [ "$have_loop" = 1 ] && new_dev 256 && [ -n "$dev" ]; then
    "$TOOL" blk format "$dev" >"$OUT" 2>&1 || bail "format $dev" "$OUT"
    run "loop device, group commit" "$dev" 1000
else
    skip "loop device case: ${why:-could not attach one}"
fi
finish
