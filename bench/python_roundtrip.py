"""Times the Python round trip against the CLI's: the same text, model, device and options, both
warm. Each repeat runs the CLI once (`c3 roundtrip --jsonl` over the text twice: a warm-up line,
then the timed one) and then one Cascade.roundtrip call in this process (warmed up once at start),
so that load on the machine falls on both alike.

    PYTHONPATH=build/python python3 bench/python_roundtrip.py [TEXT] [--c3 build/c3]
        [--model models/c3-small] [--device cpu] [--repeats 5] [--beams 1]

CLI: the `seconds` field of each line (compress + decompress, load excluded). Python: the wall
time of each roundtrip() call around the binding, and its own `seconds` field.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import c3

ROOT = Path(__file__).resolve().parents[1]


def cli_roundtrip(args, jsonl: str) -> list:
    out = subprocess.run([str(args.c3), "roundtrip", "--model", str(args.model), "--device",
                          args.device, "--beams", str(args.beams), "--jsonl", jsonl],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, C3_NO_PROGRESS="1")).stdout
    return [json.loads(line) for line in out.splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text", nargs="?", default=ROOT / "bench" / "data" / "valid-passage-970tok.txt")
    ap.add_argument("--c3", default=ROOT / "build" / "c3")
    ap.add_argument("--model", default=ROOT / "models" / "c3-small")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--beams", type=int, default=1)
    args = ap.parse_args()
    text = Path(args.text).read_text(encoding="utf-8")

    model = c3.Cascade.load(str(args.model), device=args.device)
    t0 = time.perf_counter()
    [first] = model.roundtrip([text], beams=args.beams)
    py_warmup = time.perf_counter() - t0
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write((json.dumps({"text": text}) + "\n") * 2)  # a warm-up line, then the timed one
    cli_warmup, cli, py, py_wall = [], [], [], []
    for _ in range(args.repeats):  # interleaved, so load on the machine hits both alike
        w, r = cli_roundtrip(args, f.name)
        cli_warmup.append(w["seconds"])
        cli.append(r)
        t0 = time.perf_counter()
        [r] = model.roundtrip([text], beams=args.beams)
        py_wall.append(time.perf_counter() - t0)
        py.append(r)
    os.unlink(f.name)

    assert all(r["ids"] == first["ids"] for r in py + cli), "Python and the CLI decoded differently"
    med = statistics.median
    cli_s = [r["seconds"] for r in cli]
    print(f"{args.model} on {args.device}, {first['tokens']} tokens, {first['chunks']} chunks, "
          f"beams {args.beams}, char precision {first['char_precision']:.4f}; ids equal")
    print(f"warm-up call: CLI median {med(cli_warmup):.3f} s, Python {py_warmup:.3f} s")
    print(f"CLI     seconds: median {med(cli_s):.3f} of {cli_s}")
    print(f"Python  seconds: median {med([r['seconds'] for r in py]):.3f}; wall around the call: "
          f"median {med(py_wall):.3f} of {[round(x, 3) for x in py_wall]}")
    print(f"Python wall / CLI seconds: {med(py_wall) / med(cli_s):.3f}")


if __name__ == "__main__":
    main()
