#!/usr/bin/env bash
# first.sh - what a new process pays for its first S3 request (issue 13, item 3).
#
# A 1 KiB object on nginx (loopback, tests/s3rig/start-nginx.sh). Five cases, each a
# fresh process, each against the plain tool a user would run instead:
#   first   open + first read() in s3io (bench/s3/s3io.c ttfb), against curl's own
#           time_starttransfer for one GET: the time to the first byte
#   cat     `cat /s3/bench/small`           vs `curl -s URL`            (whole process)
#   head    `head -c 100 /s3/bench/small`   vs `curl -s -r 0-99 URL`    (whole process)
#   stat    `stat /s3/bench/small`          vs `curl -sI URL`           (whole process)
#   ls      `ls -l /s3/bench/small`         vs `curl -sI URL`           (whole process)
# (nginx answers GET and HEAD only: an `aws s3 ls` needs a real S3 server, and the AWS
# CLI's own start-up, hundreds of milliseconds, would dwarf everything measured here.)
#
# The arms alternate (peer, ours, peer, ours... with the order swapped every round) on a
# shared machine; each row shows the median of REPS runs per arm, and their ratio
# (ours / peer: below 1 is faster). Wall time is from fork to exit as seen by the
# harness; cpu is the child's user + system time.
#
# Environment: BUILD (build), REPS (41), OUT ($BUILD/bench/first-results.txt)
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S3RIG_WHO=bench-first
. "$HERE/../preamble.sh" # REPO, RIG, the rig's lib.sh, BUILD, LIB
S3IO=$BUILD/bench/s3io
REPS=${REPS:-41}
OUT=${OUT:-$BUILD/bench/first-results.txt}
[ -e "$LIB" ] || { echo "first.sh: $LIB is missing (run make)" >&2; exit 2; }
for t in curl python3 cat head stat ls; do
    command -v "$t" >/dev/null || { echo "first.sh: $t is missing" >&2; exit 2; }
done
mkdir -p "$BUILD/bench" "$(dirname "$OUT")"
if [ ! -x "$S3IO" ] || [ "$HERE/s3io.c" -nt "$S3IO" ]; then
    cc -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o "$S3IO" "$HERE/s3io.c" || exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/s3shim-bench-first.XXXXXX") || exit 2
cleanup() {
    "$RIG/stop-nginx.sh" --dir "$WORK/nginx" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/root/bench"
head -c 1024 /dev/urandom > "$WORK/root/bench/small"
port=$(s3rig_free_port 127.0.0.1 18180) || { echo "first.sh: no free port" >&2; exit 1; }
"$RIG/start-nginx.sh" --root "$WORK/root" --dir "$WORK/nginx" --listen "127.0.0.1:$port" --no-access-log \
    >/dev/null || { echo "first.sh: start-nginx.sh failed" >&2; exit 1; }
URL=http://127.0.0.1:$port/bench/small

# Nothing from the caller's environment reaches the programs except what is set here.
for v in $(compgen -e); do
    case "$v" in S3SHIM_*|AWS_*|LD_PRELOAD) unset "$v" ;; esac
done
export AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

# correctness first: the shim returns the object's bytes, curl too
LD_PRELOAD=$LIB AWS_ENDPOINT_URL=http://127.0.0.1:$port S3SHIM_NO_SIGN=1 S3SHIM_ADDRESSING=path \
    cmp /s3/bench/small "$WORK/root/bench/small" || { echo "first.sh: the shim read wrong bytes" >&2; exit 1; }
curl -sS "$URL" | cmp - "$WORK/root/bench/small" || { echo "first.sh: curl read wrong bytes" >&2; exit 1; }

python3 - "$REPS" "$URL" "$LIB" "$S3IO" "$port" <<'PY' | tee "$OUT"
import os, statistics, subprocess, sys, time
reps, url, lib, s3io, port = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
path = '/s3/bench/small'
shim_env = dict(os.environ, LD_PRELOAD=lib, AWS_ENDPOINT_URL='http://127.0.0.1:' + port,
                S3SHIM_NO_SIGN='1', S3SHIM_ADDRESSING='path')
peer_env = dict(os.environ)
cases = [
    ('cat', ['curl', '-s', url], ['cat', path]),
    ('head -c 100', ['curl', '-s', '-r', '0-99', url], ['head', '-c', '100', path]),
    ('stat', ['curl', '-sI', url], ['stat', path]),
    ('ls -l', ['curl', '-sI', url], ['ls', '-l', path]),
]

def whole(cmd, env):
    t0 = time.perf_counter_ns()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    t = (time.perf_counter_ns() - t0) / 1e6
    if p.returncode != 0 or not out:
        sys.exit('first.sh: %s failed (%d): %s' % (' '.join(cmd), p.returncode, err.decode()[:300]))
    return t

def cpu_of(cmd, env):
    # a separate run under wait4 for the child's own CPU time
    pid = os.fork()
    if pid == 0:
        fd = os.open('/dev/null', os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.execvpe(cmd[0], cmd, env)
    _, status, ru = os.wait4(pid, 0)
    return (ru.ru_utime + ru.ru_stime) * 1e3

def first_shim():
    out = subprocess.run([s3io, 'ttfb', path, '1'], env=shim_env, capture_output=True, text=True, check=True).stdout
    return float(out.split('ttfb_us=')[1].split()[0]) / 1e3

def first_curl():
    out = subprocess.run(['curl', '-s', '-o', '/dev/null', '-w', '%{time_starttransfer}', url],
                         env=peer_env, capture_output=True, text=True, check=True).stdout
    return float(out) * 1e3

def alternate(a, b):
    xa, xb = [], []
    for i in range(reps):
        if i % 2:
            xb.append(b()); xa.append(a())
        else:
            xa.append(a()); xb.append(b())
    return statistics.median(xa), statistics.median(xb)

rows = []
p, s = alternate(first_curl, first_shim)
rows.append(('first byte (open+read vs curl starttransfer)', 'wall', p, s))
for name, peer, ours in cases:
    p, s = alternate(lambda: whole(peer, peer_env), lambda: whole(ours, shim_env))
    rows.append(('whole `%s` vs `%s`' % (' '.join(ours), ' '.join(peer[:-1])), 'wall', p, s))
    p, s = alternate(lambda: cpu_of(peer, peer_env), lambda: cpu_of(ours, shim_env))
    rows.append(('whole `%s` vs `%s`' % (' '.join(ours), ' '.join(peer[:-1])), 'cpu', p, s))
print('first request of a new process: 1 KiB object on nginx (loopback), %d runs per arm, ABAB, medians' % reps)
print('load average at the end: %s' % open('/proc/loadavg').read().split()[:3])
print('%-62s %-4s %9s %9s %7s' % ('case', '', 'peer ms', 'ours ms', 'ratio'))
for name, kind, p, s in rows:
    print('%-62s %-4s %9.3f %9.3f %6.2fx' % (name, kind, p, s, s / p if p else float('nan')))
PY
