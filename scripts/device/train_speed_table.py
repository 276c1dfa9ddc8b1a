#!/usr/bin/env python3
"""Prints issue 16's side-by-side training-speed table from the JSON lines of train_speed.sh:
text tokens/s (MFU at the peak the rows were measured against) for c3 train, c3 train without
step graphs (C3_TRAIN_GRAPHS=0), c3 train with the old paths, a real run (lengths 64-1024 from
the whole shard, validation and checkpoints; wall-clock tokens/s), PyTorch eager and PyTorch
compile, and c3 / compile.
Usage: train_speed_table.py ROWS.jsonl [--card NAME]"""
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
card = sys.argv[sys.argv.index("--card") + 1] if "--card" in sys.argv else "?"
by = {(r["impl"], r["config"], r["batch"]): r for r in rows}
impls = [("c3", "c3 train"), ("c3-nograph", "c3, no step graphs"),
         ("c3-no-addnorm", "c3, no add+norm node"), ("c3-no-gqa", "c3, k/v repeated"),
         ("c3-ce-kernel", "c3, cross-entropy kernel"), ("c3-rotary-bthd", "c3, q/k in [B,T,H,D]"),
         ("c3-old", "c3, old paths"),
         ("c3-ckpt", "c3, act. ckpt"), ("c3-real", "c3, real run (wall)"),
         ("c3-real-nograph", "c3, real run, no graphs (wall)"),
         ("c3-real-bt", "c3, real run, --batch-tokens (wall)"),
         ("c3-real-fixed", "c3, real run, fixed 512 (wall)"),
         ("pytorch-eager", "PyTorch eager"), ("pytorch-compile", "PyTorch compile")]
impls = [(k, t) for k, t in impls if any(r["impl"] == k for r in rows)]
order = {"small": 0, "recipe": 1, "medium": 2}
keys = sorted({(r["config"], r["batch"]) for r in rows}, key=lambda k: (order.get(k[0], 9), k[1]))


def cell(r):
    return f"{r['tokens_per_sec'] / 1e3:.1f}k ({100 * r['mfu']:.1f}%)" if r else "–"


gpu = next((r["gpu"] for r in rows if r.get("gpu")), card)
print(f"Training speed on one {gpu}: fixed 512-token passages, L = 32, bf16 autocast; text "
      "tokens/s (MFU at 989 TFLOP/s)\n")
print("| config | batch | " + " | ".join(t for _, t in impls) + " | c3 / compile |")
print("|---|---:|" + "---:|" * len(impls) + "---:|")
for cfg, b in keys:
    c3, comp = by.get(("c3", cfg, b)), by.get(("pytorch-compile", cfg, b))
    ratio = f"{c3['tokens_per_sec'] / comp['tokens_per_sec']:.2f}" if c3 and comp else "–"
    print(f"| {cfg} | {b} | " + " | ".join(cell(by.get((k, cfg, b))) for k, _ in impls) + f" | {ratio} |")
firsts = [f"{r['config']} b{r['batch']} {r['first_step_s']} s" for r in rows
          if r["impl"] == "pytorch-compile" and "first_step_s" in r]
if firsts:
    print("\nPyTorch compile, first step (the compile): " + ", ".join(firsts))
