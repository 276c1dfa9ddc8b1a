#!/usr/bin/env bash
# One H100 (session 5): the util, io, model, c3 and eval test binaries on the GPU image, with the
# golden data carried under shared/testdata and the CUDA golden tests on (C3_TEST_DEVICE=cuda):
# checks util/remove_tree against the remove_all crash, and the kernels on the golden models.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
export CUDACXX="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
export C3_TESTDATA="$PWD/shared/testdata" C3_TEST_DEVICE=cuda C3_NO_PROGRESS=1
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
nvidia-smi -L
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=ON > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
ninja -C build-gpu util_tests io_tests model_tests c3_tests eval_tests >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -40; exit 1; }
echo "built in ${SECONDS}s"
for t in util_tests io_tests model_tests c3_tests eval_tests; do
  timeout 150 build-gpu/tests/$t > "$OUT/$t.txt" 2>&1
  echo "$t exit $? at ${SECONDS}s"
  grep -E "^\[ +(FAILED|PASSED|SKIPPED) |\*\*\*|cuda bf16" "$OUT/$t.txt" | head -20
done
echo "total ${SECONDS}s"
