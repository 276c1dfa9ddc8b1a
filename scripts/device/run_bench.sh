#!/usr/bin/env bash
# On the GPU machine: the paper-size speed table (bench_paper.sh) and c3-small's training-set
# eval (for the generalisation gap), packed into $OUT/results.tar.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT/r"
export OUT_FINAL="$OUT"
OUT="$OUT/r" timeout 470 bash scripts/device/bench_paper.sh
source scripts/device/env.sh
[ -d "$C3_TESTDATA" ] || export C3_TESTDATA="$(pwd)/shared/testdata"
DATA="$(dirname "$C3_TESTDATA")/data/corpus"
echo; echo "== c3-small eval on TRAIN passages (generalisation gap)"
C3_NO_PROGRESS=1 timeout 60 build-gpu/c3 eval --model models/c3-small --device cuda --data "$DATA/train-00.jsonl.xz" \
  --bins 32-96,288-352,608-672 --per-bin 16 --batch 16 --json "$OUT_FINAL/r/eval_train.json" \
  --markdown "$OUT_FINAL/r/eval_train.md"
tar -cf "$OUT_FINAL/results.tar" -C "$OUT_FINAL" r && rm -rf "$OUT_FINAL/r"
