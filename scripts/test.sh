#!/usr/bin/env bash
# Builds everything and runs every test: unit and compat tests on the Release build, then the
# unit tests (and the etcd store's tests against a real etcd) again under AddressSanitizer and
# UndefinedBehaviorSanitizer, then each fuzz target for 20 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
jobs=$(nproc)

# The benchmark tools too: the compat suite runs against their sluice-mockbroker.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_TESTS=ON \
  -DSLUICE_BUILD_BENCH=ON >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON \
  -DSLUICE_BUILD_TESTS=ON -DSLUICE_BUILD_COMPAT_TESTS=OFF >/dev/null
cmake --build build-sanitize -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-sanitize --output-on-failure -L 'unit|etcd' -j "$jobs"

# A short run of every fuzz target (fuzz/README.md): about a minute of fuzzing plus the build.
scripts/fuzz.sh 20
