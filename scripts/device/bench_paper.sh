#!/usr/bin/env bash
# On the GPU machine, one call: c3 vs HF transformers speed at the paper's sizes (encoder of
# Qwen2.5-1.5B shape, decoder of Qwen2.5-3B shape, L = 32, bf16, random weights), side by side with
# the H100 limits, plus greedy-id parity of c3 and HF on models/c3-small (fp32).
# Usage: bash scripts/device/bench_paper.sh        (about 5-8 minutes on one H100/H200)
# Batch 64 runs for c3 alone (issue 21: where decoding stops being weight-bound).
# Knobs (environment): BATCH=16 PASSAGE_TOKENS=1024 NEW_TOKENS=64 REPEATS=3 SKIP_HF=1 SKIP_BUILD=1
# SKIP_SMALL=1 (no c3-small table); TRACE=1 also traces one call of each step with Kineto
# (c3 bench --trace) and sums kernel time by name into $OUT/trace_summary.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
EXTRA=/tmp/bench_paper_extra; rm -rf "$EXTRA"; mkdir -p "$EXTRA"  # one tar: $OUT takes 8 files
BATCH="${BATCH:-16}"; PT="${PASSAGE_TOKENS:-1024}"; NT="${NEW_TOKENS:-64}"; REP="${REPEATS:-3}"
ENC=configs/qwen2.5-1.5b.json; DEC=configs/qwen2.5-3b.json; L=32
SHAPE=(--batch "$BATCH" --passage-tokens "$PT" --new-tokens "$NT" --repeats "$REP")
log() { echo; echo "== $*"; }
log machine; nvidia-smi -L; nproc
if [ -z "${SKIP_BUILD:-}" ]; then
  log build
  cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
  ninja -C build-gpu c3 >> /tmp/build.log 2>&1 || { grep -E "error" /tmp/build.log | head -20; exit 1; }
fi
C3=build-gpu/c3

log "c3 bench: $ENC + $DEC, L=$L, bf16, batch 1 and $BATCH, $PT-token passages, $NT new tokens"
TRACE_ARGS=()
[ -n "${TRACE:-}" ] && { mkdir -p /tmp/tr; TRACE_ARGS=(--trace /tmp/tr/t); }
timeout 200 $C3 bench --random-init $ENC $DEC $L --device cuda --dtype bf16 "${SHAPE[@]}" \
  --json "$OUT/c3_paper.json" "${TRACE_ARGS[@]}" 2>&1 | tee "$EXTRA/c3_paper.txt"
if [ -n "${TRACE:-}" ]; then
  for f in /tmp/tr/*.json; do
    echo "== $(basename "$f")"; python3 scripts/device/trace_summary.py "$f"
  done > "$OUT/trace_summary.txt" 2>&1
  tar -C /tmp/tr -cJf "$OUT/traces.tar.xz" .
  grep -v "^ *[0-9.]* ms  x" "$OUT/trace_summary.txt" | head -150
fi

log "c3 bench at batch 64: where decoding stops being bound by reading the weights (c3 only)"
timeout 150 $C3 bench --random-init $ENC $DEC $L --device cuda --dtype bf16 --batch 64 \
  --passage-tokens "$PT" --new-tokens "$NT" --repeats "$REP" --json "$EXTRA/c3_paper_b64.json" \
  > "$EXTRA/c3_paper_b64.txt" 2>&1
grep -E "^(step|compress|prefill|decompress) " "$EXTRA/c3_paper_b64.txt"

# The decode kernels' options: the split GEMV and PDL (on by default since 2026-12-06) timed
# without them; the 16-byte add + RMSNorm and split-KV attention (opt-in) timed with them.
for opt in "one_warp_no_pdl:C3_GEMV_SPLIT=0 C3_PDL=0" "norm_vec:C3_DECODE_NORM_VEC=1" \
    "attn_split:C3_ATTN_SPLIT=1" "norm_vec_attn_split:C3_DECODE_NORM_VEC=1 C3_ATTN_SPLIT=1"; do
  name=${opt%%:*}; envs=${opt#*:}
  log "c3 bench with $envs"
  env $envs timeout 150 $C3 bench --random-init $ENC $DEC $L --device cuda --dtype bf16 \
    "${SHAPE[@]}" --json "$EXTRA/c3_paper_$name.json" > "$EXTRA/c3_paper_$name.txt" 2>&1
  grep -E "^(step|compress|prefill|decompress) " "$EXTRA/c3_paper_$name.txt"
done

if [ -z "${SKIP_HF:-}" ]; then
  log "HF transformers: the same cascade and shapes"
  timeout 200 python3 bench/hf_reference.py --random-init $ENC $DEC $L --device cuda --dtype bf16 \
    "${SHAPE[@]}" --json "$OUT/hf_paper.json" 2>&1 | tee "$EXTRA/hf_paper.txt"
fi

log "side by side (tokens/s: compress = passage tokens in, decompress = generated tokens out)"
if [ -f "$OUT/c3_paper.json" ] && [ -f "$OUT/hf_paper.json" ]; then
  python3 bench/hf_reference.py --compare "$OUT/c3_paper.json" "$OUT/hf_paper.json" | tee "$OUT/paper_table.md"
else
  echo "(a run failed: see above)"
fi

log "greedy-id parity on models/c3-small, fp32: c3 (CUDA and CPU) vs HF (CUDA)"
TEXT="The river rose quickly after the storm, and by morning the old bridge near the mill was \
under water. Farmers moved their animals to higher ground while the council opened the school \
hall as a shelter for families from the lower streets."
for NG in 20 0; do
  for DEV in cuda cpu; do
    $C3 bench --model models/c3-small --device $DEV --dtype f32 --new-tokens 200 --dump-ngram $NG \
      --dump-ids "$TEXT" > "$EXTRA/c3_ids_${DEV}_ng$NG.json" || continue
    python3 bench/hf_reference.py --model models/c3-small --device cuda \
      --parity "$EXTRA/c3_ids_${DEV}_ng$NG.json" 2>&1 | tail -1
  done
done

[ -n "${SKIP_SMALL:-}" ] && { tar -C "$EXTRA" -czf "$OUT/small_and_parity.tar.gz" .; log done; exit 0; }
log "c3-small (trained weights): c3 vs HF, bf16, batch 1 and 16, 256-token passages"
$C3 bench --model models/c3-small --device cuda --dtype bf16 --batch 16 --passage-tokens 256 \
  --new-tokens 64 --repeats 3 --json "$EXTRA/c3_small.json" > /dev/null 2>&1
timeout 90 python3 bench/hf_reference.py --model models/c3-small --device cuda --dtype bf16 \
  --batch 16 --passage-tokens 256 --new-tokens 64 --repeats 3 --json "$EXTRA/hf_small.json" > /dev/null 2>&1
[ -f "$EXTRA/c3_small.json" ] && [ -f "$EXTRA/hf_small.json" ] && \
  python3 bench/hf_reference.py --compare "$EXTRA/c3_small.json" "$EXTRA/hf_small.json" | tee "$EXTRA/small_table.md"
tar -C "$EXTRA" -czf "$OUT/small_and_parity.tar.gz" .
log done
