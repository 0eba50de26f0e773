#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer, UBSan) in their
# own build directory and runs each one, starting from the seed corpus in
# fuzz/corpus/<target>/. Fails on any crash, leak, timeout or sanitizer
# report; the input that caused it is kept in <build>/artifacts/<target>-*
# (reproduce: <build>/bin/fuzz_<target> FILE).
#   fuzz/run.sh [SECONDS]          each target for SECONDS (default 60): open-ended, by hand
#   fuzz/run.sh --ci               what CI runs: a fixed seed and a fixed number of
#                                  runs per target, so that one commit always gets
#                                  one verdict (about two minutes on a 2-core machine)
#   fuzz/run.sh --runs N [--seed S]  N runs of every target from seed S (default 1)
#   BUILD_DIR=...                  build directory (default build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 [SECONDS] | --ci | --runs N [--seed S]" >&2
    exit 2
}

targets=(hook_xml config record)
# --ci: runs per target, each about 40 s here; the targets differ in speed.
declare -A ci_runs=([hook_xml]=80000 [config]=150000 [record]=400000)
seconds=60
runs=
seed=1
max_wait=900  # seconds per target with --ci or --runs
while [ $# -gt 0 ]; do
    case $1 in
        --ci) runs=ci; shift ;;
        --runs) [ $# -ge 2 ] || usage; runs=$2; shift 2 ;;
        --seed) [ $# -ge 2 ] || usage; seed=$2; shift 2 ;;
        [0-9]*) seconds=$1; shift ;;
        *) usage ;;
    esac
done
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage
# libFuzzer takes seed 0 to mean "pick one".
[[ $seed =~ ^[1-9][0-9]*$ ]] || { echo "$0: --seed wants a positive integer, not '$seed'" >&2; exit 2; }
[ -z "$runs" ] || [ "$runs" = ci ] || [[ $runs =~ ^[1-9][0-9]*$ ]] ||
    { echo "$0: --runs wants a positive integer, not '$runs'" >&2; exit 2; }
build_dir=${BUILD_DIR:-build-fuzz}

cmake -S . -B "$build_dir" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSRIOVPT_BUILD_FUZZ=ON -DSRIOVPT_BUILD_TESTS=OFF -DSRIOVPT_SANITIZE=OFF >/dev/null
cmake --build "$build_dir" -j 2 --target "${targets[@]/#/fuzz_}" >/dev/null

# A fixed number of runs from a fixed seed repeats itself only when nothing
# else varies. libFuzzer steers its mutations by the values the code
# compares, and hook_xml's store names its temporary files after the pid:
# so each target runs as the same pid (a PID namespace of its own, with its
# /proc, which LeakSanitizer reads) at the same addresses (setarch -R: no
# address randomization), and never reloads the corpus on a timer.
launcher=()
if [ -n "$runs" ]; then
    isolate=(unshare --pid --fork --mount-proc setarch "$(uname -m)" -R)
    if "${isolate[@]}" true 2>/dev/null; then
        launcher=("${isolate[@]}")
    elif unshare --user --map-root-user "${isolate[@]}" true 2>/dev/null; then
        launcher=(unshare --user --map-root-user "${isolate[@]}")
    else
        echo "# cannot run the targets in a PID namespace without address randomization here:" \
             "two runs may explore differently"
    fi
fi

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
  if [ -n "$runs" ]; then
    n=$runs
    [ "$runs" != ci ] || n=${ci_runs[$target]}
    # The time limit only bounds the wait: stopping on it is a failure below.
    budget=(-runs="$n" -seed="$seed" -reload=0 -max_total_time="$max_wait")
    echo "== fuzz_$target: $n runs from seed $seed"
  else
    budget=(-max_total_time="$seconds")
    echo "== fuzz_$target for ${seconds}s"
  fi
  if "${launcher[@]}" "$build_dir/bin/fuzz_$target" "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
      -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "$work/$target" "fuzz/corpus/$target" \
      >"$work/$target.log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)' "$work/$target.log" || true
    executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")
    if [ -n "$runs" ] && [ "${executed:-0}" -lt "$n" ]; then
      echo "fuzz_$target: stopped at $executed of $n runs after $max_wait s, so no verdict (a slower machine?)"
      failed+=("$target")
    fi
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
