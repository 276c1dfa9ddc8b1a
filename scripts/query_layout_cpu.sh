#!/usr/bin/env bash
# Issue 18 on the CPU: micro cascades (configs/micro-*.json: hidden 128, 2 + 2 layers, L = 8)
# trained from scratch with each encoder query layout, same data, seed and steps, then `c3 eval`
# on valid by length bin (inside and beyond the training lengths). One thread and nice: the
# machine is shared. Results: $OUT/<layout>/{train_log.jsonl,eval.json,eval.md}.
# Env: STEPS=1500 BATCH=16 LR=2e-3 LENGTHS=uniform:16-64 BINS=16-32,32-48,48-64,80-96 PER_BIN=16
#      TOKENIZER=models/c3-small/tokenizer.json (a smaller vocabulary trains faster on the CPU)
#      LAYOUTS="after_text:causal segments:causal segments:segment" (positions:mask[:pooling])
#      OUT=/tmp/layout_cpu C3=build/c3
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/layout_cpu}"; C3="${C3:-build/c3}"; DATA=../shared/data/corpus
export OMP_NUM_THREADS=1 C3_NO_PROGRESS=1
for l in ${LAYOUTS:-after_text:causal segments:causal segments:segment}; do
  IFS=: read -r pos mask pool <<< "$l"; pool="${pool:-none}"
  r="$OUT/$pos-$mask-$pool"; rm -rf "$r"; mkdir -p "$r"
  start=$SECONDS
  nice -n 15 "$C3" train --out "$r/run" --device cpu --train "$DATA/train-00.jsonl.xz" \
    --tokenizer "${TOKENIZER:-models/c3-small/tokenizer.json}" \
    --encoder-config configs/micro-encoder.json --decoder-config configs/micro-decoder.json \
    --query-positions "$pos" --query-mask "$mask" --query-pooling "$pool" --latents 8 --max-passage-tokens 64 --lengths "${LENGTHS:-uniform:16-64}" \
    --batch-size "${BATCH:-16}" --lr "${LR:-2e-3}" --warmup 100 --steps "${STEPS:-1500}" \
    --log-every 25 --eval-passages 0 --data-threads 1 --bucket-docs 256 --seed 1 --no-plot \
    > "$r/train.txt" 2>&1
  cp "$r/run/train_log.jsonl" "$r/"
  ck=$(ls -d "$r"/run/step-* | sort | tail -1)
  nice -n 15 "$C3" eval --model "$ck" --data "$DATA/valid.jsonl.xz" \
    --bins "${BINS:-16-32,32-48,48-64,80-96}" --per-bin "${PER_BIN:-16}" --batch 16 \
    --json "$r/eval.json" --markdown "$r/eval.md" > "$r/eval.txt" 2>&1
  echo "$pos:$mask:$pool done in $((SECONDS - start)) s"; cat "$r/eval.md"
done
