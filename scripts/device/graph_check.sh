#!/usr/bin/env bash
# On the GPU machine, after a build (build-gpu/c3): do training step graphs (C3_TRAIN_GRAPHS,
# train/graphed_loss.h) capture, replay and train like the eager step? Correctness first, so it
# may share the GPU with other work (its tokens/s then mean little): the same seed and data with
# graphs off and on, per-step losses side by side.
#   1. fixed 512-token passages, batch 16 (one shape: one capture);
#   2. lengths 16-512 with a curriculum, input noise and self-feed (many shapes and captures).
# Env: OUT (graph_check.txt goes there), DATA (a corpus shard), CONFIG (small), STEPS (13).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
DATA="${DATA:-$(ls shared/data/corpus/train-*.jsonl.xz | head -1)}"
CONFIG="${CONFIG:-small}"; STEPS="${STEPS:-13}"
W=/tmp/graph_check; rm -rf "$W"; mkdir -p "$W"
export C3_NO_PROGRESS=1
run() {  # NAME GRAPHS extra flags...
  local name=$1 graphs=$2; shift 2
  C3_TRAIN_GRAPHS=$graphs timeout 150 build-gpu/c3 train --out "$W/$name" --device cuda \
    --train "$DATA" --tokenizer models/c3-small/tokenizer.json \
    --encoder-config "configs/$CONFIG-encoder.json" --decoder-config "configs/$CONFIG-decoder.json" \
    --latents 32 --batch-size 16 --steps "$STEPS" --warmup 3 --eval-passages 0 --no-plot \
    --log-every 1 --data-threads 4 --seed 5 "$@" > "$W/$name.txt" 2>&1
  local rc=$?
  echo "$name (C3_TRAIN_GRAPHS=$graphs): exit $rc, $(grep -o 'step graphs [^,]*' "$W/$name.txt" | head -1)"
  grep -E "error|Error|what\(\)" "$W/$name.txt" | head -5
}
compare() {  # A B: per-step losses and the end records
  python3 - "$W/$1/train_log.jsonl" "$W/$2/train_log.jsonl" <<'PY'
import json, sys
def read(p):
    try: return [json.loads(l) for l in open(p)]
    except OSError: return []
a, b = read(sys.argv[1]), read(sys.argv[2])
sa = {r["step"]: r for r in a if r.get("event") == "step"}
sb = {r["step"]: r for r in b if r.get("event") == "step"}
worst = 0.0
for s in sorted(sa):
    if s in sb:
        d = abs(sa[s]["loss"] - sb[s]["loss"]) / max(1e-9, abs(sa[s]["loss"]))
        worst = max(worst, d)
        print(f"  step {s:3d}  loss {sa[s]['loss']:.5f}  {sb[s]['loss']:.5f}  rel diff {d:.2e}  "
              f"tok/s {sa[s]['tokens_per_sec']:.0f}  {sb[s]['tokens_per_sec']:.0f}")
ea = [r for r in a if r.get("event") == "end"]; eb = [r for r in b if r.get("event") == "end"]
print(f"  worst relative loss difference {worst:.2e}; end records:")
for e in ea + eb:
    print("   ", {k: e.get(k) for k in ("step", "loss", "tokens_per_sec", "graphs_captured")})
PY
}
{
  echo "== 1. fixed:512, batch 16, $CONFIG"
  run fixed-eager 0 --lengths fixed:512
  run fixed-graphs 1 --lengths fixed:512
  compare fixed-eager fixed-graphs
  echo "== 2. uniform:16-512, curriculum from 64, input noise 0.05, self-feed 0.1"
  flags=(--lengths uniform:16-512 --curriculum-start 64 --input-noise 0.05 --self-feed 0.1)
  run varied-eager 0 "${flags[@]}"
  run varied-graphs 1 "${flags[@]}"
  compare varied-eager varied-graphs
} 2>&1 | tee "$OUT/graph_check.txt"
