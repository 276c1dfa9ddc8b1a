"""Compresses a long document into latents, stores them in a .c3 file, loads them back and
decodes them: the whole c3 cycle from Python.

    python3 examples/compress_document.py [TEXT_FILE] [--model DIR] [--out FILE.c3] [--device cpu]

TEXT_FILE defaults to a 970-token passage of the held-out valid set (bench/data); c3 cuts any
length into chunks of the model's size (640 tokens for models/c3-small) at paragraph, sentence or
word boundaries. The .c3 file is the one `c3 decompress` reads.
"""
import argparse
import difflib
import os
import time
from pathlib import Path

import c3

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text", nargs="?", default=ROOT / "bench" / "data" / "valid-passage-970tok.txt")
    ap.add_argument("--model", default=ROOT / "models" / "c3-small")
    ap.add_argument("--out", default="document.c3")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    model = c3.Cascade.load(str(args.model), device=args.device)
    text = Path(args.text).read_text(encoding="utf-8")

    t0 = time.perf_counter()
    [latents] = model.compress([text])
    t_compress = time.perf_counter() - t0
    print(f"compressed {latents.source_tokens} tokens ({latents.source_bytes} bytes) into "
          f"{len(latents)} chunks x {latents.latent_len} latents: tensor "
          f"{tuple(latents.tensor.shape)} {latents.tensor.dtype}, {latents.ratio:.1f}x, "
          f"{t_compress:.2f} s")
    print(f"tokens per chunk: {latents.chunk_tokens}")

    latents.save(args.out, dtype="bf16")  # as `c3 compress` stores them: half the bytes of fp32
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes")

    stored = c3.Latents.load(args.out)
    t0 = time.perf_counter()
    [decoded] = model.decompress([stored])
    t_decompress = time.perf_counter() - t0
    similarity = difflib.SequenceMatcher(None, text, decoded, autojunk=False).ratio()
    print(f"decoded {len(decoded)} characters in {t_decompress:.2f} s: "
          f"{'exactly the document' if decoded == text else f'{100 * similarity:.1f}% similar'}")
    print("first 200 characters:", decoded[:200].replace("\n", " "))


if __name__ == "__main__":
    main()
