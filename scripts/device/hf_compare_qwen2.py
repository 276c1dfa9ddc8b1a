#!/usr/bin/env python3
"""Runs HF transformers' Qwen2ForCausalLM on the golden Qwen2 checkpoints (fp32 and bf16, CUDA) and
writes what c3 is compared against: one OUT/<model>.safetensors per checkpoint with
{f32,bf16}_single_logits, _batch_logits (fp32 tensors), _greedy_out (16 ids) and _ngram3_out
(40 ids, no_repeat_ngram_size=3), from the inputs in <model>/expected.safetensors.

With --c3 BIN it also runs `BIN generate --device cuda` in both dtypes and compares its ids with
HF's and with the golden ones. Prints a short table; the C++ side of the comparison is the
CompareWithHF test in tests/model_qwen2_test.cpp (C3_HF_LOGITS=OUT).

Usage (on the device, from the repo root):
    python3 scripts/device/hf_compare_qwen2.py --testdata ../shared/testdata --out /tmp/hf \\
        --c3 build-gpu/c3
"""
import argparse
import json
import os
import subprocess
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import Qwen2ForCausalLM

MODELS = ["qwen2-tied-gqa", "qwen2-untied-mha-sharded", "qwen2-bf16-mqa"]
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def hf_outputs(model_dir, exp, dtype, device):
    m = Qwen2ForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="eager")
    m = m.to(device).eval()
    out = {}
    with torch.no_grad():
        single = exp["single_ids"][None].to(device)
        out["single_logits"] = m(single).logits[0].float().cpu()
        out["batch_logits"] = m(exp["batch_ids"].to(device)).logits.float().cpu()
        for key, n, ngram in (("greedy", 16, 0), ("ngram3", 40, 3)):
            prompt = exp[f"{key}_prompt"][None].to(device)
            ids = m.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                             max_new_tokens=n, min_new_tokens=n, no_repeat_ngram_size=ngram,
                             pad_token_id=0)
            out[f"{key}_out"] = ids[0, prompt.shape[1]:].cpu()
    return out


def c3_generate(binary, model_dir, prompt, n, ngram, tag):
    cmd = [binary, "generate", "--model", model_dir, "--ids", ",".join(map(str, prompt)),
           "--max-new-tokens", str(n), "--no-repeat-ngram", str(ngram), "--device", "cuda",
           "--dtype", tag]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--testdata", default="../shared/testdata")
    ap.add_argument("--out", required=True)
    ap.add_argument("--c3", help="a c3 binary: also compare `c3 generate --device cuda`")
    a = ap.parse_args()
    device = "cuda"
    os.makedirs(a.out, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.cuda.get_device_name(0)}")
    print("| model | dtype | HF-golden single | HF-golden batch | HF greedy=golden | "
          "HF ngram3=golden | c3 generate greedy=HF | c3 ngram3=HF |")
    print("|---|---|---|---|---|---|---|---|")
    bad = False
    for name in MODELS:
        model_dir = os.path.join(a.testdata, "qwen2", name)
        exp = load_file(os.path.join(model_dir, "expected.safetensors"))
        tensors = {}
        for tag, dtype in DTYPES.items():
            out = hf_outputs(model_dir, exp, dtype, device)
            for k, v in out.items():
                tensors[f"{tag}_{k}"] = v.contiguous()
            d_single = (out["single_logits"] - exp["single_logits"]).abs().max().item()
            d_batch = (out["batch_logits"] - exp["batch_logits"]).abs().max().item()
            g_gold = out["greedy_out"].tolist() == exp["greedy_out"].tolist()
            n_gold = out["ngram3_out"].tolist() == exp["ngram3_out"].tolist()
            c3_g = c3_n = "-"
            if a.c3:
                g = c3_generate(a.c3, model_dir, exp["greedy_prompt"].tolist(), 16, 0, tag)
                n = c3_generate(a.c3, model_dir, exp["ngram3_prompt"].tolist(), 40, 3, tag)
                c3_g = "yes" if g == out["greedy_out"].tolist() else "NO"
                c3_n = "yes" if n == out["ngram3_out"].tolist() else "NO"
                bad |= tag == "f32" and "NO" in (c3_g, c3_n)
            print(f"| {name} | {tag} | {d_single:.3g} | {d_batch:.3g} | {'yes' if g_gold else 'NO'}"
                  f" | {'yes' if n_gold else 'NO'} | {c3_g} | {c3_n} |")
        save_file(tensors, os.path.join(a.out, f"{name}.safetensors"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
