#!/usr/bin/env bash
# The paper's training recipe (docs/paper-recipe.md) at toy size, on the CPU: two tiny HF Qwen2
# folders stand in for Qwen2.5-1.5B and Qwen2.5-3B, with a tokenizer that lacks <img> </img>
# <imgpad>; `c3 train` runs with the 8-GPU command's flags (2 Gloo processes instead of 8 NCCL
# ones), then `c3 export`, `c3 eval` on a few held-out passages and a `c3 roundtrip`.
#
#   bash scripts/paper_recipe_tiny.sh            # about 2 minutes on 2 busy cores; writes build/paper-recipe-tiny/
#   NPROC=1 STEPS=20 bash scripts/paper_recipe_tiny.sh
#
# Random weights trained for a minute do not reconstruct text: this shows the path, not a result.
# The lr is 1e-3, not the paper's 1e-5, which is for pretrained models (LR=1e-5 runs it as is).
set -euo pipefail
cd "$(dirname "$0")/.."
C3=${C3:-build/c3}
W=${OUT:-build/paper-recipe-tiny}
DATA=${DATA:-../shared/data/corpus}
NPROC=${NPROC:-2}
STEPS=${STEPS:-10}
LR=${LR:-1e-3}
LATENTS=${LATENTS:-32}
[ -x "$C3" ] || { echo "no c3 binary at $C3: build it (README) or set C3=path" >&2; exit 1; }
rm -rf "$W"
mkdir -p "$W/tokenizer"

echo "== 1. A chat tokenizer without C3's tokens (c3-small's, <img> </img> <imgpad> removed), as in a Qwen2.5 folder"
/usr/bin/env python3 - "$W/tokenizer" <<'EOF'
import json, sys
out = sys.argv[1]
tok = json.load(open("models/c3-small/tokenizer.json", encoding="utf-8"))
c3_tokens = {"<img>", "</img>", "<imgpad>"}
tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] not in c3_tokens]
json.dump(tok, open(out + "/tokenizer.json", "w", encoding="utf-8"), ensure_ascii=False)
# HF's tokenizer_config.json, shaped as Qwen2.5's (its special tokens, no chat template).
config = {
    "tokenizer_class": "Qwen2Tokenizer",
    "added_tokens_decoder": {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
                             for t in tok["added_tokens"]},
    "bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
    "clean_up_tokenization_spaces": False, "errors": "replace", "model_max_length": 4096,
    "split_special_tokens": False,
}
json.dump(config, open(out + "/tokenizer_config.json", "w", encoding="utf-8"), indent=2)
n = len(tok["model"]["vocab"]) + len(tok["added_tokens"])
print(f"{out}/tokenizer.json: {n} tokens, last: {tok['added_tokens'][-1]['content']} = {n - 1}")
open(out + "/n_tokens", "w").write(str(n))
EOF
V=$(cat "$W/tokenizer/n_tokens")

echo "== 2. Tiny HF Qwen2 folders (random weights), embeddings exactly as large as that tokenizer"
"$C3" qwen2 init --config configs/tiny-encoder.json --tokenizer "$W/tokenizer/tokenizer.json" \
  --vocab-size "$V" --seed 1 --out "$W/Tiny-Encoder"
"$C3" qwen2 init --config configs/tiny-decoder.json --tokenizer "$W/tokenizer/tokenizer.json" \
  --vocab-size "$V" --seed 2 --out "$W/Tiny-Decoder"

echo "== 3. c3 train: the 8-GPU command's flags, $NPROC CPU process(es), $STEPS steps"
start=$(date +%s)
"$C3" train --nproc "$NPROC" --device cpu \
  --encoder-hf "$W/Tiny-Encoder" --decoder-hf "$W/Tiny-Decoder" \
  --tokenizer "$W/Tiny-Decoder/tokenizer.json" \
  --train "$DATA/train-00.jsonl.xz" --valid "$DATA/valid.jsonl.xz" \
  --latents "$LATENTS" --lengths uniform:32-96 --max-passage-tokens 96 \
  --batch-size 2 --grad-accum 16 \
  --lr "$LR" --adam-beta2 0.999 --weight-decay 0 --min-lr-ratio 0 --warmup-ratio 0.01 \
  --grad-clip 1.0 --bf16 true --activation-checkpointing --zero 2 \
  --steps "$STEPS" --save-every 0 --eval-every 0 --eval-passages 8 --log-every 5 \
  --seed 0 --out "$W/run" --no-plot
echo "train wall time: $(( $(date +%s) - start )) s"
ckpt=$(ls -d "$W"/run/step-* | tail -1)

echo "== 4. c3 export $ckpt -> $W/export (the official layout, bf16)"
"$C3" export --model "$ckpt" --out "$W/export" --dtype bf16
(cd "$W/export" && find . -type f | sort)

echo "== 5. c3 eval on held-out passages"
"$C3" eval --model "$W/export" --data "$DATA/valid.jsonl.xz" --bins 32-96 --per-bin 8 \
  --max-docs 200 --json "$W/eval.json"

echo "== 6. c3 roundtrip of docs/sample.txt"
"$C3" roundtrip --model "$W/export" docs/sample.txt
