#!/bin/sh
# Every figure in BENCHMARKS.md in one run: the machine's ceilings, ingest, queries over
# 1-, 30- and 365-day histories, rebuild and audit (`uptime-ledger bench all`), then the
# side-by-side comparison with Prometheus and SQLite (bench/peers/run.py --per-probe).
#
#   sh bench/run-all.sh                 # from the repository root
#
# Needs `apt-get install -y prometheus` (promtool comes with it) and python3. Histories
# and the peers' ledger are built once through the real ingest path and cached under
# bench-data/ (delete it to rebuild); on the project's 2-core machine a first run took
# about 30 minutes (12 for `bench all`, 17 for the peers, most of it building the caches
# through ingest), later ones take about 10. Results: bench.json and
# bench-data/peers/results.json, and the printed tables.
set -eu
cd "$(dirname "$0")/.."
cargo build --release
./target/release/uptime-ledger bench all --dir bench-data --json bench.json
python3 bench/peers/run.py --per-probe
