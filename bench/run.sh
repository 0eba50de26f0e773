#!/usr/bin/env bash
# The benchmarks (BENCHMARKS.md): builds what they need in Release in its own
# build directory, then prints the whole-process table and the in-process
# figures. Exit status 1 when a target is missed.
#   bench/run.sh [--quick]      --quick: fewer runs, for a smoke test
#   BUILD_DIR=...               build directory (default build-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build-bench}
quick=()
micro=(--benchmark_min_time=0.2)
if [ "${1:-}" = "--quick" ]; then
  quick=(--quick)
  micro=(--benchmark_min_time=0.01)
fi

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DSRIOVPT_BUILD_BENCH=ON -DSRIOVPT_BUILD_TESTS=OFF \
  -DSRIOVPT_SANITIZE=OFF >/dev/null
cmake --build "$build_dir" -j 2 --target bench_processes bench_micro >/dev/null

# The fake hosts (sysfs tree, state_dir) and the XML files go to a tmpfs, as
# on a real host: sysfs is in memory and state_dir is under /run (tmpfs), so
# a disk's fdatasync is not what gets measured.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

echo "# sriov-passthrough benchmarks"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (modified)'), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "temporary files in ${TMPDIR:-/tmp} ($(df -T "${TMPDIR:-/tmp}" | awk 'NR==2 {print $2}'))"
echo "$(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "## Whole process: before_vm_start against a trivial C program (medians, interleaved)"
echo
status=0
"$build_dir/bin/bench_processes" "${quick[@]}" || status=$?
echo
echo "## In process (Google Benchmark)"
echo
"$build_dir/bin/bench_micro" "${micro[@]}" 2>&1 | grep -v '^\*\*\*WARNING\|^$' || status=1
exit "$status"
