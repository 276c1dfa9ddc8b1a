#!/usr/bin/env bash
# On the GPU machine, one GPU, one device call of at most 10 minutes: issue 16's training-speed
# table. c3 train (new paths, and the old ones at a few sizes), PyTorch eager and PyTorch
# torch.compile (bench/train_reference.py: the cascade from HF Qwen2 modules, fused AdamW) at the
# small, recipe and medium configs, batch 16 and 64, fixed 512-token passages, L = 32, bf16
# autocast; plus the GPU tests of the training kernels and a C3_TRAIN_PROFILE + Kineto trace.
#
#   OUT=/some/dir bash scripts/device/train_speed.sh
#
# Needs: shared/data/corpus/train-00.jsonl.xz and shared/testdata in the checkout (carried).
# Writes to $OUT (at most 8 files): train_speed.md (the table), train_speed.jsonl (one row per
# figure), cuda_tests.txt, train_kernels.md (the element-wise steps alone), profile.txt (phase
# times + trace summary), trace.json.gz, logs.tar.gz.
#
# Time (one H200, 16 cores; estimates, the script prints each part's): build ~3 min; the three
# torch.compile processes compile side by side (~2 min of wall time) while the GPU tests run;
# then every timed figure runs alone on the GPU, one after the other: c3 6 x ~12 s, compile
# 6 x ~6 s, eager 3 processes x ~25 s, old paths and checkpointing 4 x ~12 s, profile ~20 s.
# A budget (BUDGET seconds, default 560) skips what no longer fits and says so; the table is
# printed from whatever ran.
#
# Env: CONFIGS ("small recipe medium"), BATCHES ("16 64"), STEPS (timed steps, 20),
# PARTS ("build tests kernels c3 nograph compile eager ablate real old ckpt profile"); ABLATE_ROWS
# ("recipe:64 medium:64"): the c3 rows again without the add + RMSNorm node, and with k/v
# repeated per query head instead of flash attention's own GQA (C3_SDPA_GQA=0); CE_ROWS
# ("small:16 small:64 recipe:64"), with ablate: with the cross-entropy row kernel, and with
# C3_ROTARY_BTHD=1; OLD_ROWS ("medium:16 medium:64
# recipe:16"): the c3 rows repeated with C3_TRAIN_KERNELS=0 C3_TRAIN_STACKED=0 C3_CHUNKED_CE=0;
# NOGRAPH_ROWS (every config and batch): repeated with C3_TRAIN_GRAPHS=0 (the eager step);
# REAL_ROWS ("medium:64 recipe:64"): a real run's wall-clock throughput, graphs on and off, over
# REAL_STEPS (300) steps, so that one capture per length bucket is amortised as in a long run;
# REAL_EVAL_EVERY (100) and REAL_SAVE_EVERY (150) set its validation and checkpoint cadence;
# REAL_IMPLS ("c3-real c3-real-bt c3-real-fixed"; c3-real-nograph also exists) its variants;
# PROFILE_ROWS ("medium:16 small:64"): the rows profiled (phases and a Kineto trace each).
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/build.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
T0=$SECONDS
BUDGET="${BUDGET:-560}"
CONFIGS="${CONFIGS:-small recipe medium}"
BATCHES="${BATCHES:-16 64}"
STEPS="${STEPS:-20}"
PARTS="${PARTS:-build tests kernels c3 nograph compile eager ablate real old ckpt profile}"
ABLATE_ROWS="${ABLATE_ROWS:-recipe:64 medium:64}"
CE_ROWS="${CE_ROWS:-small:16 small:64 recipe:64}"
OLD_ROWS="${OLD_ROWS:-medium:16 medium:64 recipe:16}"
REAL_ROWS="${REAL_ROWS:-medium:64 recipe:64}"
PROFILE_ROWS="${PROFILE_ROWS:-medium:16 small:64}"
NOGRAPH_ROWS="${NOGRAPH_ROWS:-$(for c in $CONFIGS; do for b in $BATCHES; do printf '%s:%s ' "$c" "$b"; done; done)}"
ROWS="$OUT/train_speed.jsonl"; : > "$ROWS"
LOGS=/tmp/train_speed_logs; rm -rf "$LOGS"; mkdir -p "$LOGS"
LOCK=/tmp/train_speed.gpu.lock; : > "$LOCK"  # every timed figure holds it: one at a time
# c3 train saves a checkpoint at the end (medium: 1.1 GB of weights + 2.2 GB of optimizer state):
# in memory where /dev/shm is large enough, else on disk.
RUN=/tmp/c3_train_speed
if [ -d /dev/shm ] && (( $(df --output=avail -B1G /dev/shm 2>/dev/null | tail -1 || echo 0) >= 16 )); then
  RUN=/dev/shm/c3_train_speed
fi
export C3_NO_PROGRESS=1 PYTHONUNBUFFERED=1
export C3_TRAIN_GRAPHS="${C3_TRAIN_GRAPHS:-1}"  # the c3 rows with step graphs; "nograph" rows without

left() { echo $(( BUDGET - (SECONDS - T0) )); }
want() { [[ " $PARTS " == *" $1 "* ]]; }
stamp() { echo "== $* at $((SECONDS - T0)) s"; }
# limit_for SECONDS: that limit, or what is left of the budget less a reserve; 0 = no time.
limit_for() { local l=$(( $(left) - 20 )); (( l > $1 )) && l=$1; (( l < 15 )) && l=0; echo $l; }

# c3_row IMPL CONFIG BATCH [ENV=VALUE... --] [extra c3 train flags...]: one c3 train figure.
c3_row() {
  local impl=$1 cfg=$2 b=$3; shift 3
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  local lim; lim=$(limit_for 120)
  if (( lim == 0 )); then echo "skipped (budget): $impl $cfg b$b"; return; fi
  local log="$LOGS/$impl-$cfg-b$b.log"
  rm -rf "$RUN"
  env ${envs[@]+"${envs[@]}"} flock "$LOCK" timeout "$lim" build-gpu/c3 train --out "$RUN" \
    --device cuda --train "${ROW_DATA:-$SPEED_DATA}" \
    --tokenizer models/c3-small/tokenizer.json --encoder-config "configs/$cfg-encoder.json" \
    --decoder-config "configs/$cfg-decoder.json" --latents 32 --lengths "${ROW_LENGTHS:-fixed:512}" \
    --batch-size "$b" --steps $((STEPS + 3)) --warmup 5 --eval-passages "${ROW_EVAL_PASSAGES:-0}" --no-plot \
    --log-every 5 --data-threads 8 "$@" > "$log" 2>&1
  local rc=$?
  python3 - "$RUN/train_log.jsonl" "$impl" "$cfg" "$b" >> "$ROWS" <<'PY' || echo "no figure: $impl $cfg b$b (exit $rc; see $log)"
import json, sys
end = [json.loads(l) for l in open(sys.argv[1]) if '"event":"end"' in l.replace(" ", "")][-1]
print(json.dumps({"impl": sys.argv[2], "config": sys.argv[3], "batch": int(sys.argv[4]),
                  "tokens_per_sec": round(end["tokens_per_sec"]), "mfu": round(end["mfu"], 4)}))
PY
  tail -1 "$ROWS"
  cp "$RUN/train_log.jsonl" "$LOGS/$impl-$cfg-b$b.train_log.jsonl" 2>/dev/null
  rm -rf "$RUN"
}

# The PyTorch loop trains on rows of exactly 512 tokens; c3 on real passages, which are shorter
# where a document is (2026-12-05: 403 tokens a row on average). Documents of at least 4,000
# characters (~900 tokens) give full-length passages, so that both count the same work.
SPEED_DATA=/tmp/train_speed_long_docs.jsonl
python3 - "${DATA:-shared/data/corpus/train-00.jsonl.xz}" "$SPEED_DATA" <<'PY'
import json, lzma, sys
n = 0
with lzma.open(sys.argv[1], "rt", encoding="utf-8") as f, open(sys.argv[2], "w", encoding="utf-8") as out:
    for line in f:
        if len(json.loads(line)["text"]) >= 4000 and n < 20000:
            out.write(line); n += 1
print(f"{n} documents of >= 4,000 characters for the c3 rows", file=sys.stderr)
PY

nvidia-smi -L
stamp start
if want build; then
  c3_build_gpu c3 cuda_tests c3_train_kernels_bench || exit 1
fi
stamp built
# The element-wise steps alone, forward and backward, against the unfused ops and the card's
# bandwidth (about 20 s).
if want kernels; then
  stamp "training kernels alone"
  timeout "$(limit_for 90)" build-gpu/c3_train_kernels_bench 2>&1 | tee "$OUT/train_kernels.md"
fi

if want c3; then
  stamp "c3 train"
  for cfg in $CONFIGS; do for b in $BATCHES; do c3_row c3 "$cfg" "$b"; done; done
  grep -h "step graphs" "$LOGS"/c3-*.log | sort | uniq -c
fi
if want nograph; then
  stamp "c3 train without step graphs"
  for cb in $NOGRAPH_ROWS; do c3_row c3-nograph "${cb%%:*}" "${cb##*:}" C3_TRAIN_GRAPHS=0 --; done
fi

# torch.compile: the configs compile side by side (CPU work) while the GPU tests run; this shell
# holds the GPU lock until every compile is done, so no figure is timed beside a compile.
exec 9>>"$LOCK"
flock 9
compile_pids=()
if want compile; then
  for cfg in $CONFIGS; do
    rm -f "/tmp/compiled-$cfg"
    timeout "$(limit_for 400)" python3 bench/train_reference.py --encoder "configs/$cfg-encoder.json" \
      --decoder "configs/$cfg-decoder.json" --config-name "$cfg" --batch $BATCHES --steps "$STEPS" \
      --warmup 3 --compile --ready "/tmp/compiled-$cfg" --lock "$LOCK" 9>&- \
      >> "$ROWS" 2> "$LOGS/compile-$cfg.log" &
    compile_pids+=($!)
  done
fi
if want tests; then
  stamp "GPU tests (cuda_tests, label cuda)"
  timeout "$(limit_for 150)" build-gpu/tests/cuda_tests 9>&- > "$OUT/cuda_tests.txt" 2>&1
  echo "cuda_tests exit $?"
  grep -E "^\[  (PASSED|FAILED|SKIPPED)|^\[(rms_norm|rotary|silu_mul|chunked|stacked|checkpoint|cascade|gqa|ce kernel)" "$OUT/cuda_tests.txt"
  stamp "GPU tests again with the opt-in paths (C3_ROTARY_BTHD=1 C3_TRAIN_KERNELS=all)"
  C3_ROTARY_BTHD=1 C3_TRAIN_KERNELS=all timeout "$(limit_for 150)" build-gpu/tests/cuda_tests \
    --gtest_filter='CudaTrainOps.*' 9>&- 2>&1 | grep -E "^\[  (PASSED|FAILED)|^\[(cascade|checkpoint)"
fi
if (( ${#compile_pids[@]} )); then
  stamp "waiting for the compiles"
  for cfg in $CONFIGS; do
    while [ ! -f "/tmp/compiled-$cfg" ] && (( $(left) > 60 )); do
      alive=0; for p in "${compile_pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      (( alive )) || break
      sleep 2
    done
  done
  stamp "compiled; PyTorch compile: timed steps"
fi
flock -u 9
exec 9>&-
(( ${#compile_pids[@]} )) && wait "${compile_pids[@]}"

if want eager; then
  stamp "PyTorch eager"
  for cfg in $CONFIGS; do
    lim=$(limit_for 120)
    if (( lim == 0 )); then echo "skipped (budget): eager $cfg"; continue; fi
    timeout "$lim" python3 bench/train_reference.py --encoder "configs/$cfg-encoder.json" \
      --decoder "configs/$cfg-decoder.json" --config-name "$cfg" --batch $BATCHES \
      --steps "$STEPS" --lock "$LOCK" >> "$ROWS" 2> "$LOGS/eager-$cfg.log"
    tail -n 2 "$ROWS"
  done
fi
# The residual add + RMSNorm node against the same step without it (the other kernels on):
# that node's own gain, beside the table's c3 rows.
if want ablate; then
  stamp "c3 train without the add + RMSNorm node, and with k/v repeated per query head"
  for cb in $ABLATE_ROWS; do
    c3_row c3-no-addnorm "${cb%%:*}" "${cb##*:}" C3_TRAIN_KERNELS=rms_norm,rotary,silu_mul --
    c3_row c3-no-gqa "${cb%%:*}" "${cb##*:}" C3_SDPA_GQA=0 --
  done
  # The opt-in paths, until timed here: the cross-entropy row kernel (C3_TRAIN_KERNELS=all adds
  # it) and the roped q/k laid out [B, T, H, D] (C3_ROTARY_BTHD=1: no copy to merge the heads).
  stamp "c3 train with the cross-entropy row kernel, and with q/k roped into [B, T, H, D]"
  for cb in $CE_ROWS; do
    c3_row c3-ce-kernel "${cb%%:*}" "${cb##*:}" C3_TRAIN_KERNELS=all --
    c3_row c3-rotary-bthd "${cb%%:*}" "${cb##*:}" C3_ROTARY_BTHD=1 --
  done
fi
if want old; then
  stamp "c3 train, old paths"
  for cb in $OLD_ROWS; do
    c3_row c3-old "${cb%%:*}" "${cb##*:}" C3_TRAIN_GRAPHS=0 C3_TRAIN_KERNELS=0 C3_TRAIN_STACKED=0 C3_CHUNKED_CE=0 --
  done
fi
# Issue 16's fourth goal: the throughput of a real run (varying passage lengths in buckets from
# the whole shard, validation and checkpoints) against the fixed-length figure. Its figure is
# wall-clock: text tokens after the third step over the wall time since then, evaluations and
# checkpoint writes included (c3_real_row).
if want real; then
  # Validation needs held-out text (2026-12-05: without --valid the real rows ran no evaluation).
  VALID="${VALID:-$(ls shared/data/corpus/valid.jsonl.xz ../shared/data/corpus/valid.jsonl.xz 2>/dev/null | head -1)}"
  [ -n "$VALID" ] || echo "no valid.jsonl.xz in shared/data/corpus: the real rows run without validation"
  # 2026-12-05: validation every 10 steps and a checkpoint every 15 (of 100) took half of the
  # wall time, fixed-length or not; a real run validates every 500. One every 100 still shows
  # what evaluations and checkpoints cost without drowning the steps.
  REAL_EVAL_EVERY="${REAL_EVAL_EVERY:-100}"; REAL_SAVE_EVERY="${REAL_SAVE_EVERY:-150}"
  REAL_IMPLS="${REAL_IMPLS:-c3-real c3-real-bt c3-real-fixed}"
  stamp "c3 train, a real run (lengths 64-1024, validation every ${REAL_EVAL_EVERY} steps, checkpoints every ${REAL_SAVE_EVERY})"
  for cb in $REAL_ROWS; do
    # c3-real-fixed: the same run on full 512-token passages, so that the trainer's own losses
    # (evaluations, checkpoints, buckets) show apart from the length mix's.
    for impl in $REAL_IMPLS; do
      genv=(); [ "$impl" = c3-real-nograph ] && genv=(C3_TRAIN_GRAPHS=0)
      # c3-real-bt: the same mix with --batch-tokens at the fixed run's tokens a step (batch x 512),
      # so that buckets of short passages take more rows instead of leaving the GPU half idle.
      extra=(); [ "$impl" = c3-real-bt ] && extra=(--batch-tokens $(( ${cb##*:} * 512 )))
      rdata="${DATA:-shared/data/corpus/train-00.jsonl.xz}"; rlen=uniform:64-1024
      [ "$impl" = c3-real-fixed ] && { rdata="$SPEED_DATA"; rlen=fixed:512; }
      STEPS="${REAL_STEPS:-300}" ROW_DATA="$rdata" ROW_LENGTHS="$rlen" ROW_EVAL_PASSAGES=8 \
        c3_row "$impl" "${cb%%:*}" "${cb##*:}" ${genv[@]+"${genv[@]}"} -- --eval-every "$REAL_EVAL_EVERY" --save-every "$REAL_SAVE_EVERY" --keep-last 1 \
        ${VALID:+--valid "$VALID"} ${extra[@]+"${extra[@]}"}
      python3 - "$LOGS/$impl-${cb%%:*}-b${cb##*:}.train_log.jsonl" "$ROWS" "$impl" <<'PY' || echo "no wall figure: $impl $cb"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
steps = [r for r in recs if r.get("event") == "step"]
a, z = next(r for r in steps if r["step"] >= 5), steps[-1]
rows = [json.loads(l) for l in open(sys.argv[2])]
row = rows[-1]  # the row c3_row just wrote (its tokens/s: step time only)
assert row["impl"] == sys.argv[3], f"c3_row wrote no {sys.argv[3]} row"
row["step_tokens_per_sec"] = row["tokens_per_sec"]
row["tokens_per_sec"] = round((z["tokens_seen"] - a["tokens_seen"]) / (z["elapsed_s"] - a["elapsed_s"]))
row["mfu"] = round(row["mfu"] * row["tokens_per_sec"] / row["step_tokens_per_sec"], 4)
row["evals"] = sum(r.get("event") == "valid" for r in recs)
row["checkpoints"] = sum(r.get("event") == "checkpoint" for r in recs)
with open(sys.argv[2], "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
print(f"{row['impl']} wall {row['tokens_per_sec']} tok/s (steps alone {row['step_tokens_per_sec']}), "
      f"{row['evals']} evals, {row['checkpoints']} checkpoints")
PY
    done
  done
fi
if want ckpt; then
  stamp "c3 train, activation checkpointing"
  c3_row c3-ckpt medium 16 -- --activation-checkpointing
fi
if want profile; then
  # One C3_TRAIN_PROFILE phase profile + Kineto trace per PROFILE_ROWS entry, in profile.txt (the
  # first one's trace also as trace.json.gz).
  : > "$OUT/profile.txt"
  first=1
  for cb in $PROFILE_ROWS; do
    cfg="${cb%%:*}" b="${cb##*:}"
    stamp "c3 train profile + trace ($cfg, batch $b)"
    rm -f /tmp/train_trace.json
    STEPS=8 c3_row c3-profile "$cfg" "$b" C3_TRAIN_PROFILE=1 C3_TRAIN_TRACE=/tmp/train_trace.json --
    {
      echo "== $cfg, batch $b"
      grep -h '"event":"profile"' "$LOGS/c3-profile-$cfg-b$b.train_log.jsonl"
      [ -f /tmp/train_trace.json ] && python3 scripts/device/trace_summary.py /tmp/train_trace.json
    } >> "$OUT/profile.txt" 2>&1
    if [ "$first" = 1 ] && [ -f /tmp/train_trace.json ]; then
      gzip -c /tmp/train_trace.json > "$OUT/trace.json.gz"
      (( $(stat -c %s "$OUT/trace.json.gz") > 15000000 )) && rm "$OUT/trace.json.gz"
    fi
    first=0
  done
  head -40 "$OUT/profile.txt"
fi
grep -v '"impl": "c3-profile"' "$ROWS" > "$ROWS.tmp" && mv "$ROWS.tmp" "$ROWS"

stamp "table"
python3 scripts/device/train_speed_table.py "$ROWS" --card "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" | tee "$OUT/train_speed.md"
tar -czf "$OUT/logs.tar.gz" -C "$LOGS" . 2>/dev/null
stamp done
