#!/usr/bin/env python3
"""Checks that HF tokenizers loads a tokenizer.json (ours, from `c3 tokenizer train`, or any
byte-level BPE one) and gives the same ids as c3 on every text of a JSONL(.xz) file.

c3's ids come from one of:
  --c3 BIN         a c3 binary: `BIN tokenize --tokenizer TOK` reads {"text"} lines on stdin;
  --bench-bin BIN  a tokenizer_bench binary (bench/tokenizer_bench.cpp, links statically, see
                   bench_tokenizer_hf.py): `BIN TOK TEXTS --dump-ids FILE`;
  --ids FILE       {"ids": [...]} lines written beforehand (c3 is deterministic and CPU-only, so
                   they can be made on another machine with `c3 tokenize < texts.jsonl`).

Usage (on the device):
    python3 scripts/device/check_tokenizer_hf.py --tokenizer tok16k.json \\
        --texts data/valid.jsonl.xz --bench-bin ./tokenizer_bench
Prints the first mismatches, then one JSON summary line; exits 1 on any mismatch.
With --c3 it also decodes HF's ids with `c3 tokenize --decode` and compares with HF's decode.
"""
import argparse
import json
import lzma
import os
import subprocess
import sys
import tempfile
import unicodedata


def read_jsonl(path):
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_c3(binary, args, lines):
    """Feeds JSON lines to `binary args...` and returns its JSON output lines."""
    p = subprocess.run([binary] + args, input="".join(json.dumps(x) + "\n" for x in lines),
                       capture_output=True, text=True, encoding="utf-8")
    if p.returncode != 0:
        sys.exit(f"{binary} {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.strip()]


def our_ids(a, texts):
    if a.c3:
        return [r["ids"] for r in run_c3(a.c3, ["tokenize", "--tokenizer", a.tokenizer],
                                         [{"text": t} for t in texts])]
    if a.bench_bin:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "ids.jsonl")
            subprocess.run([a.bench_bin, a.tokenizer, a.texts, "--threads", "1", "--repeat", "1",
                            "--dump-ids", out], check=True, stdout=subprocess.DEVNULL)
            return [r["ids"] for r in read_jsonl(out)]
    return [r["ids"] for r in read_jsonl(a.ids)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json to check")
    ap.add_argument("--texts", required=True, help="JSONL(.xz) with {\"text\": ...} lines")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--c3", help="c3 binary")
    src.add_argument("--bench-bin", help="tokenizer_bench binary")
    src.add_argument("--ids", help="c3's ids, one {\"ids\": [...]} line per text")
    ap.add_argument("--show", type=int, default=5, help="mismatches to print")
    a = ap.parse_args()

    import tokenizers
    from tokenizers import Tokenizer

    texts = [r["text"] for r in read_jsonl(a.texts)]
    tok = Tokenizer.from_file(a.tokenizer)
    hf = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
    ours = our_ids(a, texts)
    if len(ours) != len(hf):
        sys.exit(f"c3 gave {len(ours)} id lists for {len(hf)} texts")

    mismatches = 0
    for i, (h, o) in enumerate(zip(hf, ours)):
        if h == o:
            continue
        mismatches += 1
        if mismatches <= a.show:
            k = next((j for j in range(min(len(h), len(o))) if h[j] != o[j]), min(len(h), len(o)))
            pieces = [tok.id_to_token(x) for x in h[k:k + 5]]
            print(f"text {i}: first difference at token {k}: HF {h[max(0, k - 3):k + 5]} "
                  f"c3 {o[max(0, k - 3):k + 5]}; HF tokens {pieces}")

    # Decoding: HF's decode of HF's ids against the NFC text, and (with --c3) c3's decode.
    hf_text = tok.decode_batch(hf, skip_special_tokens=False)
    roundtrip_diff = sum(t != unicodedata.normalize("NFC", s) for t, s in zip(hf_text, texts))
    decode_mismatches = None
    if a.c3:
        ours_text = [r["text"] for r in run_c3(a.c3, ["tokenize", "--tokenizer", a.tokenizer,
                                                      "--decode"], [{"ids": h} for h in hf])]
        decode_mismatches = sum(x != y for x, y in zip(hf_text, ours_text))

    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_tok = sum(len(h) for h in hf)
    print(json.dumps({
        "tokenizer": a.tokenizer, "texts": a.texts, "tokenizers_version": tokenizers.__version__,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True), "docs": len(texts),
        "tokens_hf": n_tok, "tokens_c3": sum(len(o) for o in ours),
        "bytes_per_token": round(n_bytes / max(1, n_tok), 4), "id_mismatches": mismatches,
        "hf_roundtrip_differs_from_nfc": roundtrip_diff, "decode_mismatches": decode_mismatches}))
    sys.exit(1 if mismatches or decode_mismatches else 0)


if __name__ == "__main__":
    main()
