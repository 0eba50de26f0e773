#!/usr/bin/env bash
# Builds everything with AddressSanitizer and UndefinedBehaviorSanitizer
# (-DSRIOVPT_SANITIZE=ON) in its own build directory and runs the whole test
# suite under them. Any sanitizer report fails the run: in the test binaries
# through ctest, in the hook executables (which the integration tests run
# with a clean environment, so ASan's defaults apply: leaks detected,
# -fno-sanitize-recover) through their exit status and stderr.
#   BUILD_DIR=...   build directory (default build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build-asan}
export CMAKE_ARGS="${CMAKE_ARGS:-} -DSRIOVPT_SANITIZE=ON"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
scripts/bootstrap.sh
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" "$@"
