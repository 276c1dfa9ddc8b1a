#!/usr/bin/env bash
# On the GPU machine: train a cascade from scratch with a recipe (issue 7), then c3 eval on valid and
# on train passages (the generalisation gap). Defaults: the larger recipe, configs/recipe-*.json
# (hidden 512, 8 + 8 layers, 4k vocabulary), L = 32, loss-gated curriculum, data parallel; the
# cosine schedule is fitted to MINUTES (--fit-steps-to-time).
# Env: NAME=recipe NPROC=2 MINUTES=3 CONFIG=recipe BATCH=64 LR=1e-3 LENGTHS=uniform:16-1280 OUT=dir
# INIT=c3-checkpoint (start from its weights; the configs are then ignored) CURRICULUM_START=64
# (0 = off) EASY_SHARE=0.2 WARMUP=200 MAX_PASSAGE_TOKENS= (unset: the INIT model's, else 1280) INPUT_NOISE=0 SELF_FEED=0
# NOISE_DECAY=0 (the last three: c3 train --input-noise, --self-feed, --input-noise-decay)
# TOKENIZER=models/c3-small/tokenizer.json (without INIT) EVAL_BEAMS= (set: also eval 10x and
# 20x with that many beams). Issue 18 (docs/fidelity-plan.md):
# QUERY_POSITIONS=after_text|segments QUERY_MASK=causal|segment QUERY_POOLING=none|segment_mean
# (c3 train --query-positions, --query-mask, --query-pooling; unset = the INIT model's layout,
# else the official one), AUX_LM_WEIGHT=0
# (--aux-lm-weight), LATENTS=32, STEPS=20000, BATCH_TOKENS=0 (--batch-tokens: more rows at short caps). GROW_FROM=model-folder: start from that trained
# model grown to CONFIG's shape, computing the same function (scripts/grow_model.py; INIT is it).
# LM_MINUTES, LM_LENGTHS=uniform:64-1024, LM_LR=LR: a language-model stage first (below).
# Expects c3 built in build-gpu/ and the corpus under shared/.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
OUT="${OUT:-/tmp/out}"; NAME="${NAME:-recipe}"; R="$OUT/$NAME"; mkdir -p "$R"
NPROC="${NPROC:-2}"; MINUTES="${MINUTES:-3}"; CONFIG="${CONFIG:-recipe}"
BATCH="${BATCH:-64}"; LR="${LR:-1e-3}"; EVAL_S="${EVAL_S:-100}"; EVAL_TRAIN_S="${EVAL_TRAIN_S:-60}"
DATA=shared/data/corpus
TRAIN_EVAL="$(ls "$DATA"/train-0*.jsonl.xz | head -1)"  # the train-split eval: the first shard present
C3=build-gpu/c3
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
if [ -n "${GROW_FROM:-}" ]; then
  INIT="/tmp/$NAME-grown"; rm -rf "$INIT"
  python3 scripts/grow_model.py "$GROW_FROM" --encoder-config "configs/$CONFIG-encoder.json" \
    --decoder-config "configs/$CONFIG-decoder.json" --out "$INIT" || exit 1
fi
if [ -n "${INIT:-}" ]; then
  MODEL_ARGS=(--init "$INIT")
else
  MODEL_ARGS=(--tokenizer "${TOKENIZER:-models/c3-small/tokenizer.json}" --encoder-config "configs/$CONFIG-encoder.json"
    --decoder-config "configs/$CONFIG-decoder.json")
fi
# c3_max_passage_tokens (the chunk size compress will cut): unset, an INIT run keeps the init
# model's and a run from scratch gets c3 train's default (1280).
CHUNK_ARGS=()
[ -n "${MAX_PASSAGE_TOKENS:-}" ] && CHUNK_ARGS+=(--max-passage-tokens "$MAX_PASSAGE_TOKENS")
LAYOUT_ARGS=()
[ -n "${QUERY_POSITIONS:-}" ] && LAYOUT_ARGS+=(--query-positions "$QUERY_POSITIONS")
[ -n "${QUERY_MASK:-}" ] && LAYOUT_ARGS+=(--query-mask "$QUERY_MASK")
[ -n "${QUERY_POOLING:-}" ] && LAYOUT_ARGS+=(--query-pooling "$QUERY_POOLING")
# LM_MINUTES=M (from scratch only): the first M of the MINUTES train both halves as plain language
# models on the same data (c3 train --objective lm; lengths LM_LENGTHS, token-sized batches of
# BATCH x 512), and the cascade then starts from them (INIT) for the rest: the paper starts from
# pretrained LLMs (FIDELITY-NOTES.md: a better decoder prior leaves fewer bits to carry).
if [ -n "${LM_MINUTES:-}" ] && [ -z "${INIT:-}" ]; then
  LM_CMD=(train --nproc "$NPROC" --out "/tmp/$NAME-lm" --device cuda --train "$DATA"/train-0*.jsonl.xz
    --valid "$DATA/valid.jsonl.xz" "${MODEL_ARGS[@]}" "${LAYOUT_ARGS[@]}" --latents "${LATENTS:-32}"
    "${CHUNK_ARGS[@]}" --objective lm --lengths "${LM_LENGTHS:-uniform:64-1024}"
    --batch-size "$BATCH" --batch-tokens $((BATCH * 512)) --lr "${LM_LR:-$LR}" --warmup 100
    --steps 20000 --max-minutes "$LM_MINUTES" --eval-every 500 --eval-passages 8 --log-every 20
    --data-threads 6 --bucket-docs 2048 --seed 1 --no-plot --fit-steps-to-time)
  echo "c3 ${LM_CMD[*]}" > "$R/command_lm.txt"
  START=$SECONDS
  C3_NO_PROGRESS=1 $C3 "${LM_CMD[@]}" > "$R/train_lm.txt" 2>&1
  echo "language-model stage exit $? after $((SECONDS - START)) s"; tail -2 "$R/train_lm.txt"
  cp "/tmp/$NAME-lm/train_log.jsonl" "$R/train_log_lm.jsonl"
  INIT=$(ls -d /tmp/$NAME-lm/step-* | sort | tail -1)
  MODEL_ARGS=(--init "$INIT")
  MINUTES=$(awk -v m="$MINUTES" -v l="$LM_MINUTES" 'BEGIN { printf "%.2f", m - l }')
fi
CMD=(train --nproc "$NPROC" --out "/tmp/$NAME" --device cuda --train "$DATA"/train-0*.jsonl.xz
  --valid "$DATA/valid.jsonl.xz" "${MODEL_ARGS[@]}"
  "${LAYOUT_ARGS[@]}" --aux-lm-weight "${AUX_LM_WEIGHT:-0}"
  --latents "${LATENTS:-32}" "${CHUNK_ARGS[@]}" --lengths "${LENGTHS:-uniform:16-1280}"
  --curriculum-start "${CURRICULUM_START:-64}" --curriculum-gate 0.6 --curriculum-grow 1.25
  --easy-share "${EASY_SHARE:-0.2}" --input-noise "${INPUT_NOISE:-0}"
  --self-feed "${SELF_FEED:-0}" --input-noise-decay "${NOISE_DECAY:-0}" --batch-size "$BATCH" --batch-tokens "${BATCH_TOKENS:-0}" --lr "$LR" --warmup "${WARMUP:-200}" --steps "${STEPS:-20000}"
  --max-minutes "$MINUTES" --eval-every 500 --eval-passages 8 --log-every 20 --data-threads 6
  --bucket-docs 2048 --seed 1 --no-plot --fit-steps-to-time)
echo "c3 ${CMD[*]}" > "$R/command.txt"
START=$SECONDS
C3_NO_PROGRESS=1 $C3 "${CMD[@]}" > "$R/train.txt" 2>&1
echo "train exit $? after $((SECONDS - START)) s"; tail -3 "$R/train.txt"
cp "/tmp/$NAME/train_log.jsonl" "$R/"
CK=$(ls -d /tmp/$NAME/step-* | sort | tail -1); echo "checkpoint $CK"
[ "${EXPORT:-0}" = 1 ] && $C3 export --model "$CK" --out "$R/model" --dtype bf16 > "$R/export.txt" 2>&1
du -sh "$R/model" 2>/dev/null
C3_NO_PROGRESS=1 timeout "$EVAL_S" $C3 eval --model "$CK" --device cuda --data "$DATA/valid.jsonl.xz" \
  --bins 32-96,96-160,160-224,288-352,608-672 --per-bin 32 --batch 32 \
  --json "$R/eval_valid.json" --markdown "$R/eval_valid.md" > "$R/eval_valid.txt" 2>&1
# The 40x bin apart: its long generations must not cost the table above if time runs out.
C3_NO_PROGRESS=1 timeout "$EVAL_TRAIN_S" $C3 eval --model "$CK" --device cuda --data "$DATA/valid.jsonl.xz" \
  --bins 1248-1312 --per-bin 32 --batch 32 \
  --json "$R/eval_valid40.json" --markdown "$R/eval_valid40.md" > "$R/eval_valid40.txt" 2>&1
C3_NO_PROGRESS=1 timeout "$EVAL_TRAIN_S" $C3 eval --model "$CK" --device cuda --data "$TRAIN_EVAL" \
  --bins 32-96,288-352,608-672 --per-bin 16 --batch 16 \
  --json "$R/eval_train.json" --markdown "$R/eval_train.md" > "$R/eval_train.txt" 2>&1
# With EVAL_BEAMS=N: 10x and 20x again with beam search (c3 eval --beams N).
if [ -n "${EVAL_BEAMS:-}" ]; then
  C3_NO_PROGRESS=1 timeout "$EVAL_TRAIN_S" $C3 eval --model "$CK" --device cuda --data "$DATA/valid.jsonl.xz" \
    --bins 288-352,608-672 --per-bin 32 --batch 32 --beams "$EVAL_BEAMS" \
    --json "$R/eval_valid_beams.json" --markdown "$R/eval_valid_beams.md" > "$R/eval_valid_beams.txt" 2>&1
fi
cat "$R/eval_valid.md" "$R/eval_valid40.md" "$R/eval_train.md" "$R/eval_valid_beams.md" 2>/dev/null
