#!/usr/bin/env bash
# On the GPU machine, one call: build c3 against PyTorch's LibTorch, run the golden checks on
# CUDA, check files against Python safetensors / HF tokenizers, train the shipped default model,
# evaluate it, and copy the results to $OUT. Usage: bash scripts/device/run_all.sh [TRAIN_MINUTES]
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
[ -d "$C3_TESTDATA" ] || export C3_TESTDATA="$(pwd)/shared/testdata"
DATA="$(dirname "$C3_TESTDATA")/data/corpus"
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
MIN="${1:-4}"
log() { echo; echo "== $*"; }
log machine; nvidia-smi -L; nproc
log build
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
ninja -C build-gpu c3 model_tests c3_tests >> /tmp/build.log 2>&1 || { grep -E "error" /tmp/build.log | head -20; exit 1; }
C3=build-gpu/c3
if [ -z "${SKIP_CHECKS:-}" ]; then
log "golden: Qwen2 models, bf16 on CUDA (and fp32 on CPU)"
C3_TEST_DEVICE=cuda ./build-gpu/tests/model_tests > "$OUT/model_tests_cuda.log" 2>&1; grep -iE "cuda|bf16" "$OUT/model_tests_cuda.log" | grep -v "^\[ RUN" | head -20; tail -3 "$OUT/model_tests_cuda.log"
log "golden: c3-tiny cascade, bf16 on CUDA"
C3_TEST_DEVICE=cuda C3_NO_PROGRESS=1 ./build-gpu/tests/c3_tests 2>&1 | grep -E "max abs|ids equal|PASSED|FAILED"
log "golden: c3-tiny cascade, fp32 on CUDA (ids exact)"
C3_TEST_DEVICE=cuda C3_TEST_DTYPE=f32 C3_NO_PROGRESS=1 ./build-gpu/tests/c3_tests 2>&1 | grep -E "max abs|ids equal|PASSED|FAILED"
log "Python safetensors loads what c3 writes"
python3 scripts/device/check_safetensors.py $C3 --testdata "$C3_TESTDATA" 2>&1 | tail -4
log "HF tokenizers vs c3 on the whole valid set (shipped tokenizer)"
python3 scripts/device/check_tokenizer_hf.py --tokenizer models/c3-small/tokenizer.json --texts "$DATA/valid.jsonl.xz" --c3 $C3 2>&1 | tail -3
log "tokenizer speed: c3 vs HF tokenizers on valid, Qwen tokenizer"
mkdir -p /tmp/qwen && tar -xJf "$C3_TESTDATA/tokenizer/qwen-tokenizer.tar.xz" -C /tmp/qwen
QTOK=$(find /tmp/qwen -name tokenizer.json | head -1)
$C3 tokenize --tokenizer "$QTOK" --bench "$DATA/valid.jsonl.xz" --threads 1 2>&1 | tail -1
$C3 tokenize --tokenizer "$QTOK" --bench "$DATA/valid.jsonl.xz" --threads 16 2>&1 | tail -1
timeout 120 python3 scripts/device/bench_tokenizer_hf.py --tokenizer "$QTOK" --texts "$DATA/valid.jsonl.xz" --threads 16 2>&1 | tail -6
fi
log "train c3-small ($MIN min)"
rm -rf /tmp/run
C3_NO_PROGRESS=1 $C3 train --out /tmp/run --device cuda --train "$DATA/train-*.jsonl.xz" --valid "$DATA/valid.jsonl.xz" \
  --tokenizer models/c3-small/tokenizer.json --encoder-config configs/small-encoder.json \
  --decoder-config configs/small-decoder.json --latents 32 --lengths uniform:16-1280 \
  --curriculum-start 64 --curriculum-gate 0.6 --curriculum-grow 1.25 --easy-share 0.2 \
  --batch-size 64 --lr 1e-3 --warmup 200 --steps 6000 --max-minutes "$MIN" --eval-every 500 \
  --eval-passages 8 --log-every 20 --data-threads 6 --bucket-docs 2048 --seed 1 2>&1 | grep -v "^\s*$" | tail -25
CK=$(ls -d /tmp/run/step-* | tail -1)
$C3 export --model "$CK" --out /tmp/c3-small --dtype bf16
cp /tmp/run/train_log.jsonl "$OUT/"; cp /tmp/run/loss.png "$OUT/" 2>/dev/null
tar -cf "$OUT/c3-small.tar" -C /tmp c3-small
log "eval on valid (L = 32)"
C3_NO_PROGRESS=1 $C3 eval --model /tmp/c3-small --device cuda --data "$DATA/valid.jsonl.xz" \
  --bins 32-96,96-160,160-224,288-352,608-672,1248-1312 --per-bin 32 --batch 32 \
  --json "$OUT/eval_valid.json" --markdown "$OUT/eval_valid.md" --plot "$OUT/eval_valid.png" --title c3-small
C3_NO_PROGRESS=1 $C3 eval --model /tmp/c3-small --device cuda --data "$DATA/train-00.jsonl.xz" \
  --bins 32-96,288-352,608-672 --per-bin 32 --batch 32 --json "$OUT/eval_train.json"
log done
