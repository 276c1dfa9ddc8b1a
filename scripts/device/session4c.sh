#!/usr/bin/env bash
# One call on a 4-GPU host, after one build with the CUDA kernels (nvcc):
#   GPUs 0,1: first the NCCL 2-process test (issue 10);
#   GPU 0:    the fused-kernel tests, then scripts/device/bench_paper.sh (paper sizes, c3 with
#             kernels + fused projections vs HF, greedy-id parity; issue 8);
#   GPU 1:    the same c3 bench with the kernels and the projection fusion off (the "before");
#   GPUs 2,3: c3-small v4: v3's recipe with passages of 16-704 tokens (issue 7).
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/nccl_env.sh
export CUDACXX="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
OUT="${OUT:-/tmp/out}"; MINUTES="${MINUTES:-5.5}"; mkdir -p "$OUT/b"
nvidia-smi -L; $CUDACXX --version | tail -1
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=ON "${C3_NCCL_CMAKE_ARGS[@]}" > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
grep -i "cuda compiler\|CUDA_KERNELS" /tmp/build.log | head -3
if ! ninja -C build-gpu c3 model_tests train_tests >> /tmp/build.log 2>&1; then
  grep -E "error" -A3 /tmp/build.log | head -30; cp /tmp/build.log "$OUT/b/build_failed.log"
  echo "== kernels failed to build: going on without them"
  cmake -S . -B build-gpu -DC3_CUDA_KERNELS=OFF >> /tmp/build.log 2>&1
  ninja -C build-gpu c3 model_tests train_tests >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -30; exit 1; }
fi
echo "built in ${SECONDS}s"; cp /tmp/build.log "$OUT/b/build.log"
echo "== NCCL 2-process test (GPUs 0,1), reference computed before the fork"
CUDA_VISIBLE_DEVICES=0,1 C3_DIST_DEVICE=cuda C3_DIST_REQUIRE=1 timeout 60 build-gpu/tests/train_tests \
  --gtest_filter='Distributed.TwoProcesses*' 2>&1 | grep -E "^\[ +(OK|FAILED|PASSED)|max \||Segm|what" | tee "$OUT/b/nccl.txt"
echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/b/nccl.txt"
(CUDA_VISIBLE_DEVICES=2,3 NAME=small4 CONFIG=small BATCH=128 LR=1.5e-3 NPROC=2 MINUTES=$MINUTES EXPORT=1 \
  LENGTHS=uniform:16-704 EVAL_S=55 EVAL_TRAIN_S=30 bash scripts/device/recipe.sh > "$OUT/small4.log" 2>&1
 tar -cf "$OUT/small4.tar" -C "$OUT" small4 && rm -rf "$OUT/small4") &
A=$!
(
  export CUDA_VISIBLE_DEVICES=1 C3_FUSED_KERNELS=0 C3_FUSE_PROJECTIONS=0
  timeout 200 build-gpu/c3 bench --random-init configs/qwen2.5-1.5b.json configs/qwen2.5-3b.json 32 \
    --device cuda --dtype bf16 --batch 16 --passage-tokens 1024 --new-tokens 64 --repeats 3 \
    --json "$OUT/b/c3_paper_unfused.json"
) > "$OUT/b/unfused.txt" 2>&1 &
U=$!
CUDA_VISIBLE_DEVICES=0 timeout 60 build-gpu/tests/model_tests --gtest_filter='FusedKernels.*:FuseProjections.*-FuseProjections.Golden*' 2>&1 \
  | grep -E "^\[ +(OK|FAILED|PASSED|SKIPPED)|rms_norm|Failure|error|diff" | head -40 | tee "$OUT/b/kernel_tests.txt"
CUDA_VISIBLE_DEVICES=0 SKIP_BUILD=1 SKIP_SMALL=1 OUT="$OUT/b" timeout 330 bash scripts/device/bench_paper.sh > "$OUT/b/bench.log" 2>&1
wait $U
python3 bench/hf_reference.py --compare "$OUT/b/c3_paper_unfused.json" "$OUT/b/c3_paper.json" > "$OUT/b/unfused_vs_fused.md" 2>&1
echo "== bench"; grep -v "^$" "$OUT/b/bench.log" | tail -32
echo "== unfused (GPU 1) vs fused (GPU 0), c3 only"; cat "$OUT/b/unfused_vs_fused.md"; tail -3 "$OUT/b/unfused.txt"
tar -cf "$OUT/b.tar" -C "$OUT" b && rm -rf "$OUT/b"
wait $A; echo "== small4"; tail -25 "$OUT/small4.log"
echo "total ${SECONDS}s"
