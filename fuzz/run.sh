#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer, UBSan) in their
# own build directory and runs each for a bounded time, starting from the
# seed corpus in fuzz/corpus/<target>/. Fails on any crash, leak, timeout or
# sanitizer report; the input that caused it is kept in
# <build>/artifacts/<target>-* (reproduce: <build>/bin/fuzz_<target> FILE).
#   fuzz/run.sh [SECONDS]     seconds per target (default 60)
#   BUILD_DIR=...             build directory (default build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build_dir=${BUILD_DIR:-build-fuzz}
targets=(hook_xml config record)

cmake -S . -B "$build_dir" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSRIOVPT_BUILD_FUZZ=ON -DSRIOVPT_BUILD_TESTS=OFF -DSRIOVPT_SANITIZE=OFF >/dev/null
cmake --build "$build_dir" -j 2 --target "${targets[@]/#/fuzz_}" >/dev/null

artifacts="$build_dir/artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
for target in "${targets[@]}"; do
  # New inputs go to a scratch directory; the seed corpus is only read.
  mkdir -p "$work/$target"
  echo "== fuzz_$target for ${seconds}s"
  if "$build_dir/bin/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
      -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "$work/$target" "fuzz/corpus/$target" \
      >"$work/$target.log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)' "$work/$target.log" || true
  else
    tail -n 60 "$work/$target.log"
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in $artifacts)"
  exit 1
fi
echo "fuzzing: no findings"
