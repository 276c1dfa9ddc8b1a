"""Evaluates a model: character precision against compression ratio on held-out text, per
passage-length bin, and a plot of it with matplotlib when that is installed.

    python3 examples/evaluate_model.py [--model DIR] [--data FILE.jsonl.xz] [--bins 32-96,...]
                                       [--per-bin 8] [--docs 200] [--plot precision.png]

--data is JSON lines of {"text": ...} (plain or .xz); the default is the held-out valid set in
../shared/data/corpus. c3.evaluate returns the report of `c3 eval --json` as a dict.
"""
import argparse
import json
import lzma
from pathlib import Path

import c3

ROOT = Path(__file__).resolve().parents[1]


def read_texts(path: Path, limit: int) -> list:
    opener = lzma.open if path.suffix == ".xz" else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if len(texts) == limit:
                break
    return texts


def plot(report: dict, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (apt-get install python3-matplotlib)")
        return
    bins = [b for b in report["bins"] if b["n"] > 0]
    ratio = [b["ratio"] for b in bins]
    precision = [100 * b["char_precision"] for b in bins]
    ci = [100 * (b["char_precision_ci95"] or 0) for b in bins]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(ratio, precision, yerr=ci, marker="o", capsize=3, label=Path(report["model"]).name)
    ax.set_xlabel("compression ratio (text tokens per latent)")
    ax.set_ylabel("character precision (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=ROOT / "models" / "c3-small")
    ap.add_argument("--data", default=ROOT.parent / "shared" / "data" / "corpus" / "valid.jsonl.xz")
    ap.add_argument("--bins", default="32-96,96-160,160-224,288-352,608-672")
    ap.add_argument("--per-bin", type=int, default=8)
    ap.add_argument("--docs", type=int, default=200, help="documents read at most")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--plot", default="precision.png")
    args = ap.parse_args()

    model = c3.Cascade.load(str(args.model), device=args.device)
    texts = read_texts(Path(args.data), args.docs)
    report = c3.evaluate(model, texts, bins=args.bins, per_bin=args.per_bin)
    print(f"{report['model']}: L = {report['latents']}, {report['data']}")
    print(f"{'bin':>10} {'n':>3} {'ratio':>6} {'precision':>10} {'exact':>6} {'seconds':>8}")
    for b in report["bins"]:
        if b["n"] == 0:
            print(f"{b['bin']:>10}   0  (no passage of this length in the texts)")
            continue
        print(f"{b['bin']:>10} {b['n']:>3} {b['ratio']:>5.1f}x {100 * b['char_precision']:>9.2f}% "
              f"{100 * b['exact_match']:>5.0f}% {b['seconds']:>8.1f}")
    plot(report, args.plot)


if __name__ == "__main__":
    main()
