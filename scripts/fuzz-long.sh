#!/usr/bin/env bash
# Run the proptest fuzz targets for much longer than `cargo test` does (default 100000 cases each).
# Usage: scripts/fuzz-long.sh [cases]   (release build; set CARGO_TARGET_DIR to keep builds apart)
# A failure prints the minimal failing input: keep it as a fixed regression test beside the target.
set -euo pipefail
cd "$(dirname "$0")/.."
export PROPTEST_CASES="${1:-${PROPTEST_CASES:-100000}}"
echo "fuzz: PROPTEST_CASES=$PROPTEST_CASES"
status=0
run() {
  local crate=$1 target=$2
  echo "== $crate/$target"
  if ! cargo test --release -p "$crate" --test "$target" -- --test-threads=2; then
    status=1
  fi
}
run iron_runtime fuzz_sse
run iron_runtime fuzz_inspect
run iron_runtime fuzz_keys
run iron_safety fuzz_pii
run iron_cost fuzz_usage
exit $status
