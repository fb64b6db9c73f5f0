#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) for SECONDS, one after another,
# starting from the seeds in fuzz/seeds/TARGET and keeping what it learns in
# fuzz/corpus/TARGET. Crashes land in fuzz/artifacts/TARGET; each one found
# becomes a regression test. Prints one line per target with its executions.
# Usage: scripts/fuzz.sh SECONDS [TARGET …]   (needs cargo-fuzz and nightly)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:?usage: scripts/fuzz.sh SECONDS [TARGET …]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t"
  status=0
  cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
    >"logs/$t.log" 2>&1 || status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo "?")
  echo "$t: $execs executions in ${seconds} s, exit $status"
done
