#!/usr/bin/env bash
# Install, build, and run the main job: round-trip a 316-token passage (held out from training)
# through the shipped model at about 10x (32 latents), printing the ratio, the precision, the time
# and the regenerated text, with a word diff where it differs from the source.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DC3_BUILD_TESTS=OFF -DC3_BUILD_BENCH=OFF >/dev/null
ninja -C build c3
./build/c3 roundtrip --model models/c3-small "${1:-docs/sample-10x.txt}"
