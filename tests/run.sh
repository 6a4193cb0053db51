#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 clone (as root: the lab tests need namespaces):
#   1. install dependencies, 2. build with warnings as errors, 3. run every test (unit, fuzz-corpus
#   replay, lab integration), 4. build the unit tests with ASan+UBSan and run them again.
# TANDEM_SKIP_ASAN=1 skips step 4 (for quick local runs).
# No silent green (docs/testing.md): ctest fails when a selection matches no test, every run prints
# "skipped: N", and as root any skip other than an opt-in fails the run (tests/check_skips.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
jobs=$(nproc)

echo "== build (warnings as errors)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_WERROR=ON
cmake --build build -j"$jobs"

echo "== tests: unit + integration"
(cd build && ctest --output-on-failure --no-tests=error --timeout 600 -j1 --output-junit "$PWD/ctest-junit.xml")
bash tests/check_skips.sh build/ctest-junit.xml

if [[ "${TANDEM_SKIP_ASAN:-0}" != 1 ]]; then
  echo "== ASan/UBSan build: unit tests"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTANDEM_SANITIZE=ON -DTANDEM_BENCH=OFF -DTANDEM_WERROR=ON
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure --no-tests=error --timeout 600 -L unit -j"$jobs" --output-junit "$PWD/ctest-junit.xml")
  bash tests/check_skips.sh build-asan/ctest-junit.xml
fi
