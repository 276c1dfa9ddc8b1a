#!/usr/bin/env bash
# One call on a 4-GPU host (session 5), after one build with the CUDA kernels:
#   GPUs 1, 2, 3: c3-small v6 (in models/c3-small for this call) trained on for the same time
#             on one GPU each, with decoder input noise 0 (control), 0.05 and 0.15 (issue 7:
#             does robustness to its own slips save free-running generation at 20x?);
#   GPU 0:    kernel tests, the crash backtrace, the per-kernel benchmark, then paper-size
#             speed: c3 with all kernels, c3 without hand-written kernels, HF (issue 8).
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
export CUDACXX="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
OUT="${OUT:-/tmp/out}"; MINUTES="${MINUTES:-4.5}"; mkdir -p "$OUT/g0"
nvidia-smi -L
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=ON > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
if ! ninja -C build-gpu c3 >> /tmp/build.log 2>&1; then
  grep -E "error" -A3 /tmp/build.log | head -40; cp /tmp/build.log "$OUT/build_failed.log"; exit 1
fi
echo "c3 built in ${SECONDS}s"
run_recipe() {  # name gpu noise
  (CUDA_VISIBLE_DEVICES=$2 NAME=$1 BATCH=128 LR=5e-4 NPROC=1 MINUTES=$MINUTES EXPORT=1 \
    INIT=models/c3-small LENGTHS=uniform:16-704 CURRICULUM_START=0 EASY_SHARE=0 WARMUP=100 \
    INPUT_NOISE=$3 EVAL_S=50 EVAL_TRAIN_S=25 bash scripts/device/recipe.sh > "$OUT/$1.log" 2>&1
   tar -cf "$OUT/$1.tar" -C "$OUT" $1 && rm -rf "$OUT/$1") &
}
if [ -z "${SKIP_TRAIN:-}" ]; then
  run_recipe n000 1 0; run_recipe n005 2 0.05; run_recipe n015 3 0.15
fi
ninja -C build-gpu model_tests c3_decode_kernels_bench >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -30; }
echo "tests built at ${SECONDS}s"
export CUDA_VISIBLE_DEVICES=0
echo "== kernel tests"
timeout 90 build-gpu/tests/model_tests --gtest_filter='FusedKernels.*' > "$OUT/g0/kernel_tests.txt" 2>&1
echo "exit $?"; grep -E "^\[ +(OK|FAILED|PASSED)|Failure|\] |\*\*\*" "$OUT/g0/kernel_tests.txt" | head -40
echo "== the CPU-only test that crashed on this image"
timeout 60 build-gpu/tests/model_tests --gtest_filter='FuseProjections.Save*' > "$OUT/g0/crash.txt" 2>&1
echo "exit $?"; grep -E "\*\*\*|  (pc|sp)" "$OUT/g0/crash.txt" | head -20
for a in $(grep -oE "model_tests\+0x[0-9a-f]+" "$OUT/g0/crash.txt" | sed 's/.*+//' | head -12); do
  addr2line -f -C -i -e build-gpu/tests/model_tests "$a" 2>/dev/null | paste -sd' ' | cut -c1-200
done
echo "== per-kernel benchmark"
timeout 90 build-gpu/c3_decode_kernels_bench --iters 200 2>&1 | tee "$OUT/g0/kernel_bench.md"
B=(--random-init configs/qwen2.5-1.5b.json configs/qwen2.5-3b.json 32 --device cuda --dtype bf16
   --batch 16 --passage-tokens 1024 --new-tokens 64 --repeats 3)
echo "== c3, all kernels"
timeout 150 build-gpu/c3 bench "${B[@]}" --json "$OUT/g0/c3_paper.json" > "$OUT/g0/c3_paper.txt" 2>&1; echo "exit $?"
echo "== c3, no hand-written kernels"
C3_FUSED_KERNELS=0 timeout 150 build-gpu/c3 bench "${B[@]}" --json "$OUT/g0/c3_nokernels.json" > "$OUT/g0/c3_nokernels.txt" 2>&1; echo "exit $?"
python3 bench/hf_reference.py --compare "$OUT/g0/c3_nokernels.json" "$OUT/g0/c3_paper.json" 2>&1 | tee "$OUT/g0/kernels_vs_none.md"
if [ -z "${SKIP_HF:-}" ]; then
  echo "== HF"
  timeout 200 python3 bench/hf_reference.py "${B[@]}" --json "$OUT/g0/hf_paper.json" > "$OUT/g0/hf_paper.txt" 2>&1; echo "exit $?"
  python3 bench/hf_reference.py --compare "$OUT/g0/c3_paper.json" "$OUT/g0/hf_paper.json" 2>&1 | tee "$OUT/g0/c3_vs_hf.md"
fi
tar -cf "$OUT/g0.tar" -C "$OUT" g0 && rm -rf "$OUT/g0"
wait
for n in n000 n005 n015; do [ -f "$OUT/$n.log" ] && { echo "== $n"; grep -E "train exit|^\| [0-9]" "$OUT/$n.log"; }; done
echo "total ${SECONDS}s"
