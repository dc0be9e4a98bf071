#!/usr/bin/env python3
"""The peer comparison's probe history and its exact answers.

One service watched by P probes (default 3), one check every INTERVAL seconds per
probe, over DAYS days ending at END (exclusive; default 2025-01-01T00:00:00Z). Probe k
checks at ``start + (k * INTERVAL) // P + n * INTERVAL``. The event model is that of the
project's peer kit (``shared/bench-peers/gen.py``), drawn from Python's ``random`` in the
same order, so service ``svc-NN`` here is sample for sample the kit's ``svc-NN``:

* full outages seen by every probe: Poisson, 2 per 30 days times a per-service
  lognormal flakiness multiplier; lognormal duration, median 15 min, 1 min .. 8 h;
* partial outages seen by a random non-empty proper subset of the probes: 0.7 per 30 days
  times the multiplier; median 10 min, 1 min .. 3 h;
* planned maintenance for about 30 % of services: every 30 days, 1-3 h from 01:00 UTC,
  seen as DOWN (it is not declared to anyone);
* network faults seen by one probe only: 1.5 per 30 days per probe, median 5 min;
* probe-agent gaps during which a probe writes no sample at all: 0.5 per 30 days per
  probe, median 20 min, up to 12 h;
* isolated failed checks: about 1 in 25,000.

Intervals are half-open: a check at time t is DOWN when some outage interval [a, b)
holds t, and missing when some gap interval holds t.

The exact answers (``truth``) are computed from the samples themselves, by DESIGN.md's
"Projections and SLA semantics": a probe's state at t is the status of its latest sample
at or before t while t < that sample + staleness (90 s), else UNKNOWN; the service is
DOWN under MAJORITY when 2D > K (K = probes UP or DOWN), UNKNOWN when K = 0. Times are
whole seconds, so the up/down/unknown measures are exact integers. For a probe on its
own (a service only it watches) the same rule reduces to its own state.

Also recorded, for judging the peers: each probe's sample counts (the count ratio that
Prometheus' avg_over_time and SQLite's AVG(status) return) and the ratio of the model's
true state over the time the probe was not in a gap (what neither can see exactly).

Usable as a module (``generate``, ``truth``, writers) or on its own:

    python3 bench/peers/gen.py --csv samples.csv --truth truth.json
"""
import argparse
import bisect
import json
import math
import random
import sys
import time
from array import array

DAY = 86400
DEFAULT_END = 1_735_689_600  # 2025-01-01T00:00:00Z
STALENESS = 90  # seconds: DESIGN.md's default, and the ledger service's spec
WINDOWS = {"30d": 30 * DAY, "365d": 365 * DAY}


def service_name(s):
    return f"svc-{s:02d}"


def probe_name(k):
    return f"p{k + 1}"


class History:
    """The samples of one service: per probe, check times (s) and statuses (1 up, 0 down)."""

    def __init__(self, service, probes, start, end, interval, times, statuses, true_state):
        self.service = service
        self.probes = probes
        self.start = start
        self.end = end
        self.interval = interval
        self.times = times  # list (per probe) of array('q'), ascending
        self.statuses = statuses  # list (per probe) of array('b')
        # per probe: sorted disjoint [(a, b, status or None for a gap)] covering [start, end)
        self.true_state = true_state

    @property
    def samples(self):
        return sum(len(t) for t in self.times)


def _union(intervals, lo, hi):
    """Disjoint sorted union of half-open intervals, clipped to [lo, hi)."""
    merged = []
    for a, b in sorted((max(a, lo), min(b, hi)) for a, b in intervals):
        if a >= b:
            continue
        if merged and a <= merged[-1][1]:
            if b > merged[-1][1]:
                merged[-1][1] = b
        else:
            merged.append([a, b])
    return merged


def _events(seed, s, start, end, probes, interval, gaps):
    """The outage and gap intervals of service s, per probe, drawn as the kit draws them."""
    rng = random.Random(seed * 1_000_003 + s)

    def arrivals(per_30d):
        # Start times of a Poisson process; all are drawn before any duration.
        if per_30d <= 0:
            return []
        rate = 1.0 / (30 * DAY / per_30d)
        out = []
        t = start + rng.expovariate(rate)
        while t < end:
            out.append(int(t))
            t += rng.expovariate(rate)
        return out

    def duration(median, sigma, shortest, longest):
        return int(min(longest, max(shortest, rng.lognormvariate(math.log(median), sigma))))

    flakiness = min(6.0, rng.lognormvariate(0.0, 0.7))
    down = [[] for _ in range(probes)]
    silent = [[] for _ in range(probes)]
    for t in arrivals(2.0 * flakiness):
        d = duration(15 * 60, 1.2, 60, 8 * 3600)
        for k in range(probes):
            down[k].append((t, t + d))
    if probes > 1:
        for t in arrivals(0.7 * flakiness):
            d = duration(10 * 60, 1.0, 60, 3 * 3600)
            seen_by = rng.randint(1, probes - 1)
            for k in rng.sample(range(probes), seen_by):
                down[k].append((t, t + d))
    if rng.random() < 0.3:
        first = start + rng.randint(0, 30 * DAY)
        first = first - first % DAY + 3600
        length = rng.choice([3600, 7200, 10800])
        for t in range(first, end, 30 * DAY):
            for k in range(probes):
                down[k].append((t, t + length))
    for k in range(probes):
        for t in arrivals(1.5):
            down[k].append((t, t + duration(5 * 60, 1.3, 30, 3 * 3600)))
    if gaps:
        for k in range(probes):
            for t in arrivals(0.5):
                silent[k].append((t, t + duration(20 * 60, 1.2, 60, 12 * 3600)))
    for k in range(probes):
        offset = start + (k * interval) // probes
        checks = (end - offset + interval - 1) // interval
        for t in arrivals(30 * DAY / interval / 25000.0):
            n = (t - offset) // interval
            if 0 <= n < checks:
                at = offset + n * interval
                down[k].append((at, at + 1))
    return down, silent


def _pieces(down, silent, start, end):
    """[(a, b, status or None)]: the probe's true state on consecutive pieces of [start, end)."""
    cuts = {start, end}
    for a, b in down + silent:
        cuts.add(a)
        cuts.add(b)
    cuts = sorted(cuts)
    pieces = []
    di = si = 0
    for a, b in zip(cuts, cuts[1:]):
        while di < len(down) and down[di][1] <= a:
            di += 1
        while si < len(silent) and silent[si][1] <= a:
            si += 1
        if si < len(silent) and silent[si][0] <= a:
            state = None
        elif di < len(down) and down[di][0] <= a:
            state = 0
        else:
            state = 1
        if pieces and pieces[-1][2] == state and pieces[-1][1] == a:
            pieces[-1] = (pieces[-1][0], b, state)
        else:
            pieces.append((a, b, state))
    return pieces


def generate(service=1, probes=3, days=365, interval=10, seed=42, end=DEFAULT_END, gaps=True):
    start = end - int(days * DAY)
    down, silent = _events(seed, service, start, end, probes, interval, gaps)
    times, statuses, true_state = [], [], []
    for k in range(probes):
        pieces = _pieces(_union(down[k], start, end), _union(silent[k], start, end), start, end)
        first = start + (k * interval) // probes
        ts, st = array("q"), array("b")
        for a, b, state in pieces:
            if state is None:
                continue
            n = max(0, -((first - a) // interval))  # first check at or after a
            ticks = range(first + n * interval, b, interval)
            ts.extend(ticks)
            st.extend(bytes([state]) * len(ticks))
        times.append(ts)
        statuses.append(st)
        true_state.append(pieces)
    return History(service_name(service), [probe_name(k) for k in range(probes)], start, end,
                   interval, times, statuses, true_state)


# ---------------------------------------------------------------------------- truth


def probe_timeline(times, statuses, staleness=STALENESS):
    """A probe's state by DESIGN.md: [(a, b, status)] where it is known, maximal runs."""
    out = []
    n = len(times)
    if n == 0:
        return out
    run_a, run_b, run_s = times[0], None, statuses[0]
    for i in range(n):
        t, s = times[i], statuses[i]
        held = t + staleness
        if i + 1 < n and times[i + 1] < held:
            held = times[i + 1]
        if s == run_s and t == run_b:
            run_b = held
        else:
            if run_b is not None:
                out.append((run_a, run_b, run_s))
            run_a, run_b, run_s = t, held, s
    out.append((run_a, run_b, run_s))
    return out


def measure(timeline, lo, hi):
    """Seconds UP, DOWN and UNKNOWN of a timeline [(a, b, 1|0)] within [lo, hi)."""
    up = down = 0
    for a, b, s in timeline:
        a, b = max(a, lo), min(b, hi)
        if a < b:
            if s == 1:
                up += b - a
            else:
                down += b - a
    return {"up_s": up, "down_s": down, "unknown_s": (hi - lo) - up - down}


def majority_timeline(timelines):
    """The service's state under MAJORITY from its probes' timelines (UNKNOWN omitted)."""
    cuts = sorted({x for tl in timelines for a, b, _ in tl for x in (a, b)})
    cursor = [0] * len(timelines)
    out = []
    for a, b in zip(cuts, cuts[1:]):
        up = down = 0
        for k, tl in enumerate(timelines):
            i = cursor[k]
            while i < len(tl) and tl[i][1] <= a:
                i += 1
            cursor[k] = i
            if i < len(tl) and tl[i][0] <= a:
                if tl[i][2] == 1:
                    up += 1
                else:
                    down += 1
        if up + down == 0:
            continue
        state = 0 if 2 * down > up + down else 1
        if out and out[-1][2] == state and out[-1][1] == a:
            out[-1] = (out[-1][0], b, state)
        else:
            out.append((a, b, state))
    return out


def ratio(m):
    known = m["up_s"] + m["down_s"]
    return m["up_s"] / known if known else None


def truth(h):
    """The exact answers for the windows [end - w, end)."""
    timelines = [probe_timeline(h.times[k], h.statuses[k]) for k in range(len(h.probes))]
    service = majority_timeline(timelines)
    out = {"service": h.service, "staleness_s": STALENESS, "quorum": "MAJORITY",
           "windows": {}}
    for name, w in WINDOWS.items():
        lo, hi = h.end - w, h.end
        if lo < h.start:
            continue
        entry = {"majority": measure(service, lo, hi), "probes": {}}
        entry["majority"]["availability"] = ratio(entry["majority"])
        for k, probe in enumerate(h.probes):
            m = measure(timelines[k], lo, hi)
            m["availability"] = ratio(m)
            first = bisect.bisect_left(h.times[k], lo)
            st = h.statuses[k]
            m["samples"] = len(st) - first
            m["up_samples"] = sum(st[first:])
            m["count_ratio"] = m["up_samples"] / m["samples"] if m["samples"] else None
            seen = [(a, b, s) for a, b, s in h.true_state[k] if s is not None]
            m["true_state_ratio"] = ratio(measure(seen, lo, hi))
            entry["probes"][probe] = m
        out["windows"][name] = entry
    return out


# ---------------------------------------------------------------------------- writers


def write_csv(h, path):
    """service,probe,ts,status (the kit's CSV), probe by probe, time ascending."""
    with open(path, "w", buffering=1 << 22) as f:
        f.write("service,probe,ts,status\n")
        for k, probe in enumerate(h.probes):
            prefix = f"{h.service},{probe},"
            ts, st = h.times[k], h.statuses[k]
            for i in range(0, len(ts), 65536):
                f.write("".join(f"{prefix}{t},{s}\n" for t, s in zip(ts[i:i + 65536],
                                                                       st[i:i + 65536])))


def write_openmetrics(h, directory, split_secs):
    """One OpenMetrics file per epoch-aligned window of split_secs (promtool's block size),
    each holding gauge probe_success{service,probe} in day-sized time chunks. Returns paths."""
    paths = []
    lo = h.start - h.start % split_secs
    cursors = [0] * len(h.probes)
    while lo < h.end:
        hi = lo + split_secs
        path = f"{directory}/probe.{lo:010d}.om"
        with open(path, "w", buffering=1 << 22) as f:
            f.write("# HELP probe_success Whether the probe check succeeded.\n")
            f.write("# TYPE probe_success gauge\n")
            for day in range(max(lo, h.start), min(hi, h.end), DAY):
                day_end = min(day + DAY, hi, h.end)
                for k, probe in enumerate(h.probes):
                    label = f'probe_success{{service="{h.service}",probe="{probe}"}} '
                    ts, st = h.times[k], h.statuses[k]
                    i = cursors[k]
                    j = bisect.bisect_left(ts, day_end, i)
                    f.write("".join(f"{label}{st[x]} {ts[x]}\n" for x in range(i, j)))
                    cursors[k] = j
            f.write("# EOF\n")
        paths.append(path)
        lo = hi
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--service", type=int, default=1, help="service index (svc-NN; kit's svc-01)")
    ap.add_argument("--probes", type=int, default=3)
    ap.add_argument("--days", type=float, default=365)
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--end", type=int, default=DEFAULT_END)
    ap.add_argument("--no-gaps", action="store_true")
    ap.add_argument("--csv")
    ap.add_argument("--truth")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    h = generate(a.service, a.probes, a.days, a.interval, a.seed, a.end, not a.no_gaps)
    if a.csv:
        write_csv(h, a.csv)
    if a.truth:
        with open(a.truth, "w") as f:
            json.dump(truth(h), f, indent=1)
    print(f"gen: {h.service} x {len(h.probes)} probes, {a.days:g} days, {h.samples} samples "
          f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
