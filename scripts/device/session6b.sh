#!/usr/bin/env bash
# Written in session 6, when no device time was left; not yet run. One call on a 4-GPU host:
#   GPUs 1, 2, 3: c3-small v7 trained on for the same time on one GPU each (issue 7, 20x):
#             self-feed 0.1, input noise 0.05, and both; each share decays to 0 at 80% of the
#             run, so the run ends on the clean objective (v7's exact passages at 10x kept?);
#   GPU 0:    where paper-size decode and compress spend their GPU time (c3 bench --trace,
#             summarised by trace_summary.py), then the c3 tests on CUDA (issue 8).
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/build.sh
OUT="${OUT:-/tmp/out}"; MINUTES="${MINUTES:-4.5}"; mkdir -p "$OUT/g0"
nvidia-smi -L
c3_build_gpu c3 || exit 1
run_recipe() {  # name gpu noise self_feed
  (CUDA_VISIBLE_DEVICES=$2 NAME=$1 BATCH=128 LR=5e-4 NPROC=1 MINUTES=$MINUTES EXPORT=1 \
    INIT=models/c3-small LENGTHS=uniform:16-704 CURRICULUM_START=0 EASY_SHARE=0 WARMUP=100 \
    INPUT_NOISE=$3 SELF_FEED=$4 NOISE_DECAY=0.8 EVAL_S=50 EVAL_TRAIN_S=25 EVAL_BEAMS=4 \
    bash scripts/device/recipe.sh > "$OUT/$1.log" 2>&1
   tar -cf "$OUT/$1.tar" -C "$OUT" $1 && rm -rf "$OUT/$1") &
}
run_recipe sf010 1 0 0.1; run_recipe n005d 2 0.05 0; run_recipe sf010n005 3 0.05 0.1
export CUDA_VISIBLE_DEVICES=0
B=(--random-init configs/qwen2.5-1.5b.json configs/qwen2.5-3b.json 32 --device cuda --dtype bf16
   --batch 16 --passage-tokens 1024 --new-tokens 64 --repeats 3)
mkdir -p /tmp/tr
timeout 150 build-gpu/c3 bench "${B[@]}" --json "$OUT/g0/c3_paper.json" --trace /tmp/tr/t > "$OUT/g0/c3_paper.txt" 2>&1
echo "c3 bench exit $?"; cat "$OUT/g0/c3_paper.txt"
for f in /tmp/tr/*.json; do echo "== $(basename "$f")"; python3 scripts/device/trace_summary.py "$f"; done > "$OUT/g0/trace_summary.txt" 2>&1
grep -v "^ *[0-9.]* ms  x" "$OUT/g0/trace_summary.txt" | head -120
ninja -C build-gpu c3_tests > /tmp/build2.log 2>&1 && \
  C3_TEST_DEVICE=cuda timeout 60 build-gpu/tests/c3_tests > "$OUT/g0/c3_tests.txt" 2>&1; echo "c3_tests exit $?"
tar -cf "$OUT/g0.tar" -C "$OUT" g0 && rm -rf "$OUT/g0"
wait
for n in sf010 n005d sf010n005; do [ -f "$OUT/$n.log" ] && { echo "== $n"; grep -E "train exit|^\| [0-9]" "$OUT/$n.log"; }; done
echo "total ${SECONDS}s"
