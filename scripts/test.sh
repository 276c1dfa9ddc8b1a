#!/usr/bin/env bash
# Install, build, and run every test (GoogleTest through ctest) against ../shared/testdata.
# Then a second pass: an ASan + UBSan build (build-asan/) and its ctest run; C3_CI_SANITIZE=0 skips
# it (about half an hour more on 2 cores from scratch: docs/hardening.md has the numbers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DC3_BUILD_TESTS=ON -DC3_BUILD_BENCH=OFF >/dev/null
ninja -C build
(cd build && C3_NO_PROGRESS=1 ctest --output-on-failure -j2)
if [[ ${C3_CI_SANITIZE:-1} == 1 ]]; then
  # LibTorch is not built with ASan: its allocations at load time read as leaks, so leak checking
  # is off; every other ASan/UBSan report fails the test.
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DC3_BUILD_TESTS=ON -DC3_BUILD_BENCH=OFF \
    -DC3_SANITIZE=ON >/dev/null
  ninja -C build-asan
  (cd build-asan && C3_NO_PROGRESS=1 ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j2)
fi
