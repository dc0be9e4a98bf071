#!/usr/bin/env python3
"""Side-by-side peer comparison: uptime-ledger vs Prometheus vs an SQLite heartbeat table.

One run, from the repository root, after ``cargo build --release``:

    python3 bench/peers/run.py            # 365 days, about 9.5M samples

On the project's 2-core machine a year with --per-probe took about 12 minutes to build the
ledger through the ingest path (cached for later runs) and about 5 minutes for the rest.

1. generates the history (bench/peers/gen.py: one service, 3 probes, 10-second checks,
   seeded; the peer kit's svc-01) and its exact answers by DESIGN.md's semantics;
2. uptime-ledger: ``uptime-ledger bench peers`` feeds every sample, signed, through the
   real ingest path (gRPC Submit, verification, group commit; simulated clock) into a
   ledger cached under bench-data/, then times GetAvailability over gRPC (p50 of 2,000);
3. Prometheus (Debian's ``prometheus`` + ``promtool``): backfills the samples as the gauge
   probe_success{service,probe} from OpenMetrics, serves them on a free loopback port and
   times PromQL over the HTTP API (median of --reps, --reps-heavy for 365-day subqueries);
4. SQLite: an Uptime-Kuma-style heartbeat table (one row per check, index on
   (service, ts)), timed SQL (median of --reps / --reps-heavy);
5. checks that uptime-ledger's answers equal the exact ones (up, down and unknown
   milliseconds, to the millisecond), prints how far each peer's answer is from them, and
   the speed ratios. Results also go to <work>/results.json.

The questions, for the last 30 and 365 days at the history's end:
  * per-probe availability (uptime-ledger: a service only that probe watches;
    Prometheus: avg_over_time; SQLite: AVG(status), and a time-weighted LEAD() query);
  * the service's availability by MAJORITY of probes (uptime-ledger: GetAvailability;
    Prometheus: a [w:10s] subquery of sum/count > bool 0.5; SQLite: per-10-s-slot majority).

Needs: python3 (stdlib only), ``apt-get install prometheus`` (promtool included), the
release binary. Scratch data: --work (default bench-data/peers); large files are deleted
unless --keep.
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gen  # noqa: E402  (bench/peers/gen.py)

DAY = 86400
BLOCK_HOURS = 486  # promtool --max-block-duration: 20.25 days, below Prometheus' 31d cap


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=365, help="history length (30 or more)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--service", type=int, default=1, help="which of the kit's services (svc-NN)")
    ap.add_argument("--work", default=os.path.join(ROOT, "bench-data", "peers"))
    ap.add_argument("--ledger-cache", default=os.path.join(ROOT, "bench-data"),
                    help="where `uptime-ledger bench peers` caches its ledger")
    ap.add_argument("--bin", default=None, help="uptime-ledger binary (default: the release build)")
    ap.add_argument("--per-probe", action="store_true",
                    help="also ask the ledger the per-probe questions, through one more service "
                         "per probe: doubles its ingest and disk (8.8 GB in all for a year instead of "
                         "about 4.4 GB)")
    ap.add_argument("--reps", type=int, default=7, help="repetitions of each peer query")
    ap.add_argument("--reps-heavy", type=int, default=3,
                    help="repetitions of 365-day subqueries and SQL scans")
    ap.add_argument("--prometheus", default="/usr/bin/prometheus")
    ap.add_argument("--promtool", default="/usr/bin/promtool")
    ap.add_argument("--keep", action="store_true", help="keep the CSV, OpenMetrics and SQLite files")
    return ap.parse_args()


def find_binary(given):
    candidates = [given] if given else [
        os.environ.get("UPTIME_LEDGER_BIN"),
        os.path.join(os.environ.get("CARGO_TARGET_DIR", ""), "release", "uptime-ledger")
        if os.environ.get("CARGO_TARGET_DIR") else None,
        os.path.join(ROOT, "target", "release", "uptime-ledger"),
    ]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    sys.exit("no uptime-ledger binary: run `cargo build --release` first or pass --bin")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Log:
    """Prints `key = value` as it goes and keeps everything for results.json."""

    def __init__(self):
        self.data = {}

    def __call__(self, key, value):
        self.data[key] = value
        print(f"  {key} = {value}", flush=True)


def timed(fn, reps):
    """Median, first and min wall time of fn() over reps calls, and its last result."""
    times, result = [], None
    for _ in range(reps):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "first_s": times[0], "min_s": min(times),
            "reps": reps}, result


# ---------------------------------------------------------------------------- uptime-ledger


def run_ledger(a, binary, csv_path, h, log):
    out = os.path.join(a.work, "ledger.json")
    cmd = [binary, "bench", "peers", "--samples", csv_path, "--dir", a.ledger_cache,
           "--end", str(h.end), "--days", str(a.days), "--json", out]
    if a.per_probe:
        cmd.append("--per-probe")
    print("-- uptime-ledger: " + " ".join(cmd), flush=True)
    t = time.perf_counter()
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")  # the ledger's own per-event log lines are noise here
    subprocess.run(cmd, check=True, env=env)
    log("ledger_step_s", round(time.perf_counter() - t, 1))
    with open(out) as f:
        return json.load(f)


# ---------------------------------------------------------------------------- Prometheus


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_prometheus(a, h, log):
    print(f"-- Prometheus: {subprocess.run([a.prometheus, '--version'], capture_output=True, text=True).stdout.splitlines()[0]}", flush=True)
    work = os.path.join(a.work, "prometheus")
    shutil.rmtree(work, ignore_errors=True)
    om_dir, parts, tsdb = (os.path.join(work, d) for d in ("om", "parts", "tsdb"))
    for d in (om_dir, parts, tsdb):
        os.makedirs(d)
    t = time.perf_counter()
    files = gen.write_openmetrics(h, om_dir, BLOCK_HOURS * 3600)
    log("prom_write_openmetrics_s", round(time.perf_counter() - t, 1))
    log("prom_openmetrics_bytes", sum(os.path.getsize(f) for f in files))
    # One promtool per file (each file is one block window, parsed twice rather than once
    # per 2-hour block), two at a time; then all blocks go into one TSDB directory.
    t = time.perf_counter()
    running = []
    for f in files:
        out = os.path.join(parts, os.path.basename(f)[:-3])
        running.append(subprocess.Popen(
            [a.promtool, "tsdb", "create-blocks-from", "openmetrics", "-q",
             f"--max-block-duration={BLOCK_HOURS}h", f, out], stdout=subprocess.DEVNULL))
        while len([p for p in running if p.poll() is None]) >= 2:
            time.sleep(0.05)
    for p in running:
        if p.wait() != 0:
            raise RuntimeError("promtool failed")
    for part in os.listdir(parts):
        for block in os.listdir(os.path.join(parts, part)):
            os.rename(os.path.join(parts, part, block), os.path.join(tsdb, block))
    backfill = time.perf_counter() - t
    log("prom_backfill_s", round(backfill, 1))
    log("prom_backfill_samples_per_s", round(h.samples / backfill))
    log("prom_tsdb_bytes", dir_bytes(tsdb))
    if not a.keep:
        shutil.rmtree(om_dir)
        shutil.rmtree(parts)

    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global: {scrape_interval: 10s}\nscrape_configs: []\n")
    port = free_port()
    with open(os.path.join(work, "prometheus.log"), "w") as plog:
        proc = subprocess.Popen(
            [a.prometheus, f"--config.file={config}", f"--storage.tsdb.path={tsdb}",
             "--storage.tsdb.retention.time=3650d", f"--web.listen-address=127.0.0.1:{port}",
             "--query.timeout=10m", "--query.max-samples=500000000"],
            stdout=plog, stderr=subprocess.STDOUT)
    try:
        t = time.perf_counter()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited; see {work}/prometheus.log")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/-/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        log("prom_ready_s", round(time.perf_counter() - t, 1))
        time.sleep(3)  # let start-up settle

        def query(promql):
            body = urllib.parse.urlencode({"query": promql, "time": str(h.end)})
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
            c.request("POST", "/api/v1/query", body,
                      {"Content-Type": "application/x-www-form-urlencoded"})
            answer = json.loads(c.getresponse().read())
            c.close()
            if answer.get("status") != "success":
                raise RuntimeError(f"PromQL {promql!r} failed: {answer}")
            return answer["data"]["result"]

        sel = f'probe_success{{service="{h.service}"}}'
        results = {}
        log("loadavg_before_prom_queries", loadavg())
        for w in ("30d", "365d"):
            if not fits(a, w):
                continue
            heavy = a.reps_heavy if w == "365d" else a.reps
            q = f"avg_over_time({sel}[{w}])"
            timing, r = timed(lambda: query(q), a.reps)
            results[f"probe_{w}"] = {"promql": q, **timing,
                                     "answers": {s["metric"]["probe"]: float(s["value"][1])
                                                 for s in r}}
            log(f"prom_probe_{w}_median_s", round(timing["median_s"], 4))
            q = (f"avg_over_time(((sum by (service) ({sel}) / count by (service) ({sel}))"
                 f" > bool 0.5)[{w}:{h.interval}s])")
            timing, r = timed(lambda: query(q), heavy)
            results[f"majority_{w}"] = {"promql": q, **timing, "answer": float(r[0]["value"][1])}
            log(f"prom_majority_{w}_median_s", round(timing["median_s"], 4))
        log("loadavg_after_prom_queries", loadavg())
        with open(f"/proc/{proc.pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        log("prom_rss_mib", round(rss / 1024))
    finally:
        proc.terminate()
        proc.wait()
    return results


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def fits(a, window):
    return int(window[:-1]) <= a.days


# ---------------------------------------------------------------------------- SQLite


SQL_COUNT = """
    SELECT probe_id, AVG(status), COUNT(*) FROM heartbeat
    WHERE service_id = :sid AND ts >= :lo AND ts < :hi GROUP BY probe_id ORDER BY probe_id"""
# Each beat holds until the next one, at most `cap` seconds (the ledger's staleness).
SQL_LEAD = """
    WITH hb AS (
      SELECT probe_id, ts, status, LEAD(ts) OVER (PARTITION BY probe_id ORDER BY ts) AS nts
      FROM heartbeat WHERE service_id = :sid AND ts >= :lo AND ts < :hi),
    w AS (SELECT probe_id, status, MIN(COALESCE(nts, :hi), :hi, ts + :cap) - ts AS dur FROM hb)
    SELECT probe_id, SUM(dur * status) * 1.0 / SUM(dur) FROM w GROUP BY probe_id ORDER BY probe_id"""
# Majority of the probes that reported in each check interval.
SQL_SLOTS = """
    SELECT AVG(majority) FROM (
      SELECT (ts - :lo) / :step AS slot, (2 * SUM(status) > COUNT(*)) AS majority
      FROM heartbeat WHERE service_id = :sid AND ts >= :lo AND ts < :hi GROUP BY slot)"""


def run_sqlite(a, h, log):
    print(f"-- SQLite {sqlite3.sqlite_version} (Python {platform.python_version()})", flush=True)
    work = os.path.join(a.work, "sqlite")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    path = os.path.join(work, "heartbeat.db")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA cache_size=-262144")
    con.executescript("""
        CREATE TABLE heartbeat(id INTEGER PRIMARY KEY, service_id INTEGER NOT NULL,
                               probe_id INTEGER NOT NULL, ts INTEGER NOT NULL,
                               status INTEGER NOT NULL);
        CREATE INDEX hb_service_ts ON heartbeat(service_id, ts);""")
    sid = 1
    insert = "INSERT INTO heartbeat(service_id, probe_id, ts, status) VALUES (?,?,?,?)"
    # Arrival order, as a live table fills: day by day, each probe's checks of the day.
    t = time.perf_counter()
    cursors = [0] * len(h.probes)
    batch = []
    for day in range(h.start, h.end, DAY):
        for k in range(len(h.probes)):
            ts, st = h.times[k], h.statuses[k]
            i = cursors[k]
            j = gen.bisect.bisect_left(ts, day + DAY, i)
            batch.extend(zip([sid] * (j - i), [k + 1] * (j - i), ts[i:j], st[i:j]))
            cursors[k] = j
        if len(batch) >= 50_000 or day + DAY >= h.end:
            con.execute("BEGIN")
            con.executemany(insert, batch)
            con.execute("COMMIT")
            batch = []
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    load = time.perf_counter() - t
    log("sqlite_load_s", round(load, 1))
    log("sqlite_rows_per_s", round(h.samples / load))
    log("sqlite_db_bytes", os.path.getsize(path))
    results = {}
    log("loadavg_before_sql_queries", loadavg())
    for w in ("30d", "365d"):
        if not fits(a, w):
            continue
        reps = a.reps_heavy if w == "365d" else a.reps
        p = {"sid": sid, "lo": h.end - int(w[:-1]) * DAY, "hi": h.end, "cap": gen.STALENESS,
             "step": h.interval}
        for name, sql in (("count", SQL_COUNT), ("lead", SQL_LEAD)):
            timing, rows = timed(lambda: con.execute(sql, p).fetchall(), reps)
            results[f"{name}_{w}"] = {**timing, "answers": {h.probes[r[0] - 1]: r[1] for r in rows}}
            log(f"sqlite_{name}_{w}_median_s", round(timing["median_s"], 3))
        timing, rows = timed(lambda: con.execute(SQL_SLOTS, p).fetchall(), reps)
        results[f"majority_{w}"] = {**timing, "answer": rows[0][0]}
        log(f"sqlite_majority_{w}_median_s", round(timing["median_s"], 3))
    log("loadavg_after_sql_queries", loadavg())
    con.close()
    if not a.keep:
        shutil.rmtree(work)
    return results


# ---------------------------------------------------------------------------- report


def fmt_s(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def report(a, h, truth, ledger, prom, sql, log):
    answers = {(x["probe"], x["window_days"]): x for x in ledger["answers"]}
    exact = True
    asked = 0
    rows = []
    for w in ("30d", "365d"):
        if w not in truth["windows"]:
            continue
        days = int(w[:-1])
        tw = truth["windows"][w]
        questions = [(None, tw["majority"])] + [(p, tw["probes"][p]) for p in h.probes]
        for probe, t in questions:
            ul = answers.get((probe, days))
            same = ul is not None and (
                ul["up_ms"] == 1000 * t["up_s"] and ul["down_ms"] == 1000 * t["down_s"]
                and ul["unknown_ms"] == 1000 * t["unknown_s"]
                and ul["availability"] == t["availability"])
            if ul is not None:
                exact &= same
                asked += 1
            if probe is None:
                peer = {"Prometheus": prom[f"majority_{w}"]["answer"],
                        "SQLite": sql[f"majority_{w}"]["answer"]}
                label = f"{w} majority of probes"
            else:
                peer = {"Prometheus": prom[f"probe_{w}"]["answers"][probe],
                        "SQLite": sql[f"count_{w}"]["answers"][probe],
                        "SQLite LEAD": sql[f"lead_{w}"]["answers"][probe]}
                label = f"{w} probe {probe}"
            rows.append((label, t["availability"], ul and ul["availability"], same, peer,
                         t.get("count_ratio"), t.get("true_state_ratio")))

    print()
    print(f"== answers (availability; exact = DESIGN.md semantics, staleness {gen.STALENESS} s, "
          "MAJORITY; peers shown as their difference from exact)")
    print(f"{'question':<24} {'exact':>14} {'uptime-ledger':>17} {'Prometheus':>11} "
          f"{'SQLite':>11} {'SQLite LEAD':>11}")
    for label, t, ul, same, peer, _, _ in rows:
        cells = [f"{peer[k] - t:+.2e}" if k in peer else "-"
                 for k in ("Prometheus", "SQLite", "SQLite LEAD")]
        mine = "not asked (--per-probe)" if ul is None else f"{ul:.10f} {'=' if same else '≠!'}"
        print(f"{label:<24} {t:>14.10f} {mine:>17} {cells[0]:>11} {cells[1]:>11} {cells[2]:>11}")
    print(f"uptime-ledger equals the exact answer (up, down and unknown ms, and availability) "
          f"on all {asked} questions asked: {'YES' if exact else 'NO'}")
    worst = {}
    for label, t, _, _, peer, count, state in rows:
        for k, v in peer.items():
            worst[k] = max(worst.get(k, 0.0), abs(v - t))
        if count is not None:
            worst["count ratio (what Prometheus/SQLite per-probe return)"] = max(
                worst.get("count ratio (what Prometheus/SQLite per-probe return)", 0.0),
                abs(count - t))
            worst["model's true state (gaps excluded)"] = max(
                worst.get("model's true state (gaps excluded)", 0.0), abs(state - t))
    print("largest |answer - exact|: " + "; ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    checks = []
    for w in ("30d", "365d"):
        if w in truth["windows"]:
            d = max(abs(prom[f"probe_{w}"]["answers"][p] - truth["windows"][w]["probes"][p]["count_ratio"])
                    for p in h.probes)
            s = max(abs(sql[f"count_{w}"]["answers"][p] - truth["windows"][w]["probes"][p]["count_ratio"])
                    for p in h.probes)
            checks.append(f"{w}: Prometheus {d:.1e}, SQLite {s:.1e}")
    print("peers' per-probe answers vs the exact sample-count ratio (sanity): " + "; ".join(checks))

    print()
    print("== speed (uptime-ledger: GetAvailability over gRPC, p50 of "
          f"{ledger['answers'][0]['latency']['samples']}; peers: median wall time of the "
          "query, HTTP or SQL)")
    print(f"{'question':<24} {'uptime-ledger':>14} {'Prometheus':>22} {'SQLite':>22} "
          f"{'SQLite LEAD':>22}")
    speed = {}
    for w in ("30d", "365d"):
        if w not in truth["windows"]:
            continue
        days = int(w[:-1])
        for kind in ("majority", "probe"):
            if kind == "majority":
                ul = answers[(None, days)]["latency"]["p50_us"] / 1e6
                peers = {"Prometheus": prom[f"majority_{w}"]["median_s"],
                         "SQLite": sql[f"majority_{w}"]["median_s"]}
                label = f"{w} majority of probes"
            else:
                per = [answers[(p, days)]["latency"]["p50_us"] for p in h.probes
                       if (p, days) in answers]
                ul = statistics.median(per) / 1e6 if per else None
                peers = {"Prometheus": prom[f"probe_{w}"]["median_s"],
                         "SQLite": sql[f"count_{w}"]["median_s"],
                         "SQLite LEAD": sql[f"lead_{w}"]["median_s"]}
                label = f"{w} per probe"
            cells = []
            for k in ("Prometheus", "SQLite", "SQLite LEAD"):
                if k not in peers:
                    cells.append("-")
                elif ul is None:
                    cells.append(fmt_s(peers[k]))
                else:
                    cells.append(f"{fmt_s(peers[k])} ({peers[k] / ul:,.0f}x)")
                    speed[f"{w}_{kind}_{k}_ratio"] = peers[k] / ul
            mine = "not asked" if ul is None else fmt_s(ul)
            print(f"{label:<24} {mine:>14} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}")
    if "365d_majority_Prometheus_ratio" in speed:
        r = speed["365d_majority_Prometheus_ratio"]
        print(f"headline: uptime-ledger's 365-day availability is {r:,.0f}x faster than "
              f"Prometheus' majority-of-probes 365-day query (target >= 1,000x: "
              f"{'met' if r >= 1000 else 'MISSED'})")
    log("exact", exact)
    log("speed_ratios", speed)
    return exact


def main():
    a = parse_args()
    if a.days < 30:
        sys.exit("--days must be at least 30 (the shortest question is over 30 days)")
    os.chdir(ROOT)
    binary = find_binary(a.bin)
    os.makedirs(a.work, exist_ok=True)
    log = Log()
    started = time.time()
    print(f"== peer comparison, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
          f"{os.cpu_count()} cpu, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB, "
          f"{platform.platform()}", flush=True)
    log("loadavg_start", loadavg())
    t = time.perf_counter()
    h = gen.generate(service=a.service, days=a.days, seed=a.seed)
    truth = gen.truth(h)
    log("generate_s", round(time.perf_counter() - t, 1))
    log("samples", h.samples)
    print(f"   {h.service}, probes {', '.join(h.probes)}, {a.days} days ending "
          f"{datetime.datetime.fromtimestamp(h.end, datetime.timezone.utc):%Y-%m-%d}, "
          f"{h.interval} s checks, seed {a.seed}", flush=True)
    with open(os.path.join(a.work, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    csv_path = os.path.join(a.work, "samples.csv")
    t = time.perf_counter()
    gen.write_csv(h, csv_path)
    log("write_csv_s", round(time.perf_counter() - t, 1))

    ledger = run_ledger(a, binary, csv_path, h, log)
    log("loadavg_after_ledger", loadavg())
    if not a.keep:
        os.remove(csv_path)
    prom = run_prometheus(a, h, log)
    sql = run_sqlite(a, h, log)
    exact = report(a, h, truth, ledger, prom, sql, log)
    log("wall_s", round(time.time() - started))
    with open(os.path.join(a.work, "results.json"), "w") as f:
        json.dump({"log": log.data, "truth": truth, "uptime_ledger": ledger,
                   "prometheus": prom, "sqlite": sql}, f, indent=1)
    print(f"results: {os.path.join(a.work, 'results.json')}")
    sys.exit(0 if exact else 1)


if __name__ == "__main__":
    main()
