#!/usr/bin/env python3
"""Plots a training-speed call's figures (scripts/device/train_speed.sh's train_speed.jsonl): text
tokens/s of c3 and PyTorch, eager and compiled, one group of bars per config and batch, on a log
scale. Needs matplotlib (Debian: python3-matplotlib).

    python3 scripts/plot_train_speed.py train_speed.jsonl --out speed.png [--title "..."]
"""
import argparse
import json
import sys

from plot_eval_reports import pyplot

BARS = [("c3", "c3 train"), ("c3-nograph", "c3, no step graphs"), ("pytorch-eager", "PyTorch eager"),
        ("pytorch-compile", "PyTorch torch.compile")]
CONFIGS = {"small": 0, "recipe": 1, "medium": 2}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows", help="train_speed.jsonl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="training speed: text tokens/s (higher is better)")
    args = ap.parse_args()
    plt = pyplot()
    try:
        rows = [json.loads(l) for l in open(args.rows) if l.strip().startswith("{")]
        by = {(r["impl"], r["config"], r["batch"]): r["tokens_per_sec"] for r in rows}
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"{args.rows}: not a train_speed.jsonl ({e})")
    groups = sorted({(c, b) for (_, c, b) in by if c in CONFIGS}, key=lambda k: (CONFIGS[k[0]], k[1]))
    bars = [(k, label) for k, label in BARS if any((k, c, b) in by for c, b in groups)]
    if not groups or not bars:
        sys.exit(f"{args.rows}: no c3 or PyTorch rows to plot")
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(10, 4.8))
    for i, (k, label) in enumerate(bars):
        xs = [g + (i - (len(bars) - 1) / 2) * width for g in range(len(groups))]
        ys = [by.get((k, c, b), 0) / 1e3 for c, b in groups]
        ax.bar(xs, ys, width, label=label)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{c}\nbatch {b}" for c, b in groups])
    ax.set_yscale("log")
    ax.set_ylabel("thousand text tokens/s")
    ax.set_title(args.title)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
