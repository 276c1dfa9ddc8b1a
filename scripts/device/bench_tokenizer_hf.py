#!/usr/bin/env python3
"""Encoding speed on one machine's CPU: HF tokenizers, tiktoken and c3, 1 thread and all threads,
on the same texts with the same tokenizer.json (the Qwen one by default). MB = 10^6 bytes of
UTF-8 text; every number is the best of --repeat passes after one warm-up pass (HF's and
tiktoken's caches stay warm; c3 also reports its cold first pass).

c3 runs as `c3 tokenize --bench` (--c3 BIN) or as bench/tokenizer_bench (--c3-bench BIN); both
use the same code. Where c3 itself cannot be built, build tokenizer_bench statically (x86-64)
and carry it:
    g++ -std=c++17 -O2 -static -DFMT_HEADER_ONLY -Isrc bench/tokenizer_bench.cpp \\
        src/tokenizer/*.cpp src/util/*.cpp -lpcre2-8 -lutf8proc -llzma -lxxhash -pthread \\
        -o tools/tokenizer_bench

Usage (on the device; copy the Qwen tokenizer.json and valid.jsonl.xz into the tree first):
    python3 scripts/device/bench_tokenizer_hf.py --tokenizer data/qwen/tokenizer.json \\
        --texts data/valid.jsonl.xz --c3-bench tools/tokenizer_bench
Prints one JSON line per (implementation, threads), then a table with c3 / HF ratios.
tiktoken gets the same vocabulary as mergeable ranks (its BPE merges by token id, and it does no
NFC), so its ids can differ from HF's; the line says how many texts differ.
"""
import argparse
import json
import lzma
import os
import subprocess
import sys
import time


def read_texts(path):
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def timed(fn, repeat):
    """Runs fn once to warm up, then `repeat` times; returns (best seconds, last result)."""
    out = fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def worker_hf(a, texts, threads):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(a.tokenizer)
    rows = []
    variants = {"hf_encode_batch": lambda: tok.encode_batch(texts, add_special_tokens=False)}
    if hasattr(tok, "encode_batch_fast"):  # no offsets: HF's fastest path
        variants["hf_encode_batch_fast"] = lambda: tok.encode_batch_fast(
            texts, add_special_tokens=False)
    if threads == 1:
        variants["hf_encode_loop"] = lambda: [tok.encode(t, add_special_tokens=False)
                                              for t in texts]
    for name, fn in variants.items():
        secs, encs = timed(fn, a.repeat)
        rows.append({"impl": name, "threads": threads, "seconds": secs,
                     "tokens": sum(len(e.ids) for e in encs)})
    return rows


def tiktoken_encoding(path):
    """The tokenizer.json vocabulary as a tiktoken Encoding (ranks = ids)."""
    import tiktoken
    j = json.load(open(path, encoding="utf-8"))
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    char_to_byte = {chr(c): b for b, c in zip(bs, cs)}
    ranks = {bytes(char_to_byte[ch] for ch in tok): i for tok, i in j["model"]["vocab"].items()}
    pat = None
    pre = j["pre_tokenizer"]
    for p in pre.get("pretokenizers", [pre]):
        if p["type"] == "Split":
            pat = p["pattern"]["Regex"]
    special = {t["content"]: t["id"] for t in j["added_tokens"]}
    return tiktoken.Encoding(name="c3_bench", pat_str=pat, mergeable_ranks=ranks,
                             special_tokens=special)


def worker_tiktoken(a, texts, threads):
    enc = tiktoken_encoding(a.tokenizer)
    if threads == 1:
        fn = lambda: [enc.encode_ordinary(t) for t in texts]
    else:
        fn = lambda: enc.encode_ordinary_batch(texts, num_threads=threads)
    secs, ids = timed(fn, a.repeat)
    from tokenizers import Tokenizer
    hf = [e.ids for e in Tokenizer.from_file(a.tokenizer).encode_batch(
        texts, add_special_tokens=False)]
    return [{"impl": "tiktoken", "threads": threads, "seconds": secs,
             "tokens": sum(map(len, ids)), "texts_differing_from_hf":
             sum(x != y for x, y in zip(ids, hf))}]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--texts", required=True, help="JSONL(.xz) with {\"text\": ...} lines")
    ap.add_argument("--c3", help="c3 binary (runs `c3 tokenize --bench`)")
    ap.add_argument("--c3-bench", help="tokenizer_bench binary (see the docstring)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="the 'all threads' count")
    ap.add_argument("--no-tiktoken", action="store_true")
    ap.add_argument("--worker", choices=["hf", "tiktoken"], help=argparse.SUPPRESS)
    ap.add_argument("--worker-threads", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    texts = read_texts(a.texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)

    if a.worker:  # one process per thread count: rayon's pool size is fixed at first use
        fn = worker_hf if a.worker == "hf" else worker_tiktoken
        for r in fn(a, texts, a.worker_threads):
            print(json.dumps(r))
        return

    rows = []
    for threads in sorted({1, a.threads}):
        for w in ["hf"] + ([] if a.no_tiktoken else ["tiktoken"]):
            env = dict(os.environ, RAYON_NUM_THREADS=str(threads), RAYON_RS_NUM_CPUS=str(threads),
                       TOKENIZERS_PARALLELISM="true")
            p = subprocess.run([sys.executable, __file__, "--tokenizer", a.tokenizer, "--texts",
                                a.texts, "--repeat", str(a.repeat), "--worker", w,
                                "--worker-threads", str(threads)],
                               env=env, capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{w} worker failed: {p.stderr.strip()[-2000:]}", file=sys.stderr)
                continue
            rows += [json.loads(line) for line in p.stdout.splitlines()]
    c3_lines = []
    if a.c3_bench:
        p = subprocess.run([a.c3_bench, a.tokenizer, a.texts, "--threads", f"1,{a.threads}",
                            "--repeat", str(a.repeat + 1)], capture_output=True, text=True,
                           check=True)
        c3_lines = p.stdout.splitlines()
    elif a.c3:
        for threads in sorted({1, a.threads}):
            p = subprocess.run([a.c3, "tokenize", "--tokenizer", a.tokenizer, "--bench", a.texts,
                                "--threads", str(threads), "--repeat", str(a.repeat + 1)],
                               capture_output=True, text=True, check=True)
            c3_lines += p.stdout.splitlines()
    for line in c3_lines:
        if line.strip():
            r = json.loads(line)
            rows.append({"impl": "c3", "threads": r["threads"], "seconds": r["best_s"],
                         "tokens": r["tokens"], "cold_mb_per_s": r["cold_mb_per_s"],
                         "cpu_mb_per_s": r["cpu_mb_per_s"]})

    for r in rows:
        r["mb_per_s"] = round(n_bytes / r["seconds"] / 1e6, 2)
        r["tokens_per_s"] = round(r["tokens"] / r["seconds"])
        r.update(docs=len(texts), bytes=n_bytes, cpu_count=os.cpu_count())
        print(json.dumps(r))
    print(f"\n{'impl':24} {'threads':>7} {'MB/s':>9} {'tokens/s':>12} {'tokens':>9}")
    for r in rows:
        print(f"{r['impl']:24} {r['threads']:7d} {r['mb_per_s']:9.2f} {r['tokens_per_s']:12,d} "
              f"{r['tokens']:9d}")
    for threads in sorted({1, a.threads}):
        c3 = [r for r in rows if r["impl"] == "c3" and r["threads"] == threads]
        hf = [r for r in rows if r["impl"].startswith("hf_") and r["threads"] == threads]
        if c3 and hf:
            best = max(hf, key=lambda r: r["mb_per_s"])
            print(f"c3 / best HF ({best['impl']}) at {threads} thread(s): "
                  f"{c3[0]['mb_per_s'] / best['mb_per_s']:.2f}x")


if __name__ == "__main__":
    main()
