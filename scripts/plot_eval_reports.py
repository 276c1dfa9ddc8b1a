#!/usr/bin/env python3
"""Plots char precision against compression ratio for several `c3 eval --json` reports, one line
per model (a label per group of reports; a model's bins may come from several reports), with the
paper's points for reference. Needs matplotlib (Debian: python3-matplotlib).

    python3 scripts/plot_eval_reports.py --series "v9=a.json,b.json" --series "v10=c.json,d.json" \
        --out precision.png [--title "..."]
"""
import argparse
import json
import sys

# The paper's table (C3-SPEC.md): char precision at a ratio, 32 latents.
PAPER_32 = [(21.0, 0.997), (26.4, 0.988), (33.0, 0.988), (39.4, 0.933)]


def pyplot():
    """matplotlib.pyplot drawing to files (Agg), or an exit that says what to install."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("matplotlib is not installed (Debian: apt install python3-matplotlib)")
    return plt


def points(paths):
    by_ratio = {}
    for path in paths:
        try:
            report = json.load(open(path))
            for b in report["bins"]:
                by_ratio[round(b["ratio"], 2)] = (b["ratio"], b["char_precision"], b.get("char_precision_ci95", 0))
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"{path}: not a `c3 eval --json` report ({e})")
    return [by_ratio[k] for k in sorted(by_ratio)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", action="append", required=True, help="LABEL=report.json[,report.json...]")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="char precision against compression ratio (valid, greedy)")
    args = ap.parse_args()
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for spec in args.series:
        label, _, files = spec.partition("=")
        if not files:
            sys.exit(f"--series {spec!r}: expected LABEL=report.json[,...]")
        pts = points(files.split(","))
        ax.errorbar([p[0] for p in pts], [100 * p[1] for p in pts], yerr=[100 * p[2] for p in pts],
                    marker="o", capsize=3, label=label)
    ax.plot([p[0] for p in PAPER_32], [100 * p[1] for p in PAPER_32], "k^--", label="paper C3, 32 latents")
    ax.set_xlabel("compression ratio (text tokens per latent)")
    ax.set_ylabel("char precision (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.set_title(args.title, fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
