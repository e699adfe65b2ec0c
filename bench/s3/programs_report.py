#!/usr/bin/env python3
"""programs_report.py RAW - the tables of bench/s3/programs.sh from its raw lines
    run|SERVER|CASE|ARM|WALL_S|RSS_KB|CPU_S|KEY=VALUE|...
(keys: reqs, up, down, copies from Swift's access log; shim_reqs, shim_fetched, shim_sent
from the shim's statistics; srv_cpu), fail|SERVER|CASE|ARM and skip|WHAT lines."""
import statistics
import sys

MIB = 1048576.0
runs, fails, skips, peerfails = {}, [], [], {}
for line in open(sys.argv[1]):
    f = line.rstrip('\n').split('|')
    if f[0] == 'run':
        kv = dict(x.split('=', 1) for x in f[7:] if '=' in x)
        r = {'wall': float(f[4]), 'rss': int(f[5] or 0), 'cpu': float(f[6] or 0), **kv}
        runs.setdefault((f[2], f[3]), []).append(r)
    elif f[0] == 'fail':
        fails.append('%s %s' % (f[2], f[3]))
    elif f[0] == 'peerfail':
        peerfails[(f[2], f[3])] = peerfails.get((f[2], f[3]), 0) + 1
    elif f[0] == 'skip':
        skips.append(f[1])

ARMS = {'shim': 'ours: the program on /s3/bench/K',
        's3fs': 's3fs: the program on the mount',
        's3fs-nomix': 's3fs -o nomixupload',
        'local': 'aws s3 cp + the program locally'}


def agg(case, arm):
    rs = runs.get((case, arm))
    if not rs:
        return None
    walls = sorted(r['wall'] for r in rs)
    med = lambda k: statistics.median(float(r.get(k, 0) or 0) for r in rs)
    best = min(rs, key=lambda r: r['wall'])
    return {'best': walls[0], 'median': statistics.median(walls), 'n': len(rs), 'cpu': med('cpu'),
            'srv': med('srv_cpu'), 'rss': max(r['rss'] for r in rs) / 1024.0, 'b': best}


def row(label, a, extra=''):
    b = a['b']
    return ('  %-36s %7.2f %8.2f %6.2f %6.2f %7.1f %6s %8.1f %8.1f %6s%s' %
            (label, a['best'], a['median'], a['cpu'], a['srv'], a['rss'], b.get('reqs', '?'),
             int(b.get('up', 0)) / MIB, int(b.get('down', 0)) / MIB, b.get('copies', '?'), extra))


HDR = ('  %-36s %7s %8s %6s %6s %7s %6s %8s %8s %6s' %
       ('arm', 'best_s', 'median_s', 'cpu_s', 'srv_s', 'RSS_MB', 'reqs', 'up_MiB', 'down_MiB', 'copies'))


def ratios(case, goals):
    ours = agg(case, 'shim')
    if not ours:
        return ''
    out = []
    for peer, goal in goals:
        p = agg(case, peer)
        if not p:
            continue
        rb, rm = p['best'] / ours['best'], p['median'] / ours['median']
        out.append('%s %.2f (median %.2f; goal %.1f: %s)' % (peer, rb, rm, goal, 'met' if rb >= goal else 'NOT met'))
    return '; '.join(out)


def table(title, case, goals, arms=('s3fs', 'local', 'shim')):
    have = [a for a in arms if agg(case, a) or (case, a) in peerfails]
    if not have:
        return
    print()
    print(title)
    print(HDR)
    for a in have:
        if agg(case, a):
            print(row(ARMS[a], agg(case, a)))
        if (case, a) in peerfails:
            print('  %-36s FAILED in %d run(s) (the program got an error, or the result was wrong: see the log)' %
                  (ARMS[a], peerfails[(case, a)]))
    r = ratios(case, goals)
    if r:
        print('  ratio peer time / our time, best runs: ' + r)
    b = agg(case, 'shim')
    if b and 'shim_fetched' in b['b']:
        print('  ours, from the shim\'s statistics: %s requests, %.1f MiB fetched, %.1f MiB sent' %
              (b['b']['shim_reqs'], int(b['b']['shim_fetched']) / MIB, int(b['b']['shim_sent']) / MIB))


print('''
best_s / median_s: wall time of the best and the median run; cpu_s: user+sys of the client
processes (s3fs: the program + the daemon), median; srv_s: CPU seconds of Swift's processes
during the run, median; RSS_MB: max resident set (s3fs: the daemon's VmHWM); reqs, up_MiB
(client to server), down_MiB (server to client), copies (PUTs without a body: server-side
CopyObject / UploadPartCopy): from Swift's access log, for the best run.''')
G2 = (('s3fs', 1.5), ('local', 1.0))
table('zip -r of the tree into S3', 'zip', G2)
for q, t in (('point', 'indexed point lookup'), ('range', 'range scan over an index (1% of the rows)'),
             ('full', 'full-table aggregate (GROUP BY over every row)'),
             ('write', 'read-write transaction (5 rows updated, 1 inserted; local arm: down, run, up)')):
    table('sqlite3 on the database in S3: ' + t, 'sqlite-' + q, G2)
# The server's floors (programs.sh sqlite_floors): no client reads the whole database
# faster than the fastest read of it, nor rewrites it faster than the server copies it.
fl = {a: agg('sqlite-floor', a) for a in ('read', 'copy-one', 'copy-parts')}
if any(fl.values()):
    print()
    print("sqlite3: the server's floors for the database, same run (best / median s)")
    for a, label in (('read', 'read whole: the shim\'s cat'), ('copy-one', 'copied on the server: one CopyObject (curl)'),
                     ('copy-parts', 'copied on the server: aws s3 cp (8 MiB parts)')):
        if fl[a]:
            print('  %-50s %7.2f %8.2f   srv_s %5.2f' % (label, fl[a]['best'], fl[a]['median'], fl[a]['srv']))
    p, o = agg('sqlite-full', 's3fs'), agg('sqlite-full', 'shim')
    if p and o and fl['read']:
        print('  full-table aggregate: s3fs %.2f s; reading the database whole takes %.2f s, so no client beats s3fs by'
              ' more than %.2fx; ours %.2f s = %.2fx' % (p['best'], fl['read']['best'], p['best'] / fl['read']['best'],
                                                         o['best'], p['best'] / o['best']))
    copies = [fl[a]['best'] for a in ('copy-one', 'copy-parts') if fl[a]]
    p, o = agg('sqlite-write', 's3fs'), agg('sqlite-write', 'shim')
    if p and o and copies:
        print('  transaction: s3fs %.2f s, ours %.2f s (%.2fx); 1.5x s3fs would be %.2f s, against %.2f s for the server to'
              ' copy the database once' % (p['best'], o['best'], p['best'] / o['best'], p['best'] / 1.5, min(copies)))
table('4 KiB patched in the middle of the object (dd conv=notrunc)', 'patch', (('s3fs', 1.0), ('s3fs-nomix', 1.0)),
      arms=('s3fs', 's3fs-nomix', 'shim'))
for op, t, local in (('cp', 'cp -r', 'aws s3 cp --recursive of the tree, no program'),
                     ('tar', 'tar xf', 'tar xf locally, then aws s3 cp --recursive')):
    table('%s of small files (4 KiB each) into a new directory in S3 (the "local" arm: %s)' % (t, local),
          'small-' + op, (('s3fs', 1.0), ('local', 1.0)))
# issue 3's figures (bench/RESULTS.md, S3, run 2): aws 138.7 MB/s, shim dd 175.6, shim cp 187.2
seq = {a: agg('seqwrite', a) for a in ('aws', 'shim-dd', 'shim-cp')}
if any(seq.values()):
    print()
    print('Sequential write (MiB/s of the best run; size from the shim\'s statistics / aws)')
    rec = {'aws': 138.7, 'shim-dd': 175.6, 'shim-cp': 187.2}
    sz = None
    for a in ('shim-dd', 'shim-cp'):
        if seq[a] and 'shim_sent' in seq[a]['b']:
            sz = int(seq[a]['b']['shim_sent'])
    for a, label in (('aws', 'aws s3 cp FILE s3://b/k'), ('shim-dd', 'dd if=/dev/zero bs=1M of=/s3/b/k'),
                     ('shim-cp', 'cp FILE /s3/b/k')):
        s = seq[a]
        if not s or not sz:
            continue
        mb, mm = sz / MIB / s['best'], sz / MIB / s['median']
        line = '  %-34s %7.1f (median %6.1f)  cpu_s %5.2f  srv_s %5.2f  RSS_MB %6.1f   issue 3: %6.1f' % (
            label, mb, mm, s['cpu'], s['srv'], s['rss'], rec[a])
        if a != 'aws' and seq['aws']:
            now = seq['aws']['best'] / s['best']
            then = rec[a] / rec['aws']
            line += '   ours/aws now %.2f, then %.2f' % (now, then)
        print(line)
if fails:
    print()
    print('FAILED: ' + ', '.join(fails))
if skips:
    print('skipped (time budget): ' + ', '.join(skips))
