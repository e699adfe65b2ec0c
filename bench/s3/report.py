#!/usr/bin/env python3
"""report.py RAW SIZE TUNED - the tables of bench/s3/run.sh from its raw run lines.

RAW lines:  run|SERVER|BENCH|TOOL|WALL_S|RSS_KB|CPU_S|KEY=VALUE|...
            fail|SERVER|BENCH|TOOL      skip|WHAT
"""
import statistics
import sys

raw, size, tuned = sys.argv[1], int(sys.argv[2]), sys.argv[3]
MIB = 1048576.0
runs, fails, skips = {}, [], []
for line in open(raw):
    f = line.rstrip('\n').split('|')
    if f[0] == 'run':
        server, bench, tool = f[1], f[2], f[3]
        kv = dict(x.split('=', 1) for x in f[7:] if '=' in x)
        r = {'wall': float(f[4]), 'rss': int(f[5] or 0), 'cpu': float(f[6] or 0), **kv}
        runs.setdefault((server, bench, tool), []).append(r)
    elif f[0] == 'fail':
        fails.append(' '.join(f[1:]))
    elif f[0] == 'skip':
        skips.append(f[1])

SERVERS = {'nginx': 'nginx (anonymous, tmpfs)', 'swift': 'Swift s3api (SigV4)'}


def agg(server, bench, tool):
    """best (lowest) wall, median wall, median cpu, max RSS over the runs; None if no run"""
    rs = runs.get((server, bench, tool))
    if not rs:
        return None
    walls = [r['wall'] for r in rs]
    return {'best': min(walls), 'median': statistics.median(walls), 'n': len(rs),
            'cpu': statistics.median(r['cpu'] for r in rs), 'rss': max(r['rss'] for r in rs),
            'srv': statistics.median(float(r.get('srv_cpu', 0)) for r in rs),
            'reqs': rs[-1].get('reqs', ''), 'walls': walls, 'last': rs[-1]}


def mbs(wall):
    return size / MIB / wall


def throughput_section(bench, title, servers, peers, ours, goals):
    for server in servers:
        have = [t for t, _ in peers + ours if agg(server, bench, t)]
        if not have:
            continue
        print()
        print('%s, %s: %s' % (title, '%d MiB' % (size / MIB), SERVERS[server]))
        print('  %-34s %8s %8s %7s %7s %8s' % ('peer', 'MB/s', '(median)', 'cpu_s', 'srv_s', 'RSS_MB'))
        pa = {}
        for t, name in peers:
            a = agg(server, bench, t)
            if not a:
                print('  %-34s %8s' % (name, 'failed' if any(t in x for x in fails) else '-'))
                continue
            pa[t] = a
            print('  %-34s %8.1f %8.1f %7.2f %7.2f %8.1f' % (name, mbs(a['best']), mbs(a['median']), a['cpu'],
                                                          a['srv'], a['rss'] / 1024))
        cols = [t for t, _ in peers]
        print('  %-34s %8s %8s %7s %7s %8s %5s  %s' % ('ours', 'MB/s', '(median)', 'cpu_s', 'srv_s', 'RSS_MB', 'reqs',
                                                 'ratio ours/peer (best runs): goal'))
        for t, name in ours:
            a = agg(server, bench, t)
            if not a:
                print('  %-34s %8s' % (name, 'failed' if any(t in x for x in fails) else '-'))
                continue
            ratios = {c: pa[c]['best'] / a['best'] for c in cols if c in pa}
            verdict = []
            for need, group, label in goals:
                got = [ratios[c] for c in group if c in ratios]
                if got:
                    verdict.append('%s %s' % (label, 'met' if min(got) >= need else 'NOT met'))
            print('  %-34s %8.1f %8.1f %7.2f %7.2f %8.1f %5s  %s: %s' % (
                name, mbs(a['best']), mbs(a['median']), a['cpu'], a['srv'], a['rss'] / 1024, a['reqs'],
                ' '.join('%s %.2f' % (c, ratios[c]) for c in cols if c in ratios), '; '.join(verdict)))

print()
print('MB/s = MiB/s from wall time: the best run, (median) beside it; cpu_s = user+sys seconds of the')
print('client processes (FUSE: cat + daemon; median); srv_s = CPU seconds the server\'s processes used')
print('during the run (median); RSS_MB = max resident set (FUSE: the daemon\'s VmHWM; 8 ranges: sum of')
print('the 8 curls); reqs = HTTP requests the shim made; ratio = ours/peer MB/s of the best runs, > 1:')
print('ours faster')

read_peers = [('curl1', 'curl, 1 stream'), ('curl8', 'curl, 8 parallel ranges'),
              ('aws', 'aws s3 cp s3://b/obj /dev/null'), ('s3fs', 'cat from an s3fs mount'),
              ('rclone', 'cat from an rclone mount')]
read_ours = [('shim-cat', 'cat /s3/b/obj > /dev/null'), ('shim-dd', 'dd if=/s3/b/obj bs=1M of=/dev/null')]
if tuned:
    read_ours.append(('shim-tuned', 'cat, TUNED (*)'))
throughput_section('read', 'Sequential read', ['nginx', 'swift'], read_peers, read_ours,
                   [(1.0, ['curl1', 'curl8', 'aws'], '>=1x curl/aws'), (2.0, ['s3fs', 'rclone'], '>=2x FUSE')])
if tuned:
    print('  (*) TUNED: ' + tuned + ' (the defaults: 8M, memory 1G, concurrency 16, 2 I/O threads)')
write_peers = [('aws', 'aws s3 cp FILE s3://b/k'), ('s3fs', 'cp FILE to an s3fs mount')]
write_ours = [('shim-dd', 'dd if=/dev/zero bs=1M of=/s3/b/k'), ('shim-cp', 'cp FILE /s3/b/k')]
throughput_section('write', 'Sequential write', ['swift'], write_peers, write_ours,
                   [(1.0, ['aws'], '>=1x aws')])

# random preads
rows = []
for server in ('nginx', 'swift'):
    for bs in ('4096', '65536'):
        c, s = agg(server, 'pread' + bs, 'curl'), agg(server, 'pread' + bs, 'shim')
        if not c and not s:
            continue
        rows.append((server, bs, c, s))
if rows:
    print()
    print('Random preads: N preads of one block size at random block-aligned offsets of the object, on')
    print('one fd through the shim (timed: the preads, not the open) vs curl fetching the same ranges over')
    print('one keep-alive connection (timed: the whole curl process); req/s of the best run, ratio = ours/curl')
    print('  %-6s %6s %6s %10s %10s %7s %9s %9s %8s %11s' % (
        'server', 'block', 'N', 'curl req/s', 'shim req/s', 'ratio', 'p50_us', 'p99_us', 'RSS_MB', 'fetched_MiB'))
    for server, bs, c, s in rows:
        # the best run of each (highest req/s)
        if c:
            c['last'] = max(runs[(server, 'pread' + bs, 'curl')], key=lambda r: float(r['reqs_per_s']))
        if s:
            s['last'] = max(runs[(server, 'pread' + bs, 'shim')], key=lambda r: float(r['reqs_per_s']))
        cr = float(c['last']['reqs_per_s']) if c else None
        sr = float(s['last']['reqs_per_s']) if s else None
        n = (s or c)['last'].get('n', '?')
        print('  %-6s %6s %6s %10s %10s %7s %9s %9s %8s %11s' % (
            server, bs, n, '%.0f' % cr if cr else 'failed', '%.0f' % sr if sr else 'failed',
            '%.2f' % (sr / cr) if cr and sr else '-', s['last'].get('p50_us', '') if s else '',
            s['last'].get('p99_us', '') if s else '', '%.1f' % (s['rss'] / 1024) if s else '',
            '%.1f' % (int(s['last'].get('fetched', 0)) / MIB) if s else ''))
    print('  (fetched_MiB: bytes the shim GOT from the server in the run, the open\'s first GET included;')
    print('   the preads asked for N x block)')

# time to first byte
have = [s for s in ('nginx', 'swift') if agg(s, 'ttfb-cold', 'curl') or agg(s, 'ttfb-cold', 'shim')]
if have:
    print()
    print('Time to first byte of a 1 KiB object, ms (median); ratio = ours/curl, lower is better, goal <= 1.10')
    print('  %-6s %-50s %9s %9s %7s %8s' % ('server', 'measure', 'curl ms', 'shim ms', 'ratio', 'RSS_MB'))
    what = [('ttfb-cold', 'first in a new process (curl: time_starttransfer)'),
            ('ttfb-warm', 'later ones, connection reused'),
            ('ttfb-proc', 'whole process: cat /s3/b/small vs curl URL')]
    for server in have:
        for bench, label in what:
            c, s = agg(server, bench, 'curl'), agg(server, bench, 'shim')
            if not c or not s:
                continue
            cm, sm = c['last']['wall'] * 1e3, s['last']['wall'] * 1e3
            print('  %-6s %-50s %9.2f %9.2f %7.2f %8.1f' % (server, label, cm, sm, sm / cm if cm else 0,
                                                          s['rss'] / 1024))
if fails:
    print()
    print('FAILED: ' + '; '.join(fails))
if skips:
    print('skipped (time budget): ' + '; '.join(skips))
