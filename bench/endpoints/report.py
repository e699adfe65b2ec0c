#!/usr/bin/env python3
"""report.py - the table of bench/endpoints/run.sh from its raw directory.

Latencies are the program's own (mix.c: one line per pread); shares are the shim's
per-endpoint request counts (S3SHIM_STATS_FILE); the slowdown rows count the requests the
slowed endpoint answered with its new latency (>= 150 ms in its proxy log) and the p99
of the program's reads in the 2 s after the change."""
import glob
import json
import os
import sys

D, THREADS, READS = sys.argv[1], sys.argv[2], sys.argv[3]
urls = {}
for line in open(os.path.join(D, "urls.txt")):
    name, url = line.split()
    urls[url] = name


def lat(name, t_from=None, t_to=None):
    v = []
    try:
        for line in open(os.path.join(D, name + ".csv")):
            t, us, _ = line.split(",")
            t = float(t)
            if t_from is not None and not (t_from <= t < t_to):
                continue
            v.append(float(us) / 1000.0)
    except OSError:
        return None
    if not v:
        return None
    v.sort()
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    return {"n": len(v), "mean": sum(v) / len(v), "p50": q(0.50), "p99": q(0.99)}


def shares(name):
    try:
        j = json.load(open(os.path.join(D, name + ".stats.json")))
    except (OSError, ValueError):
        return {}, 0
    reqs, hedges = {}, 0
    for m in j["mounts"]:
        for c in m.get("children", []):
            o = c["ops"]
            k = urls.get(c["uri"], c["uri"])  # every S3 mount lists the endpoints
            reqs[k] = reqs.get(k, 0) + o.get("req", {}).get("count", 0)
            hedges += o.get("hedge", {}).get("count", 0)
    tot = sum(reqs.values()) or 1
    return {k: 100.0 * v / tot for k, v in reqs.items()}, hedges


def fmt_share(sh, names):
    return " ".join("%s:%4.1f%%" % (n, sh.get(n, 0.0)) for n in names)


print("# multi-endpoint benchmark: %s readers x %s preads (80%% 64 KiB, 20%% 1 MiB), nginx behind "
      "tests/s3rig/faultproxy.py (+10%% jitter)" % (THREADS, READS))
print()
print("## latency: endpoints of 5, 10, 50, 100 ms")
print("%-12s %9s %9s %9s  %-44s %s" % ("policy", "mean ms", "p50 ms", "p99 ms", "share of requests", "hedges"))
names = ["p5", "p10", "p50", "p100"]
res = {}
for run in ["alone", "rr", "least", "sewt", "sewt_hedge"]:
    r = lat(run)
    sh, h = shares(run)
    res[run] = r
    if r:
        print("%-12s %9.2f %9.2f %9.2f  %-44s %d" % (run if run != "alone" else "5ms alone", r["mean"], r["p50"],
                                                   r["p99"], fmt_share(sh, names), h))
print()
rr, alone = res.get("rr"), res.get("alone")
for run in ["sewt", "sewt_hedge", "least"]:
    r = res.get(run)
    if r and rr and alone:
        print("%-11s mean vs rr: %.2f / %.2f ms = %.2f (goal <= 0.50: %s);  p99 vs 5 ms endpoint alone: %.2f / %.2f ms "
              "= %.2f (goal <= 1.5: %s)" % (run, r["mean"], rr["mean"], r["mean"] / rr["mean"],
                                           "met" if r["mean"] <= 0.5 * rr["mean"] else "NOT met", r["p99"],
                                           alone["p99"], r["p99"] / alone["p99"],
                                           "met" if r["p99"] <= 1.5 * alone["p99"] else "NOT met"))
print()
print("## four equal 5 ms endpoints")
a, b = lat("eq_least"), lat("eq_sewt")
if a and b:
    print("least mean %.2f ms p99 %.2f;  sewt mean %.2f ms p99 %.2f;  sewt/least mean %.3f (goal <= 1.05: %s)" % (
        a["mean"], a["p99"], b["mean"], b["p99"], b["mean"] / a["mean"],
        "met" if b["mean"] <= 1.05 * a["mean"] else "NOT met"))
    for run in ["eq_least", "eq_sewt"]:
        print("  %-9s share: %s" % (run, fmt_share(shares(run)[0], ["e1", "e2", "e3", "e4"])))
print()
print("## one of four 5 ms endpoints becomes 200 ms, 3 s into the run")
for pol in ["rr", "sewt"]:
    try:
        t0 = float(open(os.path.join(D, "slow_%s.t0" % pol)).read())
        tc = float(open(os.path.join(D, "slow_%s.t" % pol)).read())
        s0 = int(open(os.path.join(D, "slow_%s.e2start" % pol)).read())
        s1 = int(open(os.path.join(D, "slow_%s.e2end" % pol)).read())
    except (OSError, ValueError):
        continue
    lines = open(os.path.join(D, "e2.log")).read().splitlines()[s0:s1]
    slow = sum(1 for l in lines if float(l.split()[6]) >= 150.0)
    w = lat("slow_" + pol, (tc - t0) * 1000.0, (tc - t0) * 1000.0 + 2000.0)
    whole = lat("slow_" + pol)
    if w and whole:
        print("%-5s slowed endpoint answered %4d requests at 200 ms;  p99 in the 2 s after: %7.2f ms;  whole run: "
              "mean %.2f ms p99 %.2f ms" % (pol, slow, w["p99"], whole["mean"], whole["p99"]))
print()
print("## selection cost (bench/endpoints/select.c; goal < 100 ns)")
try:
    sys.stdout.write(open(os.path.join(D, "select.txt")).read())
except OSError:
    pass
