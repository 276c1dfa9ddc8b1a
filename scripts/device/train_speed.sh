#!/usr/bin/env bash
# On the GPU machine: c3 train vs a PyTorch-eager loop over HF Qwen2 modules, same dims and batch
# (configs/medium-*.json: hidden 1024, 12 + 12 layers), bf16 autocast, one GPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=OFF > /tmp/build.log 2>&1 && ninja -C build-gpu c3 >> /tmp/build.log 2>&1 || { grep error /tmp/build.log | head; exit 1; }
echo "== c3 train"
C3_NO_PROGRESS=1 timeout 150 build-gpu/c3 train --out /tmp/speed --device cuda --train shared/data/corpus/train-00.jsonl.xz \
  --tokenizer models/c3-small/tokenizer.json --encoder-config configs/medium-encoder.json \
  --decoder-config configs/medium-decoder.json --latents 32 --lengths fixed:512 --batch-size 16 \
  --steps 40 --warmup 5 --eval-passages 0 --no-plot --log-every 5 --data-threads 8 2>&1 | tail -2
grep '"event":"step"' /tmp/speed/train_log.jsonl | tail -1
echo "== PyTorch eager (HF Qwen2 modules)"
timeout 120 python3 bench/train_reference.py --encoder configs/medium-encoder.json \
  --decoder configs/medium-decoder.json --latents 32 --batch 16 --tokens 512 --steps 20 2>&1 | tail -1
