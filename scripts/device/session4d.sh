#!/usr/bin/env bash
# Short check on a GPU host after the kernels landed: build c3 + every test binary with the CUDA
# kernels, then run the model and cascade suites on GPU 0 (golden data carried under
# shared/testdata) and the NCCL 2-process tests on GPUs 1,2; print each binary's exit status.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/nccl_env.sh
export CUDACXX="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
export C3_TESTDATA="$PWD/shared/testdata" C3_NO_PROGRESS=1
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
nvidia-smi -L
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=ON "${C3_NCCL_CMAKE_ARGS[@]}" > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
ninja -C build-gpu >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -30; exit 1; }
echo "built in ${SECONDS}s"
T=build-gpu/tests
(CUDA_VISIBLE_DEVICES=1,2 C3_DIST_DEVICE=cuda C3_DIST_REQUIRE=1 timeout 90 $T/train_tests \
  --gtest_filter='Distributed.*' > "$OUT/nccl.txt" 2>&1; echo "train_tests Distributed (NCCL) exit $?" >> "$OUT/nccl.txt") &
N=$!
for t in model_tests c3_tests; do
  CUDA_VISIBLE_DEVICES=0 timeout 150 $T/$t > "$OUT/$t.txt" 2>&1
  echo "$t exit $?"
  grep -E "^\[ +(FAILED|PASSED|SKIPPED) |rms_norm\]|Failure" "$OUT/$t.txt" | head -40
done
grep -E "^\[ +(OK|FAILED) \] FusedKernels" "$OUT/model_tests.txt"
wait $N; grep -E "^\[ +(OK|FAILED|PASSED|SKIPPED) |max \||exit" "$OUT/nccl.txt"
echo "total ${SECONDS}s"
