# tests/block/interleave.sh - sourced by tests/block/run.sh (section 7b): two long-lived
# processes under the shim on one store, each with its own cache of metadata blocks
# (core/block/blk_cache.c), taking turns: python3 creates, overwrites, renames (also over
# an existing object) and unlinks; a bash reading commands from a FIFO does the same with
# its own redirections and with cp, mv and rm (children of its own). Group commit reuses a
# freed metadata block at the very next commit, so blocks either process kept are
# rewritten under it all the time; the side that acts makes one to four commits before the
# other looks (its kept blocks one to four roots old). After every step both list the three directories and
# read every object, and python compares both answers with its model. Then blk check, and
# the verifying processes' own stats: blocks were served from their caches (else the
# test would not be testing them).

new_dev 256
IDEV=$dev
"$TOOL" blk format "$IDEV" >/dev/null 2>&1
mkfifo "$W/il.cmd" "$W/il.ack"
cat >"$W/il.py" <<'EOF'
import os, random, sys
mp, cmdp, ackp, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = random.Random(1103)
ack = open(ackp, "r")  # the order bash opens them in
cmd = open(cmdp, "w", buffering=1)
dirs = ["a", "b", "c/d"]
model = {}
for d in dirs: os.makedirs(os.path.join(mp, d), exist_ok=True)
def bash(line):
    cmd.write(line + "\n")
    out = []
    while True:
        l = ack.readline()
        if not l: sys.exit("bash side went away")
        l = l.rstrip("\n")
        if l == "--end--": return out
        out.append(l)
def content(step):
    return ("s%d-" % step) + "x" * rng.randrange(1, 3000)
bad = 0
for step in range(steps):
    side = step % 2  # 0: python, 1: bash
    names = sorted(model)
    op = rng.choice(["create", "create", "overwrite", "rename", "unlink", "copy"]) if names else "create"
    if op == "create":
        k = "%s/f%d" % (rng.choice(dirs), rng.randrange(40))
        c = content(step)
        if side == 0:
            with open(os.path.join(mp, k), "w") as f: f.write(c)
        else: bash("printf %%s '%s' > '%s/%s'" % (c, mp, k))
        model[k] = c
    elif op == "overwrite":
        k = rng.choice(names); c = content(step)
        if side == 0:
            with open(os.path.join(mp, k), "w") as f: f.write(c)
        else: bash("printf %%s '%s' > '%s/%s'" % (c, mp, k))
        model[k] = c
    elif op == "rename":
        k = rng.choice(names)
        t = rng.choice(names) if rng.random() < 0.4 else "%s/f%d" % (rng.choice(dirs), rng.randrange(40))
        if side == 0: os.rename(os.path.join(mp, k), os.path.join(mp, t))
        else: bash("mv '%s/%s' '%s/%s'" % (mp, k, mp, t))
        c = model.pop(k); model[t] = c
    elif op == "unlink":
        k = rng.choice(names)
        if side == 0: os.unlink(os.path.join(mp, k))
        else: bash("rm '%s/%s'" % (mp, k))
        del model[k]
    else:
        k = rng.choice(names); t = "%s/f%d" % (rng.choice(dirs), rng.randrange(40))
        if t != k:
            if side == 0:
                with open(os.path.join(mp, k)) as f: c = f.read()
                with open(os.path.join(mp, t), "w") as f: f.write(c)
            else: bash("cp '%s/%s' '%s/%s'" % (mp, k, mp, t))
            model[t] = model[k]
    # 0-3 more commits by the same side (a scratch object created, rewritten, removed)
    # before the other looks: its kept blocks are then one to four roots old
    extra = rng.randrange(4)
    for e in range(extra):
        sp = "a/scratch"
        sp_op = "rm" if sp in model else "write"
        if side == 0:
            if sp_op == "write":
                with open(os.path.join(mp, sp), "w") as f: f.write("scratch %d" % step)
            else: os.unlink(os.path.join(mp, sp))
        else:
            bash("printf scratch > '%s/%s'" % (mp, sp) if sp_op == "write" else "rm '%s/%s'" % (mp, sp))
        if sp_op == "write": model[sp] = "scratch %d" % step if side == 0 else "scratch"
        else: model.pop(sp, None)
    want = sorted("%s %d %s" % (k, len(v), v[-12:]) for k, v in model.items())
    mine = []
    for d in dirs:
        for n in os.listdir(os.path.join(mp, d)):
            p = os.path.join(mp, d, n)
            if os.path.isdir(p): continue
            with open(p) as f: v = f.read()
            mine.append("%s/%s %d %s" % (d, n, len(v), v[-12:]))
    theirs = bash("check")
    for who, got in (("python", sorted(mine)), ("bash", sorted(theirs))):
        if got != want:
            bad += 1
            print("step %d (%s by %s): %s sees %s, want %s" % (step, op, "python bash".split()[side], who,
                  sorted(set(got) ^ set(want))[:4], len(want)))
bash("exit")
print("steps %d bad %d objects %d" % (steps, bad, len(model)))
EOF
cat >"$W/il.sh" <<'EOF'
cd "$1" || exit 1
exec 3>"$3"
while IFS= read -r line; do
    if [ "$line" = check ]; then
        for f in a/* b/* c/d/*; do
            [ -f "$f" ] || continue
            IFS= read -r v <"$f" || [ -n "$v" ] || v=""
            echo "$f ${#v} ${v:$(( ${#v} > 12 ? ${#v} - 12 : 0 ))}" >&3
        done
    elif [ "$line" = exit ]; then
        echo --end-- >&3; exit 0
    else
        eval "$line" || echo "failed: $line" >&3
    fi
    echo --end-- >&3
done <"$2"
EOF
: >"$W/il.err"
# 300 steps start some 600 programs (cp, mv, rm, and a check reading every object after
# each step): under ASan on a loaded machine that took more than the usual 120 s once
# (python killed by the timeout: no line of its own, no stats), so these two get 600 s.
TMO=600 S3SHIM_STATS=1 shim "$IDEV" bash "$W/il.sh" "$MP" "$W/il.cmd" "$W/il.ack" 2>"$W/il.bash.err" &
ILPID=$!
TMO=600 S3SHIM_STATS=1 shim "$IDEV" "$PY" "$W/il.py" "$MP" "$W/il.cmd" "$W/il.ack" 300 >"$OUT" 2>"$W/il.py.err"
ilrc=$?
wait "$ILPID"
ilkept() { sed -n 's/.*, \([0-9]*\) kept ones used.*/\1/p' "$1" | tail -1; }
kp=$(ilkept "$W/il.py.err")
kb=$(ilkept "$W/il.bash.err")
if grep -q "^steps 300 bad 0 objects [1-9]" "$OUT" && [ "${kp:-0}" -gt 0 ] && [ "${kb:-0}" -gt 0 ]; then
    pass "python3 and a bash (cp, mv, rm) taking turns on one store, 300 steps: both see every listing and content right after each ($(tail -1 "$OUT"); blocks from their caches: $kp, $kb)"
else
    # what python found wrong first (the stats lines of the processes come after)
    { grep -E '^(step|steps) |Traceback|Error|went away' "$OUT" "$W/il.py.err" | head -n 20
      echo "python exited with $ilrc$([ $ilrc = 124 ] && echo ' (killed by the timeout)'), after $(grep -c . "$OUT") lines"
      echo "blocks served from the caches: python ${kp:-none}, bash ${kb:-none}"
      grep -v 's3shim stats\|^ \|^\[' "$W/il.py.err" "$W/il.bash.err" | head -n 20; } >"$W/il.why"
    fail "python3 and a bash taking turns on one store: listings and contents right after each step" "$W/il.why"
fi
check_clean "$IDEV" "after python3 and bash taking turns"
# A process that only reads: its block stats line counts the metadata blocks it read.
S3SHIM_STATS=1 shim "$IDEV" find "$MP" -type f -exec cat {} + >/dev/null 2>"$OUT"
nr=$(sed -n 's/.*), \([0-9]*\) metadata blocks read.*/\1/p' "$OUT" | tail -1)
if [ "${nr:-0}" -gt 0 ]; then pass "a reader's block stats line counts the metadata blocks it read ($nr)"
else fail "a reader's block stats line counts the metadata blocks it read" "$OUT"; fi
