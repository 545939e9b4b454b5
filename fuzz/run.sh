#!/usr/bin/env bash
# Run every fuzz target with libFuzzer for SECONDS each (default 20; 0 skips), printing one
# summary line per target: executions, coverage (libFuzzer's `cov` edges and `ft` features),
# corpus size. Needs a nightly toolchain and cargo-fuzz (installed from crates.io if absent);
# without nightly it says so and exits 0 (the stable replay in fuzz/tests/ still ran).
# New inputs go to a scratch corpus: the committed seeds in fuzz/corpus/ stay as they are.
# A crash leaves its input in fuzz/artifacts/TARGET/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
if [ "$seconds" = 0 ]; then
  echo "fuzzing: skipped (0 s per target)"
  exit 0
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzzing: SKIPPED: no nightly Rust toolchain (cargo fuzz needs -Zsanitizer); the targets ran on stable over their corpora instead"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet || {
    echo "fuzzing: SKIPPED: cargo-fuzz could not be installed"
    exit 0
  }
fi
cargo +nightly fuzz build --fuzz-dir fuzz --release 2>&1 | tail -n 3
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
summary="$scratch/summary.txt"
status=0
for target in $(cargo +nightly fuzz list --fuzz-dir fuzz); do
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  if ! cargo +nightly fuzz run --fuzz-dir fuzz --release "$target" "$scratch/$target" "fuzz/corpus/$target" \
      -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzzing: $target FAILED; last lines:"; tail -n 30 "$log"
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo "?")
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo "?")
  corp=$(echo "$last" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*' || echo "?")
  printf '%-16s %10s execs  cov %6s  ft %6s  corpus %5s  (%s s)\n' "$target" "$execs" "$cov" "$ft" "$corp" "$seconds" | tee -a "$summary"
done
exit "$status"
