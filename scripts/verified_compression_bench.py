#!/usr/bin/env python3
"""Verified compression on a sample of valid documents: plain `c3 compress` against
`--min-precision P`, each decompressed with `c3 decompress --reference` (ratio, char precision,
exact documents, CPU seconds of each c3 process, model loading included). Prints a markdown table; writes per-document JSON lines.

Usage: scripts/verified_compression_bench.py [--docs 24] [--out DIR] [--c3 build/c3]
                                             [--model models/c3-small] [--chunk-tokens 0] [--beams 1]
Runs one c3 process at a time (each decodes on one thread).
"""
import argparse
import json
import lzma
import os
import re
import resource
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    """Runs cmd; returns its stderr and the CPU seconds (user + sys) it used. CPU time, not wall
    time: on a shared machine the wall clock measures the neighbours' load too."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, C3_NO_PROGRESS="1"))
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return p.stderr, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def sample_docs(path, n):
    with lzma.open(path, "rt", encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f if line.strip()]
    step = max(1, len(docs) // n)
    return [(i, docs[i]) for i in range(0, len(docs), step)][:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=24)
    ap.add_argument("--out", default="/tmp/verified_bench")
    ap.add_argument("--c3", default=os.path.join(ROOT, "build", "c3"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "c3-small"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "corpus", "valid.jsonl.xz"))
    ap.add_argument("--chunk-tokens", default="0")
    ap.add_argument("--levels", default="plain,0.99,1.0")
    ap.add_argument("--beams", default="1", help="beam search for compress's check and decompress")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    levels = args.levels.split(",")
    rows = []
    log = open(os.path.join(args.out, "docs.jsonl"), "w")
    for idx, text in sample_docs(args.data, args.docs):
        src = os.path.join(args.out, f"doc{idx}.txt")
        with open(src, "w", encoding="utf-8") as f:
            f.write(text)
        rec = {"doc": idx, "chars": len(text)}
        for lv in levels:
            c3f = os.path.join(args.out, f"doc{idx}-{lv}.c3")
            cmd = [args.c3, "compress", "--model", args.model, src, "-o", c3f,
                   "--chunk-tokens", args.chunk_tokens, "--beams", args.beams]
            if lv != "plain":
                cmd += ["--min-precision", lv]
            err, t_c = run(cmd)
            if lv == "plain":
                m = re.search(r": (\d+) tokens in (\d+) chunks -> (\d+) latents", err)
                tokens, slots, plain_chunks = int(m[1]), int(m[3]), 0
                encodes = int(m[2])
            else:
                m = re.search(r": (\d+) tokens -> (\d+) chunks as latents \+ (\d+) as plain tokens "
                              r"\((\d+) tokens\) = (\d+) slots.*?(\d+) chunk encodings", err)
                tokens, slots, plain_chunks, encodes = int(m[1]), int(m[5]), int(m[3]), int(m[6])
            err, t_d = run([args.c3, "decompress", "--model", args.model, c3f, "-o", c3f + ".txt",
                            "--reference", src, "--beams", args.beams])
            m = re.search(r"char precision ([\d.]+)% against .* \((exact|not exact)\)", err)
            rec[lv] = {"tokens": tokens, "slots": slots, "plain_chunks": plain_chunks,
                       "encodes": encodes, "compress_cpu_s": round(t_c, 3), "decompress_cpu_s": round(t_d, 3),
                       "char_precision": float(m[1]) / 100, "exact": m[2] == "exact"}
        rows.append(rec)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        print(json.dumps(rec), flush=True)

    print("\n| setting | docs | tokens | slots | ratio | plain chunks | char precision (mean) | "
          "lowest | exact docs | compress CPU s | decompress CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lv in levels:
        rs = [r[lv] for r in rows]
        tok = sum(r["tokens"] for r in rs)
        slots = sum(r["slots"] for r in rs)
        name = "plain compress" if lv == "plain" else f"--min-precision {lv}"
        print(f"| {name} | {len(rs)} | {tok} | {slots} | {tok / slots:.2f}x | "
              f"{sum(r['plain_chunks'] for r in rs)} | "
              f"{100 * sum(r['char_precision'] for r in rs) / len(rs):.2f}% | "
              f"{100 * min(r['char_precision'] for r in rs):.2f}% | "
              f"{sum(r['exact'] for r in rs)}/{len(rs)} | "
              f"{sum(r['compress_cpu_s'] for r in rs):.1f} | {sum(r['decompress_cpu_s'] for r in rs):.1f} |")


if __name__ == "__main__":
    main()
