#!/usr/bin/env bash
# One call on a 4-GPU host (session 5):
#   GPUs 1-3: c3-small v5: v4's weights trained on (--init) with 3-GPU data parallel, passages
#             of 128-704 tokens, no curriculum, then export + eval (issue 7);
#   GPU 0:    the fused-kernel unit tests alone, a backtrace of the CPU-only test that crashed on
#             this image, and an nsys kernel summary of paper-size decoding (issue 8).
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
export CUDACXX="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
OUT="${OUT:-/tmp/out}"; MINUTES="${MINUTES:-5.8}"; mkdir -p "$OUT/g0"
nvidia-smi -L
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=ON > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
ninja -C build-gpu c3 >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -30; exit 1; }
echo "c3 built in ${SECONDS}s"
(CUDA_VISIBLE_DEVICES=1,2,3 NAME=small5 BATCH=128 LR=1e-3 NPROC=3 MINUTES=$MINUTES EXPORT=1 \
  INIT=models/c3-small LENGTHS=uniform:128-704 CURRICULUM_START=0 EASY_SHARE=0 WARMUP=100 \
  EVAL_S=50 EVAL_TRAIN_S=25 bash scripts/device/recipe.sh > "$OUT/small5.log" 2>&1
 tar -cf "$OUT/small5.tar" -C "$OUT" small5 && rm -rf "$OUT/small5") &
A=$!
ninja -C build-gpu model_tests >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -30; }
echo "model_tests built at ${SECONDS}s"
export CUDA_VISIBLE_DEVICES=0
echo "== fused-kernel tests alone"
timeout 60 build-gpu/tests/model_tests --gtest_filter='FusedKernels.*' > "$OUT/g0/kernel_tests.txt" 2>&1
echo "exit $?"; grep -E "^\[ +(OK|FAILED|PASSED|SKIPPED)|Failure|diff" "$OUT/g0/kernel_tests.txt" | head -30
echo "== the test that crashed, under gdb"
if command -v gdb > /dev/null; then
  timeout 90 gdb -q -batch -ex run -ex bt -ex "info sharedlibrary" --args build-gpu/tests/model_tests \
    --gtest_filter='FuseProjections.SaveAfterFuse*' > "$OUT/g0/gdb.txt" 2>&1
  grep -E "^#|SIG|OK|FAILED" "$OUT/g0/gdb.txt" | head -30
else
  echo "no gdb"; timeout 60 build-gpu/tests/model_tests --gtest_filter='FuseProjections.SaveAfterFuse*' 2>&1 | tail -5
fi
echo "== nsys kernel summary of paper-size decoding, batch 1"
NSYS=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
if [ -n "$NSYS" ]; then
  timeout 200 "$NSYS" profile -o /tmp/dec --force-overwrite true --cuda-graph-trace=node \
    build-gpu/c3 bench --random-init configs/qwen2.5-1.5b.json configs/qwen2.5-3b.json 32 \
    --device cuda --dtype bf16 --batch 1 --passage-tokens 1024 --new-tokens 64 --repeats 1 \
    --ngrams 0 > "$OUT/g0/nsys_bench.txt" 2>&1
  "$NSYS" stats --report cuda_gpu_kern_sum --format csv -o /tmp/kern /tmp/dec.nsys-rep > /dev/null 2>&1
  cp /tmp/kern*.csv "$OUT/g0/" 2>/dev/null; head -40 /tmp/kern*.csv | cut -c1-220
else
  echo "no nsys"
fi
tar -cf "$OUT/g0.tar" -C "$OUT" g0 && rm -rf "$OUT/g0"
wait $A; echo "== small5"; tail -28 "$OUT/small5.log"
echo "total ${SECONDS}s"
