#!/usr/bin/env bash
# On the GPU machine: the larger recipe (issue 7, not shipped): configs/recipe-*.json (hidden 512,
# 8 + 8 layers, 4k vocabulary), L = 32, loss-gated curriculum, data parallel on $NPROC GPUs for
# $MINUTES minutes; then c3 eval on valid (and train passages, for the generalisation gap).
# Env: NPROC=2 MINUTES=5 OUT=dir. Expects c3 built in build-gpu/ and the corpus under shared/.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
OUT="${OUT:-/tmp/out}"; R="$OUT/recipe"; mkdir -p "$R"
NPROC="${NPROC:-2}"; MINUTES="${MINUTES:-3}"
DATA=shared/data/corpus
C3=build-gpu/c3
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
CMD=(train --nproc "$NPROC" --out /tmp/recipe --device cuda --train "$DATA"/train-0*.jsonl.xz
  --valid "$DATA/valid.jsonl.xz" --tokenizer models/c3-small/tokenizer.json
  --encoder-config configs/recipe-encoder.json --decoder-config configs/recipe-decoder.json
  --latents 32 --lengths uniform:16-1280 --curriculum-start 64 --curriculum-gate 0.6
  --curriculum-grow 1.25 --easy-share 0.2 --batch-size 64 --lr 1e-3 --warmup 200 --steps 2400
  --max-minutes "$MINUTES" --eval-every 500 --eval-passages 8 --log-every 20 --data-threads 6
  --bucket-docs 2048 --seed 1 --no-plot)
echo "c3 ${CMD[*]}" > "$R/command.txt"
C3_NO_PROGRESS=1 $C3 "${CMD[@]}" > "$R/train.txt" 2>&1
echo "train exit $?"; tail -3 "$R/train.txt"
cp /tmp/recipe/train_log.jsonl "$R/"
CK=$(ls -d /tmp/recipe/step-* | sort | tail -1); echo "checkpoint $CK"
C3_NO_PROGRESS=1 timeout 150 $C3 eval --model "$CK" --device cuda --data "$DATA/valid.jsonl.xz" \
  --bins 32-96,128-192,288-352,608-672,1216-1280 --per-bin 16 --batch 16 \
  --json "$R/eval_valid.json" --markdown "$R/eval_valid.md" > "$R/eval_valid.txt" 2>&1
C3_NO_PROGRESS=1 timeout 90 $C3 eval --model "$CK" --device cuda --data "$DATA/train-00.jsonl.xz" \
  --bins 32-96,288-352,608-672 --per-bin 16 --batch 16 \
  --json "$R/eval_train.json" --markdown "$R/eval_train.md" > "$R/eval_train.txt" 2>&1
cat "$R/eval_valid.md" "$R/eval_train.md" 2>/dev/null
