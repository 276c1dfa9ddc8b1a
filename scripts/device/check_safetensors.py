#!/usr/bin/env python3
"""Shows that Python `safetensors` loads what c3 writes: every golden .safetensors file (plus one
with all 10 dtypes made here) goes through `c3 safetensors rewrite`, then load_file must return
bitwise-equal tensors and the same metadata.

Usage (on the device, after building c3):
    python3 scripts/device/check_safetensors.py build/c3 [--testdata ../shared/testdata]
Prints one line per file; exits 1 on any mismatch.
"""
import argparse
import pathlib
import struct
import subprocess
import sys
import tempfile

import safetensors
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

REPO = pathlib.Path(__file__).resolve().parents[2]

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
          torch.int16, torch.int8, torch.uint8, torch.bool]


def make_all_dtypes(path):
    """Random bytes viewed as each dtype: NaN payloads, infinities, -0 and subnormals included."""
    g = torch.Generator().manual_seed(7)
    tensors = {}
    for dt in DTYPES:
        name = str(dt).replace("torch.", "")
        if dt == torch.bool:
            tensors[name] = torch.randint(0, 2, (4, 3), generator=g, dtype=torch.uint8).bool()
        else:
            size = torch.empty((), dtype=dt).element_size()
            raw = torch.randint(0, 256, (3 * 5 * size,), generator=g, dtype=torch.uint8)
            tensors[name] = raw.view(dt).view(3, 5)
    tensors["scalar_f64"] = torch.tensor(2.5, dtype=torch.float64)
    tensors["empty_f32"] = torch.zeros(0, 3)
    save_file(tensors, str(path), metadata={"format": "pt", "made_by": "check_safetensors.py"})


def as_bytes(t):
    # reshape(-1) first: a 0-dim tensor cannot be viewed as another dtype.
    return t.contiguous().reshape(-1).view(torch.uint8)


def metadata_of(path):
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def check(c3, src, out):
    """Returns "" when c3's rewrite of `src` loads back identical, else what differs."""
    r = subprocess.run([str(c3), "safetensors", "rewrite", str(src), str(out)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"c3 rewrite failed (rc {r.returncode}): {r.stderr.strip()}"
    with open(out, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
    if n % 8:
        return f"header length {n} is not a multiple of 8"
    want, got = load_file(str(src)), load_file(str(out))
    if set(want) != set(got):
        return f"tensor names differ: missing {sorted(set(want) - set(got))}, " \
               f"extra {sorted(set(got) - set(want))}"
    for name, a in want.items():
        b = got[name]
        if a.dtype != b.dtype or a.shape != b.shape:
            return f"{name}: {a.dtype}{list(a.shape)} became {b.dtype}{list(b.shape)}"
        if not torch.equal(as_bytes(a), as_bytes(b)):
            return f"{name}: values differ"
    if metadata_of(src) != metadata_of(out):
        return f"metadata {metadata_of(src)} became {metadata_of(out)}"
    return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("c3", help="path of the c3 binary")
    ap.add_argument("--testdata", default=str(REPO.parent / "shared" / "testdata"),
                    help="golden data folder (default: ../shared/testdata)")
    args = ap.parse_args()

    c3 = pathlib.Path(args.c3).resolve()
    files = sorted(pathlib.Path(args.testdata).rglob("*.safetensors"))
    if not files:
        sys.exit(f"no .safetensors files under {args.testdata}; pass --testdata")

    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        made = tmp / "all_dtypes.safetensors"
        make_all_dtypes(made)
        for i, src in enumerate([made] + files):
            why = check(c3, src, tmp / f"out{i}.safetensors")
            n = len(load_file(str(src)))
            label = src.name if src == made else str(src.relative_to(args.testdata))
            print(f"{'OK  ' if not why else 'FAIL'} {label}: {n} tensors"
                  + (f", metadata {metadata_of(src)} kept" if not why else f": {why}"))
            failed += bool(why)
    print(f"{len(files) + 1 - failed}/{len(files) + 1} files load back bitwise equal in Python "
          f"safetensors {safetensors.__version__} (torch {torch.__version__})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
