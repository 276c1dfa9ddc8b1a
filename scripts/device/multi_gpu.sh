#!/usr/bin/env bash
# On a GPU host with >= 2 GPUs (issues 5 and 10), one call:
#   1. build c3 + train_tests against PyTorch's LibTorch with NCCL; the NCCL equality tests;
#   2. c3 train vs the PyTorch-eager reference on one GPU (hidden 1024, batch 16), plus a phase
#      profile (C3_TRAIN_PROFILE=1);
#   3. data-parallel scaling: the same per-GPU batch on 1, 2, 4 (, 8) GPUs;
#   4. loss curves: 1 GPU with the global batch vs N GPUs with global/N each, same seed.
# Logs and JSON go to $OUT/multi_gpu.tar. Knobs: STEPS=40 BATCH=16 SKIP_BUILD=1 SKIP_EAGER=1
# SKIP_NCCL=1 ONE_GPU=1 (step 2 only; steps 3-4 need the other GPUs) R_NAME=mg.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/nccl_env.sh
OUT="${OUT:-/tmp/out}"; R_NAME="${R_NAME:-mg}"; R="$OUT/$R_NAME"; mkdir -p "$R"
NGPU=$(nvidia-smi -L | wc -l)
[ -n "${ONE_GPU:-}" ] && NGPU=1
STEPS="${STEPS:-40}"; BATCH="${BATCH:-16}"
log() { echo; echo "== $*"; }
log machine; nvidia-smi -L; nproc
if [ -z "${SKIP_BUILD:-}" ]; then
  log build
  cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF "${C3_NCCL_CMAKE_ARGS[@]}" > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
  ninja -C build-gpu c3 train_tests >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -30; exit 1; }
fi
C3=build-gpu/c3

if [ -z "${SKIP_NCCL:-}" ] && [ "$NGPU" -ge 2 ]; then
log "NCCL: 2-process equality tests and all-reduce bandwidth"
C3_DIST_DEVICE=cuda C3_DIST_REQUIRE=1 timeout 120 build-gpu/tests/train_tests --gtest_filter='Distributed*' > "$R/nccl_tests.txt" 2>&1
echo "exit $?"; grep -E "^\[ +(OK|FAILED|PASSED|SKIPPED) |Segmentation|what\(\)" "$R/nccl_tests.txt" | head -20
C3_DIST_DEVICE=cuda C3_DIST_REQUIRE=1 C3_DIST_BENCH_MB=256 timeout 60 build-gpu/tests/train_tests --gtest_filter='Distributed.AllreduceBandwidth' 2>&1 | grep -i "GB/s\|bandwidth" | head -3
fi

COMMON=(--train shared/data/corpus/train-00.jsonl.xz --tokenizer models/c3-small/tokenizer.json
  --encoder-config configs/medium-encoder.json --decoder-config configs/medium-decoder.json
  --latents 32 --lengths fixed:512 --eval-passages 0 --no-plot --data-threads 8 --device cuda)
train() {  # name nproc batch steps [extra...]
  local name=$1 np=$2 b=$3 st=$4; shift 4
  C3_NO_PROGRESS=1 timeout 240 $C3 train --nproc "$np" --out "/tmp/run-$name" "${COMMON[@]}" \
    --batch-size "$b" --steps "$st" "$@" > "$R/$name.txt" 2>&1
  cp "/tmp/run-$name/train_log.jsonl" "$R/$name.jsonl" 2>/dev/null
  python3 - "$R/$name.jsonl" "$name" "$np" "$b" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])] if sys.argv[1] else []
steps = [r for r in rows if r.get("event") == "step"]
prof = [r for r in rows if r.get("event") == "profile"]
s = steps[-1] if steps else {}
print(f"{sys.argv[2]}: gpus {sys.argv[3]} batch/gpu {sys.argv[4]}  tokens/s {s.get('tokens_per_sec', 0):,.0f}  "
      f"MFU {100 * s.get('mfu', 0):.1f}%  loss {s.get('loss', 0):.4f}")
if prof: print("  profile ms/step:", json.dumps(prof[-1]["ms_per_step"]))
PY
}

log "one GPU: c3 train vs PyTorch eager, hidden 1024, batch $BATCH"
train speed1 1 "$BATCH" "$STEPS" --warmup 5 --log-every 5
C3_TRAIN_PROFILE=1 train profile1 1 "$BATCH" 15 --warmup 5 --log-every 5
C3_TRAIN_TRACE=/tmp/trace.json train trace1 1 "$BATCH" 10 --warmup 5 --log-every 5
[ -f /tmp/trace.json ] && python3 scripts/device/trace_summary.py /tmp/trace.json | tee "$R/trace_summary.txt"
[ -z "${SKIP_EAGER:-}" ] && timeout 150 python3 bench/train_reference.py --encoder configs/medium-encoder.json \
  --decoder configs/medium-decoder.json --latents 32 --batch "$BATCH" --tokens 512 --steps 20 2>&1 | tail -1 | tee "$R/eager.json"
train speed1_b64 1 64 20 --warmup 5 --log-every 5
[ -z "${SKIP_EAGER:-}" ] && timeout 150 python3 bench/train_reference.py --encoder configs/medium-encoder.json \
  --decoder configs/medium-decoder.json --latents 32 --batch 64 --tokens 512 --steps 10 2>&1 | tail -1 | tee "$R/eager_b64.json"

log "data-parallel scaling, batch $BATCH per GPU"
for np in 2 4 8; do
  [ "$np" -le "$NGPU" ] || continue
  train "scale$np" "$np" "$BATCH" "$STEPS" --warmup 5 --log-every 5
done

if [ "$NGPU" -ge 2 ]; then
log "loss curves: 1 GPU x batch 64 vs $((NGPU < 4 ? 2 : 4)) GPUs x $((NGPU < 4 ? 32 : 16)), same seed, 30 steps"
NP=$((NGPU < 4 ? 2 : 4)); PB=$((64 / NP))
train curve1 1 64 30 --warmup 5 --log-every 1 --lr 3e-4 --seed 7
train "curve$NP" "$NP" "$PB" 30 --warmup 5 --log-every 1 --lr 3e-4 --seed 7
python3 - "$R/curve1.jsonl" "$R/curve$NP.jsonl" <<'PY' | tee "$R/curves.txt"
import json, sys
def losses(p):
    return {r["step"]: r["loss"] for r in map(json.loads, open(p)) if r.get("event") == "step"}
a, b = losses(sys.argv[1]), losses(sys.argv[2])
common = sorted(set(a) & set(b))
print("step  1-GPU loss  N-GPU loss  |diff|")
for s in common: print(f"{s:4d}  {a[s]:.6f}  {b[s]:.6f}  {abs(a[s]-b[s]):.2e}")
if common: print("max |diff|:", max(abs(a[s]-b[s]) for s in common))
PY
fi
tar -cf "$OUT/$R_NAME.tar" -C "$OUT" "$R_NAME" && rm -rf "$R"
log done
