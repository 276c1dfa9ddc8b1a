#!/usr/bin/env bash
# One call on a 4-GPU host (session 5), after one build with the CUDA kernels:
#   GPUs 1-3: c3-small v6: v5's weights (in models/c3-small for this call) trained on with
#             passages of 16-704 tokens, then export + eval (issue 7);
#   GPU 0:    the kernel unit tests (decode GEMV, add + RMSNorm, decode attention, whole decode
#             steps), the crash backtrace, then paper-size speed: c3 with the decode kernels,
#             c3 with every hand-written kernel off (C3_FUSED_KERNELS=0), HF (issue 8).
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
export CUDACXX="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
OUT="${OUT:-/tmp/out}"; MINUTES="${MINUTES:-5.5}"; mkdir -p "$OUT/g0"
nvidia-smi -L
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=ON > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
if ! ninja -C build-gpu c3 >> /tmp/build.log 2>&1; then
  grep -E "error" -A3 /tmp/build.log | head -40; cp /tmp/build.log "$OUT/build_failed.log"; exit 1
fi
echo "c3 built in ${SECONDS}s"
if [ -z "${SKIP_TRAIN:-}" ]; then
(CUDA_VISIBLE_DEVICES=1,2,3 NAME=small6 BATCH=128 LR=7e-4 NPROC=3 MINUTES=$MINUTES EXPORT=1 \
  INIT=models/c3-small LENGTHS=uniform:16-704 CURRICULUM_START=0 EASY_SHARE=0 WARMUP=100 \
  EVAL_S=50 EVAL_TRAIN_S=25 bash scripts/device/recipe.sh > "$OUT/small6.log" 2>&1
 tar -cf "$OUT/small6.tar" -C "$OUT" small6 && rm -rf "$OUT/small6") &
fi
ninja -C build-gpu model_tests >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -30; }
echo "model_tests built at ${SECONDS}s"
export CUDA_VISIBLE_DEVICES=0
echo "== kernel tests"
timeout 90 build-gpu/tests/model_tests --gtest_filter='FusedKernels.*' > "$OUT/g0/kernel_tests.txt" 2>&1
echo "exit $?"; grep -E "^\[ +(OK|FAILED|PASSED|SKIPPED)|Failure|\] |error|\*\*\*" "$OUT/g0/kernel_tests.txt" | head -60
echo "== the CPU-only test that crashed on this image"
timeout 60 build-gpu/tests/model_tests --gtest_filter='FuseProjections.*-FuseProjections.Golden*' > "$OUT/g0/crash.txt" 2>&1
echo "exit $?"; grep -E "^\[ +(OK|FAILED)|\*\*\*|^build|^/|\+0x" "$OUT/g0/crash.txt" | head -40
B=(--random-init configs/qwen2.5-1.5b.json configs/qwen2.5-3b.json 32 --device cuda --dtype bf16
   --batch 16 --passage-tokens 1024 --new-tokens 64 --repeats 3)
echo "== c3 with the decode kernels"
timeout 150 build-gpu/c3 bench "${B[@]}" --json "$OUT/g0/c3_paper.json" > "$OUT/g0/c3_paper.txt" 2>&1; echo "exit $?"
echo "== c3, every hand-written kernel off"
C3_FUSED_KERNELS=0 timeout 150 build-gpu/c3 bench "${B[@]}" --json "$OUT/g0/c3_nokernels.json" > "$OUT/g0/c3_nokernels.txt" 2>&1; echo "exit $?"
python3 bench/hf_reference.py --compare "$OUT/g0/c3_nokernels.json" "$OUT/g0/c3_paper.json" 2>&1 | tee "$OUT/g0/kernels_vs_none.md"
if [ -z "${SKIP_HF:-}" ]; then
  echo "== HF"
  timeout 200 python3 bench/hf_reference.py "${B[@]}" --json "$OUT/g0/hf_paper.json" > "$OUT/g0/hf_paper.txt" 2>&1; echo "exit $?"
  python3 bench/hf_reference.py --compare "$OUT/g0/c3_paper.json" "$OUT/g0/hf_paper.json" 2>&1 | tee "$OUT/g0/c3_vs_hf.md"
fi
echo "== greedy ids, c3-small bf16: kernels on vs off (same text?)"
TEXT="The river rose quickly after the storm, and by morning the old bridge near the mill was \
under water. Farmers moved their animals to higher ground while the council opened the school \
hall as a shelter for families from the lower streets."
build-gpu/c3 bench --model models/c3-small --device cuda --dtype bf16 --new-tokens 80 --dump-ngram 20 --dump-ids "$TEXT" > "$OUT/g0/ids_bf16_kernels.json"
C3_FUSED_KERNELS=0 build-gpu/c3 bench --model models/c3-small --device cuda --dtype bf16 --new-tokens 80 --dump-ngram 20 --dump-ids "$TEXT" > "$OUT/g0/ids_bf16_aten.json"
cmp -s "$OUT/g0/ids_bf16_kernels.json" "$OUT/g0/ids_bf16_aten.json" && echo "bf16 greedy ids: identical" || echo "bf16 greedy ids: DIFFER"
tar -cf "$OUT/g0.tar" -C "$OUT" g0 && rm -rf "$OUT/g0"
wait; [ -f "$OUT/small6.log" ] && { echo "== small6"; tail -28 "$OUT/small6.log"; }
echo "total ${SECONDS}s"
