#!/usr/bin/env bash
# On one H200, one device call of at most 10 minutes (issue 17, items 3-5): c3 train at the
# paper's sizes (configs/qwen2.5-1.5b.json encoder + qwen2.5-3b.json decoder, 4.6B parameters,
# random init; c3-small's token ids inside the 151,936-row vocabulary), L = 32, bf16 autocast,
# batch 4 x 1,024 tokens, with and without --activation-checkpointing; then the end-of-run
# checkpoint (weights + AdamW state, about 55 GB) timed by c3's own "checkpoint" log event.
# PyTorch eager (bench/train_reference.py, HF Qwen2 modules, fused AdamW) on the same shapes in
# the same call, with and without HF gradient checkpointing. Peak GPU memory of every run is
# nvidia-smi's memory.used sampled every 100 ms (CUDA context included, alike for both).
#
#   OUT=/some/dir bash scripts/device/paper_train.sh
#
# Needs shared/data/corpus/train-0*.jsonl.xz (any one shard). Env: STEPS (timed steps, 10),
# BUDGET (seconds, 560; what no longer fits is skipped and said), PARTS ("build c3 c3ckpt eager
# eagerckpt profile"; on a card under 100 GB without PARTS set, c3 and eager are left out).
# Writes $OUT/paper_train.md (the table), paper_train.jsonl, paper_profile.txt, logs.tar.gz.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/build.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
T0=$SECONDS; BUDGET="${BUDGET:-560}"; STEPS="${STEPS:-10}"
PARTS_SET="${PARTS:-}"
PARTS="${PARTS:-build c3 c3ckpt eager eagerckpt profile}"
ROWS="$OUT/paper_train.jsonl"; : > "$ROWS"
LOGS=/tmp/paper_train_logs; rm -rf "$LOGS"; mkdir -p "$LOGS"
RUN=/tmp/c3_paper_train  # on disk: the checkpoint is what item 4 times
ENC="${ENC:-configs/qwen2.5-1.5b.json}"; DEC="${DEC:-configs/qwen2.5-3b.json}"  # smaller ones for a smoke test
export C3_NO_PROGRESS=1 PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True

want() { [[ " $PARTS " == *" $1 "* ]]; }
stamp() { echo "== $* at $((SECONDS - T0)) s"; }
limit_for() { local l=$(( BUDGET - (SECONDS - T0) - 15 )); (( l > $1 )) && l=$1; (( l < 30 )) && l=0; echo $l; }
# peak_gpu_mb CMD...: runs CMD while sampling the GPU's memory in use; prints the peak (MB) last.
peak_gpu_mb() {
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$LOGS/mem.txt" 2>/dev/null &
  local smi=$!
  "$@"; local rc=$?
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  echo "peak_mb $(sort -n "$LOGS/mem.txt" | tail -1)"
  return $rc
}

c3_run() {  # NAME [extra c3 train flags]
  local name=$1; shift
  local lim; lim=$(limit_for 240)
  if (( lim == 0 )); then echo "skipped (budget): $name"; return; fi
  rm -rf "$RUN"
  local log="$LOGS/$name.log"
  peak_gpu_mb timeout "$lim" "${C3:-build-gpu/c3}" train --out "$RUN" --device "${DEVICE:-cuda}" \
    --train "$(ls shared/data/corpus/train-0*.jsonl.xz | head -1)" \
    --tokenizer models/c3-small/tokenizer.json --encoder-config "$ENC" --decoder-config "$DEC" \
    --latents 32 --lengths fixed:1024 --max-passage-tokens 1024 --batch-size 4 \
    --steps $((STEPS + 3)) --warmup 5 --eval-passages 0 --no-plot --log-every 1 --data-threads 4 \
    --keep-last 1 "$@" > "$log" 2>&1
  local rc=$? peak; peak=$(grep -o 'peak_mb [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  python3 - "$RUN/train_log.jsonl" "$name" "$peak" "$rc" >> "$ROWS" <<'PY' || echo "no figure: $name (exit $rc; see $log)"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
end = [e for e in ev if e.get("event") == "end"][-1]
ck = [e for e in ev if e.get("event") == "checkpoint"]
row = {"impl": sys.argv[2], "tokens_per_sec": round(end["tokens_per_sec"]), "mfu": round(end["mfu"], 4),
       "peak_gpu_gb": round(int(sys.argv[3] or 0) / 1024, 1), "exit": int(sys.argv[4])}
if ck:
    row.update({k: ck[-1].get(k) for k in ("bytes_rank0", "snapshot_s", "snapshot_host_s", "write_s", "total_s",
                                          "staging_bytes", "staging_reserve_s", "staging_overflow_bytes", "staging_note") if k in ck[-1]})
print(json.dumps(row))
PY
  tail -1 "$ROWS"; rm -rf "$RUN"
}

eager_run() {  # NAME [extra train_reference.py flags]
  local name=$1; shift
  local lim; lim=$(limit_for 200)
  if (( lim == 0 )); then echo "skipped (budget): $name"; return; fi
  local log="$LOGS/$name.log"
  peak_gpu_mb timeout "$lim" python3 bench/train_reference.py --encoder "$ENC" --decoder "$DEC" \
    --config-name paper --latents 32 --batch 4 --tokens 1024 --steps "$STEPS" --warmup 3 "$@" \
    > "$log" 2>&1
  local peak; peak=$(grep -o 'peak_mb [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  grep '^{' "$log" | tail -1 | python3 -c "
import json, sys
r = json.loads(sys.stdin.read()); r['impl'] = '$name'; r['peak_gpu_gb'] = round(int('${peak:-0}') / 1024, 1)
print(json.dumps(r))" >> "$ROWS" || echo "no figure: $name (see $log)"
  tail -1 "$ROWS"
}

if want build; then stamp build; c3_build_gpu c3 || exit 1; fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
df -h /tmp | tail -1
# Without checkpointing neither c3 nor PyTorch fits batch 4 x 1,024 in 80 GB (2026-12-05, H100:
# both ran out of memory, c3 after a minute): on such a card those rows are left out unless asked.
GPU_MB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
if [ -z "$PARTS_SET" ] && (( ${GPU_MB:-0} < 100000 )); then
  PARTS="${PARTS/ c3 / }"; PARTS="${PARTS/ eager / }"
  echo "a ${GPU_MB} MiB card: the rows without checkpointing are left out (PARTS=\"$PARTS\")"
fi
if want c3; then stamp c3; c3_run c3; fi
if want c3ckpt; then stamp c3ckpt; c3_run c3-act-ckpt --activation-checkpointing; fi
if want eager; then stamp eager; eager_run pytorch-eager; fi
if want eagerckpt; then stamp eagerckpt; eager_run pytorch-eager-ckpt --grad-ckpt; fi
# Where c3's checkpointed step spends its time (0.76x PyTorch's on an H100, 2026-12-05): phases
# and a Kineto trace of 3 steps, summed by kernel into $OUT/paper_profile.txt.
if want profile; then
  stamp profile
  rm -f /tmp/paper_trace.json
  # Its checkpoint takes the snapshot tensor by tensor (C3_CKPT_STAGING=0): beside the rows
  # above, which copy into memory reserved at the start, it shows what the reservation saves.
  STEPS=5 C3_CKPT_STAGING=0 C3_TRAIN_PROFILE=1 C3_TRAIN_TRACE=/tmp/paper_trace.json c3_run c3-ckpt-profile --activation-checkpointing
  { grep '"event":"profile"' "$LOGS/c3-ckpt-profile.log" | tail -1
    [ -f /tmp/paper_trace.json ] && python3 scripts/device/trace_summary.py /tmp/paper_trace.json; } \
    > "$OUT/paper_profile.txt" 2>&1
  head -30 "$OUT/paper_profile.txt"
fi
stamp table
python3 - "$ROWS" > "$OUT/paper_train.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| run | tokens/s | MFU | peak GPU GB (nvidia-smi) | checkpoint: pause s | of it host allocation s | write s | total s | GB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    ck = [r.get(k) for k in ("snapshot_s", "snapshot_host_s", "write_s", "total_s")]
    gb = r.get("bytes_rank0")
    print(f"| {r['impl']} | {r['tokens_per_sec']:,} | {100 * r['mfu']:.1f}% | {r.get('peak_gpu_gb', '')} | "
          + " | ".join("" if v is None else f"{v:.1f}" for v in ck) + f" | {'' if gb is None else round(gb / 1e9, 1)} |")
PY
cat "$OUT/paper_train.md"
tar -czf "$OUT/logs.tar.gz" -C "$LOGS" .
stamp done
