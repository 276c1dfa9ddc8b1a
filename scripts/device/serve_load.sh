#!/usr/bin/env bash
# On the GPU machine, one call (issue 19's GPU goal: 16 concurrent clients >= 8x one client on an
# H200, paper-size random init and c3-small; no request lost or failed):
#   HERE:  bash scripts/device/bundle_deps.sh            (cpp-httplib and its needs into .deps)
#   THERE: run kind nvidia-h200, carry [".deps"], timeout 600, command:
#          bash scripts/device/serve_load.sh
# Builds c3 with the CUDA kernels, checks that continuous batching gives generate()'s ids on CUDA
# (DecodeBatch tests, fp32, CUDA graphs on), then runs bench/serve_load.sh for c3-small and for the
# paper-size cascade (Qwen2.5-1.5B encoder, 3B decoder, L = 32, random bf16 weights). Logs in $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/build.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
nvidia-smi -L; nproc
c3_build_gpu c3 c3_tests || exit 1
echo "== DecodeBatch on CUDA (fp32: ids must equal generate()'s)"
C3_TEST_DEVICE=cuda C3_NO_PROGRESS=1 ./build-gpu/tests/c3_tests --gtest_filter='DecodeBatch.*' \
  2>&1 | tee "$OUT/decode_batch_cuda.log" | grep -E "OK|FAILED|PASSED|Failure" | head -20
echo "== c3-small, bf16 on CUDA"
DEVICE=cuda REPEATS=3 bash bench/serve_load.sh build-gpu/c3 models/c3-small 2>&1 | tee "$OUT/serve_c3_small.log"
echo "== paper size (random init), bf16 on CUDA"
DEVICE=cuda REPEATS=2 SINGLE_REQUESTS=8 REQUESTS=2 \
  SERVE_ARGS="--random-init configs/qwen2.5-1.5b.json configs/qwen2.5-3b.json 32" \
  bash bench/serve_load.sh build-gpu/c3 models/c3-small 2>&1 | tee "$OUT/serve_paper_size.log"
