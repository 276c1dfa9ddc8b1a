#!/usr/bin/env bash
# On one H200 (issue 18, docs/fidelity-plan.md): trains several encoder query layouts side by side
# on the one GPU, for the same minutes, from the same seed and data, then evaluates each on valid
# (2x, 10x, 20x; 32 passages a bin) and on train-00 (10x, 20x; the generalisation gap).
# Env: LAYOUTS="after_text:causal segments:causal segments:segment" (positions:mask[:pooling] per
#      run; pooling none | segment_mean, default none)
#      MINUTES=6 CONFIG=small BATCH=128 LR=1.5e-3 LENGTHS=uniform:16-704 CURRICULUM_START=64
#      EASY_SHARE=0.2 WARMUP=200 INPUT_NOISE=0 SELF_FEED=0 NOISE_DECAY=0 SEED=1
#      INIT= (a c3 model folder: each layout then starts from its weights) EXPORT=0 (1: also a
#      bf16 export of each run in its tar, NAME/model, to --init the next call from) EVAL_S=150
#      OUT=/tmp/out
# The runs share the GPU, so their tokens/s are lower than one run alone gets; they are comparable
# with each other. What comes back: one tar per run (log, eval tables, export), at most 8 runs.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/build.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
LAYOUTS="${LAYOUTS:-after_text:causal segments:causal segments:segment}"
MINUTES="${MINUTES:-6}"; CONFIG="${CONFIG:-small}"; DATA=shared/data/corpus; C3=build-gpu/c3
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True C3_NO_PROGRESS=1
c3_build_gpu c3 || exit 1
if [ -n "${INIT:-}" ]; then
  MODEL_ARGS=(--init "$INIT")
else
  MODEL_ARGS=(--tokenizer models/c3-small/tokenizer.json --encoder-config "configs/$CONFIG-encoder.json"
    --decoder-config "configs/$CONFIG-decoder.json")
fi
one_run() {  # positions mask pooling
  local name="ab-$1-$2-$3" r="$OUT/ab-$1-$2-$3"; mkdir -p "$r"
  $C3 train --nproc 1 --out "/tmp/$name" --device cuda --train "$DATA"/train-0*.jsonl.xz \
    --valid "$DATA/valid.jsonl.xz" "${MODEL_ARGS[@]}" --query-positions "$1" --query-mask "$2" \
    --query-pooling "$3" \
    --latents 32 --max-passage-tokens 320 --lengths "${LENGTHS:-uniform:16-704}" \
    --curriculum-start "${CURRICULUM_START:-64}" --curriculum-gate 0.6 --curriculum-grow 1.25 \
    --easy-share "${EASY_SHARE:-0.2}" --input-noise "${INPUT_NOISE:-0}" --self-feed "${SELF_FEED:-0}" \
    --input-noise-decay "${NOISE_DECAY:-0}" --batch-size "${BATCH:-128}" --lr "${LR:-1.5e-3}" \
    --warmup "${WARMUP:-200}" --steps 20000 --max-minutes "$MINUTES" --fit-steps-to-time \
    --eval-every 500 --eval-passages 8 --log-every 20 --data-threads 4 --bucket-docs 2048 \
    --seed "${SEED:-1}" --no-plot > "$r/train.txt" 2>&1
  echo "$name: train exit $?"; cp "/tmp/$name/train_log.jsonl" "$r/"
  local ck; ck=$(ls -d /tmp/$name/step-* | sort | tail -1)
  timeout "${EVAL_S:-150}" $C3 eval --model "$ck" --device cuda --data "$DATA/valid.jsonl.xz" \
    --bins 32-96,288-352,608-672 --per-bin 32 --batch 32 \
    --json "$r/eval_valid.json" --markdown "$r/eval_valid.md" > "$r/eval_valid.txt" 2>&1
  timeout 60 $C3 eval --model "$ck" --device cuda --data "$DATA/train-00.jsonl.xz" \
    --bins 288-352,608-672 --per-bin 16 --batch 16 \
    --json "$r/eval_train.json" --markdown "$r/eval_train.md" > "$r/eval_train.txt" 2>&1
  [ "${EXPORT:-0}" = 1 ] && $C3 export --model "$ck" --out "$r/model" --dtype bf16 > "$r/export.txt" 2>&1
  tar -cf "$OUT/$name.tar" -C "$OUT" "$name" && rm -rf "$r"
}
START=$SECONDS
for l in $LAYOUTS; do
  IFS=: read -r pos mask pool <<< "$l"; one_run "$pos" "$mask" "${pool:-none}" &
done
wait
echo "all runs done after $((SECONDS - START)) s"
for t in "$OUT"/ab-*.tar; do  # the tables on stdout (at most 8 files come back: the tars)
  n=$(basename "$t" .tar); echo "## $n"; tar -xOf "$t" "$n/eval_valid.md" 2>/dev/null
  tar -xOf "$t" "$n/eval_train.md" 2>/dev/null; tar -xOf "$t" "$n/train.txt" | tail -2
done
