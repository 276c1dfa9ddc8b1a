#!/usr/bin/env bash
# One call on a 4-GPU host (issue 7): two recipes at once, each 2-GPU data parallel, each with its
# cosine schedule fitted to MINUTES, then c3 eval on valid and train passages:
#   GPUs 0,1: c3-small v2 (configs/small-*, the shipped size), batch 128 per GPU, exported in bf16;
#   GPUs 2,3: the larger recipe (configs/recipe-*), batch 64 per GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/nccl_env.sh
OUT="${OUT:-/tmp/out}"; MINUTES="${MINUTES:-5.5}"
nvidia-smi -L
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=OFF "${C3_NCCL_CMAKE_ARGS[@]}" > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
ninja -C build-gpu c3 >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -30; exit 1; }
echo "built in ${SECONDS}s"
(CUDA_VISIBLE_DEVICES=0,1 NAME=small2 CONFIG=small BATCH=128 LR=1.5e-3 NPROC=2 MINUTES=$MINUTES EXPORT=1 \
  EVAL_S=60 EVAL_TRAIN_S=35 bash scripts/device/recipe.sh > "$OUT/small2.log" 2>&1
 tar -cf "$OUT/small2.tar" -C "$OUT" small2 && rm -rf "$OUT/small2") &
A=$!
(CUDA_VISIBLE_DEVICES=2,3 NAME=recipe CONFIG=recipe BATCH=64 LR=1e-3 NPROC=2 MINUTES=$MINUTES \
  EVAL_S=60 EVAL_TRAIN_S=35 bash scripts/device/recipe.sh > "$OUT/recipe.log" 2>&1
 tar -cf "$OUT/recipe.tar" -C "$OUT" recipe && rm -rf "$OUT/recipe") &
B=$!
wait $A; echo "== small2"; tail -25 "$OUT/small2.log"
wait $B; echo "== recipe"; tail -25 "$OUT/recipe.log"
echo "total ${SECONDS}s"
