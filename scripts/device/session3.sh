#!/usr/bin/env bash
# One call on a 4-GPU host: build once, then in parallel
#   GPUs 2,3: the larger recipe (recipe.sh, 2-GPU data parallel);
#   GPU 0:    paper-size decode/encode bench, c3 (CUDA graphs) vs HF, + greedy-id parity;
#   GPU 1:    c3 train speed at hidden 1024 with expandable segments + a kernel/CPU-op trace.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/nccl_env.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT/s3"
nvidia-smi -L
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=OFF "${C3_NCCL_CMAKE_ARGS[@]}" > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
ninja -C build-gpu c3 >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -30; exit 1; }
echo "built in ${SECONDS}s"
CUDA_VISIBLE_DEVICES=2,3 OUT="$OUT/s3" bash scripts/device/recipe.sh > "$OUT/s3/recipe.log" 2>&1 &
RP=$!
(
  export CUDA_VISIBLE_DEVICES=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  COMMON=(--train shared/data/corpus/train-00.jsonl.xz --tokenizer models/c3-small/tokenizer.json
    --encoder-config configs/medium-encoder.json --decoder-config configs/medium-decoder.json
    --latents 32 --lengths fixed:512 --eval-passages 0 --no-plot --data-threads 8 --device cuda --warmup 5 --log-every 5)
  C3_NO_PROGRESS=1 build-gpu/c3 train --out /tmp/sp16 "${COMMON[@]}" --batch-size 16 --steps 40 2>&1 | tail -1
  C3_NO_PROGRESS=1 C3_TRAIN_TRACE=/tmp/trace.json build-gpu/c3 train --out /tmp/sptr "${COMMON[@]}" --batch-size 16 --steps 10 2>&1 | tail -1
  python3 scripts/device/trace_summary.py /tmp/trace.json
) > "$OUT/s3/train_speed.txt" 2>&1 &
SP=$!
CUDA_VISIBLE_DEVICES=0 SKIP_BUILD=1 SKIP_SMALL=1 OUT="$OUT/s3/bench" timeout 330 bash scripts/device/bench_paper.sh > "$OUT/s3/bench.log" 2>&1
echo "== bench"; grep -v "^$" "$OUT/s3/bench.log" | tail -40
wait $SP; echo "== train speed"; cat "$OUT/s3/train_speed.txt" | tail -50
wait $RP; echo "== recipe"; tail -40 "$OUT/s3/recipe.log"
tar -cf "$OUT/s3.tar" -C "$OUT" s3 && rm -rf "$OUT/s3"
