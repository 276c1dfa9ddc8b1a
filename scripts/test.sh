#!/usr/bin/env bash
# Install, build, and run every test (GoogleTest through ctest) against ../shared/testdata.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DC3_BUILD_BENCH=OFF >/dev/null
ninja -C build
cd build && C3_NO_PROGRESS=1 ctest --output-on-failure -j2
