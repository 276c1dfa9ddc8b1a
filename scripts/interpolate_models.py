#!/usr/bin/env python3
"""Interpolate the weights of two c3 model folders of the same architecture (model soups, WiSE-FT):
out = (1 - t) * A + t * B, tensor by tensor, in fp32, stored in B's dtypes. Configs, tokenizer and
the rest of the folder are B's. Two fine-tunes of one model often keep both their skills this way;
c3-small v10 is v9 and a run on longer passages mixed (docs/runs/2026-12-05-c3-small-v10.md).

    python3 scripts/interpolate_models.py A_DIR B_DIR --t 0.7 --out OUT_DIR

Reads and writes safetensors itself (the format is a JSON header and raw little-endian tensors),
so it needs only Python's torch for the arithmetic.
"""
import argparse
import json
import os
import shutil
import struct
import sys
import tempfile

import torch

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    tensors, meta = {}, header.pop("__metadata__", None)
    for name, h in header.items():
        if h["dtype"] not in DTYPES:
            sys.exit(f"{path}: tensor {name} has dtype {h['dtype']}; this script reads {sorted(DTYPES)}")
        a, b = h["data_offsets"]
        t = torch.frombuffer(bytearray(data[base + a:base + b]), dtype=DTYPES[h["dtype"]])
        tensors[name] = t.reshape(h["shape"])
    return tensors, meta


def write_safetensors(path, tensors, meta):
    names = sorted(tensors)
    header, offset, blobs = {}, 0, []
    code = {v: k for k, v in DTYPES.items()}
    for name in names:
        t = tensors[name].contiguous()
        blob = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": code[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    if meta is not None:
        header["__metadata__"] = meta
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def interpolate(path_a, path_b, t, out_path):
    a, _ = read_safetensors(path_a)
    b, meta = read_safetensors(path_b)
    if sorted(a) != sorted(b):
        sys.exit(f"{path_a} and {path_b} hold different tensors: {sorted(set(a) ^ set(b))[:5]}")
    out = {}
    for name, tb in b.items():
        ta = a[name]
        if ta.shape != tb.shape:
            sys.exit(f"{name}: shape {list(ta.shape)} in {path_a}, {list(tb.shape)} in {path_b}")
        out[name] = ((1 - t) * ta.float() + t * tb.float()).to(tb.dtype)
    write_safetensors(out_path, out, meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--t", type=float, required=True, help="weight of B, in [0, 1]")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not 0 <= args.t <= 1:
        sys.exit("--t must be in [0, 1]")
    def weight_files(root):
        return sorted(os.path.relpath(os.path.join(d, f), root)
                      for d, _, fs in os.walk(root) for f in fs if f.endswith(".safetensors"))
    files = weight_files(args.b)
    if not files:
        sys.exit(f"{args.b}: no .safetensors files")
    if weight_files(args.a) != files:
        sys.exit(f"{args.a} and {args.b} hold different weight files ({weight_files(args.a)} and "
                 f"{files}): interpolate two models of the same architecture")
    work = tempfile.mkdtemp(prefix=".interp-", dir=os.path.dirname(os.path.abspath(args.out)))
    shutil.copytree(args.b, work, dirs_exist_ok=True)  # B's configs and tokenizer
    try:
        for rel in files:
            interpolate(os.path.join(args.a, rel), os.path.join(args.b, rel), args.t, os.path.join(work, rel))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # nothing half-written is left behind
        raise
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.replace(work, args.out)
    print(f"{args.out}: {1 - args.t:g} x {args.a} + {args.t:g} x {args.b} ({len(files)} files)")


if __name__ == "__main__":
    main()
