#!/usr/bin/env python3
"""Reads kura-bench-hitratio --period-misses (and optionally --periods) output
and prints, per trace and size, what the shadow adaptation could have done:

  - the best single setting over all periods (its simulated misses), and the
    best single setting from period FROM on (--from, default 1);
  - the best schedule with at most K switches at period ends (K = 0..3), and
    the per-period oracle (a switch every period), from period FROM on;
  - with --periods: the cache's own misses over the same periods.

Misses are on the sampled reads (all reads when sampling_shift is 0), and a
simulation holds the state its own history built: a schedule's misses are a
lower bound for a cache that switches, which starts from another state
(bench/RESULTS.md, issue 14, session 24).

  period_misses.py PM.csv [--periods P.csv] [--from N]
"""
import argparse
import csv
from collections import defaultdict


def schedules(rows, max_switches):
    """Fewest misses with at most k switches, for k = 0..max_switches."""
    n = len(rows[0])
    inf = float("inf")
    cur = [[inf] * n for _ in range(max_switches + 1)]
    cur[0] = list(rows[0])
    for r in rows[1:]:
        nxt = [[inf] * n for _ in range(max_switches + 1)]
        for k in range(max_switches + 1):
            from_other = min(cur[k - 1]) if k else inf
            for i in range(n):
                nxt[k][i] = min(cur[k][i], from_other) + r[i]
        cur = nxt
    return [min(min(cur[j]) for j in range(k + 1)) for k in range(max_switches + 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("period_misses")
    ap.add_argument("--periods")
    ap.add_argument("--from", dest="start", type=int, default=1)
    a = ap.parse_args()
    with open(a.period_misses) as f:
        rd = csv.reader(f)
        names = next(rd)[3:]
        runs = defaultdict(list)
        for r in rd:
            runs[(r[0], r[1])].append((int(r[2]), [int(x) for x in r[3:]]))
    cache = defaultdict(dict)
    if a.periods:
        with open(a.periods) as f:
            for r in csv.DictReader(f):
                cache[(r["trace"], r["size"])][int(r["period"])] = int(r["cache_misses"])
    for key, periods in runs.items():
        rows = [m for p, m in periods]
        tail = [m for p, m in periods if p >= a.start]
        tot = [sum(c) for c in zip(*rows)]
        best = min(range(len(names)), key=tot.__getitem__)
        print(f"{key[0]} {key[1]}: {len(rows)} periods; best single setting {names[best]} "
              f"{tot[best]}")
        if not tail:
            continue
        ttot = [sum(c) for c in zip(*tail)]
        tb = min(range(len(names)), key=ttot.__getitem__)
        line = f"  from period {a.start}: best single {names[tb]} {ttot[tb]}"
        line += "; at most k switches " + ", ".join(
            f"k={k} {v}" for k, v in enumerate(schedules(tail, 3)))
        line += f"; oracle {sum(min(r) for r in tail)}"
        if key in cache:
            c = cache[key]
            line += f"; cache {sum(c[p] for p, _ in periods if p >= a.start and p in c)}"
        print(line)


if __name__ == "__main__":
    main()
