#!/usr/bin/env bash
# One call on a 4-GPU host, all at once after one build:
#   GPUs 0,1: c3-small v3 (configs/small-*, 3 train shards, 2-GPU data parallel; issue 7);
#   GPUs 2,3: the NCCL equality test under cuda-gdb (the parent's crash, issue 10), then
#   GPU 2:    c3 train vs PyTorch eager at hidden 1024, batch 16 and 64, with the flash-attention
#             change (issue 5); then a short small-model run checking in-training validation;
#   GPU 3:    the CUDA-enabled model and cascade tests.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/nccl_env.sh
OUT="${OUT:-/tmp/out}"; MINUTES="${MINUTES:-5.5}"; mkdir -p "$OUT/t"
nvidia-smi -L
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=ON "${C3_NCCL_CMAKE_ARGS[@]}" > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
ninja -C build-gpu c3 >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -30; exit 1; }
echo "built c3 in ${SECONDS}s"
(CUDA_VISIBLE_DEVICES=0,1 NAME=small3 CONFIG=small BATCH=128 LR=1.5e-3 NPROC=2 MINUTES=$MINUTES EXPORT=1 \
  EVAL_S=55 EVAL_TRAIN_S=30 bash scripts/device/recipe.sh > "$OUT/small3.log" 2>&1
 tar -cf "$OUT/small3.tar" -C "$OUT" small3 && rm -rf "$OUT/small3") &
A=$!
ninja -C build-gpu -j 40 >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -30; }
echo "built tests at ${SECONDS}s"
T=build-gpu/tests
(
  echo "== NCCL equality test under cuda-gdb"
  CUDA_VISIBLE_DEVICES=2,3 C3_DIST_DEVICE=cuda C3_DIST_REQUIRE=1 timeout 90 cuda-gdb -q -batch \
    -ex run -ex bt -ex "info threads" --args $T/train_tests --gtest_filter='Distributed.TwoProcesses*' 2>&1 | tail -60
) > "$OUT/t/nccl_gdb.txt" 2>&1
(
  echo "== CUDA model + cascade tests (GPU 3)"
  for t in model_tests c3_tests; do CUDA_VISIBLE_DEVICES=3 timeout 200 $T/$t --gtest_brief=1 2>&1 | tail -15; done
) > "$OUT/t/cuda_tests.txt" 2>&1 &
M=$!
CUDA_VISIBLE_DEVICES=2 ONE_GPU=1 SKIP_NCCL=1 SKIP_BUILD=1 R_NAME=speed OUT="$OUT" timeout 330 \
  bash scripts/device/multi_gpu.sh > "$OUT/t/speed.log" 2>&1
(
  echo "== in-training validation on CUDA (small model, 300 steps, eval every 100)"
  CUDA_VISIBLE_DEVICES=2 C3_NO_PROGRESS=1 timeout 80 build-gpu/c3 train --out /tmp/valcheck --device cuda \
    --train shared/data/corpus/train-00.jsonl.xz --valid shared/data/corpus/valid.jsonl.xz \
    --tokenizer models/c3-small/tokenizer.json --encoder-config configs/small-encoder.json \
    --decoder-config configs/small-decoder.json --latents 32 --lengths uniform:16-160 --batch-size 64 \
    --lr 1.5e-3 --warmup 50 --steps 300 --eval-every 100 --eval-passages 8 --log-every 50 --no-plot 2>&1 | tail -2
  grep '"valid"' /tmp/valcheck/train_log.jsonl
) > "$OUT/t/valcheck.txt" 2>&1
wait $M
cat "$OUT/t/nccl_gdb.txt" "$OUT/t/cuda_tests.txt" "$OUT/t/valcheck.txt"; grep -v "^$" "$OUT/t/speed.log" | tail -30
tar -cf "$OUT/t.tar" -C "$OUT" t && rm -rf "$OUT/t"
wait $A; echo "== small3"; tail -25 "$OUT/small3.log"
echo "total ${SECONDS}s"
