#!/usr/bin/env bash
# Runs every fuzz target (or those in $TARGETS) for SECONDS each (default 60), starting
# from the committed seeds plus whatever earlier runs left in fuzz/corpus/<target>/.
# A crash stops the run with the input in fuzz/artifacts/<target>/; reproduce it with
#   fuzz/run.sh --repro <target> <file>
# Needs cargo-fuzz (installed when missing). The machine has only a stable toolchain:
# RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo fuzz passes, and there is no
# sanitizer (--sanitizer none; the code under test is safe Rust, so ASan would only
# slow it down) — libFuzzer's coverage guidance, its crash, timeout and out-of-memory
# detection, and debug assertions are all on.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
FUZZ_FLAGS=(--sanitizer none --release --debug-assertions)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

if [ "${1:-}" = "--repro" ]; then
  cargo fuzz run "${FUZZ_FLAGS[@]}" "$2" "$3"
  exit
fi

seconds="${1:-60}"
targets="${TARGETS:-ingest checkpoint merkle_verify probe_config}"
cargo fuzz build "${FUZZ_FLAGS[@]}"
for target in $targets; do
  mkdir -p "corpus/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  echo "== fuzz $target for ${seconds}s"
  log="corpus/$target.log"
  if ! cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $target FAILED; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
done
echo "fuzzing: every target ran ${seconds}s without a crash"
