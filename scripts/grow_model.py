#!/usr/bin/env python3
"""Grows a trained c3 model folder into a wider and deeper one that computes the same function,
as a start for training the larger shape (function-preserving growth, after Net2Net, arXiv
1511.05641): the larger cascade begins where the smaller one stopped instead of from noise.

    python3 scripts/grow_model.py models/c3-small --encoder-config configs/recipe-encoder.json \\
        --decoder-config configs/recipe-decoder.json --out /tmp/grown [--dtype f32|bf16]

How the function stays the same (Qwen2 layers, pre-norm residual):
- The residual stream gains dimensions that start at zero and stay zero: the embeddings, the
  query embeddings Q and every write into the stream (o_proj, down_proj, mm_projector rows) are
  zero there, and new heads and MLP units write nothing (zero o_proj columns, down_proj columns).
- RMSNorm divides by the root mean square over all dimensions, which the zeros lower by
  sqrt(C_old / C_new); its weights are multiplied by that factor to make up for it, and its eps
  by C_old / C_new, so that rsqrt(mean(x^2) + eps) scales by exactly that factor too.
- New layers are identities: their o_proj and down_proj are zero. The source layers keep their
  order, spread evenly among them.
- What reads the new dimensions or feeds the new heads and units (q/k/v, gate/up, the projector's
  new columns) starts random (--init-std), so that training has gradients to follow.
Head size and the heads per KV head must stay the same; the vocabulary too. With --dtype f32 the
grown model gives the same ids as the source up to fp32 rounding; bf16 rounds the rescaled norms.
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interpolate_models import read_safetensors, write_safetensors  # noqa: E402

DIMS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads")


def fail(msg):
    sys.exit(f"grow_model: {msg}")


def shape_of(cfg, where):
    try:
        s = {k: int(cfg[k]) for k in DIMS}
    except KeyError as e:
        fail(f"{where}: no {e.args[0]}")
    s["head_dim"] = s["hidden_size"] // s["num_attention_heads"]
    s["group"] = s["num_attention_heads"] // s["num_key_value_heads"]
    return s


def check_growth(src, dst, where):
    for k in DIMS:
        if dst[k] < src[k]:
            fail(f"{where}: {k} would shrink from {src[k]} to {dst[k]}; this script only grows")
    for k in ("head_dim", "group"):
        if dst[k] != src[k]:
            fail(f"{where}: {k} must stay {src[k]} (the target has {dst[k]}): heads are kept whole")


class Grower:
    """Places old tensors in the corners of new ones; `rand` fills what only feeds new parts."""

    def __init__(self, std, seed):
        self.std = std
        self.gen = torch.Generator().manual_seed(seed)

    def rand(self, *shape):
        return torch.randn(*shape, generator=self.gen) * self.std

    @staticmethod
    def zeros(*shape):
        return torch.zeros(*shape)

    @staticmethod
    def place(new, old):
        new[tuple(slice(0, n) for n in old.shape)] = old
        return new


def grow_layer(old, s, d, g, prefix):
    """One decoder layer's tensors at the target shape; `old` is None for a new identity layer."""
    scale = math.sqrt(s["hidden_size"] / d["hidden_size"])
    C, I, hd = d["hidden_size"], d["intermediate_size"], d["head_dim"]
    rows = {"q": d["num_attention_heads"] * hd, "k": d["num_key_value_heads"] * hd,
            "v": d["num_key_value_heads"] * hd}
    out = {}
    get = (lambda k: old[prefix + k]) if old is not None else (lambda k: None)

    def keep(new, k):
        o = get(k)
        return new if o is None else g.place(new, o)

    for norm in ("input_layernorm", "post_attention_layernorm"):
        w = torch.ones(C)
        o = get(f"{norm}.weight")
        if o is not None:
            w[:o.numel()] = o
        out[f"{norm}.weight"] = w * scale
    for p in ("q", "k", "v"):
        out[f"self_attn.{p}_proj.weight"] = keep(g.rand(rows[p], C), f"self_attn.{p}_proj.weight")
        out[f"self_attn.{p}_proj.bias"] = keep(g.zeros(rows[p]), f"self_attn.{p}_proj.bias")
    out["self_attn.o_proj.weight"] = keep(g.zeros(C, rows["q"]), "self_attn.o_proj.weight")
    out["mlp.gate_proj.weight"] = keep(g.rand(I, C), "mlp.gate_proj.weight")
    out["mlp.up_proj.weight"] = keep(g.rand(I, C), "mlp.up_proj.weight")
    out["mlp.down_proj.weight"] = keep(g.zeros(C, I), "mlp.down_proj.weight")
    return out


def grow_lm(t, s, d, g):
    """A Qwen2 model's `model.*` tensors (embeddings, layers, final norm) at the target shape."""
    C = d["hidden_size"]
    out = {}
    emb = t.pop("model.embed_tokens.weight")
    out["model.embed_tokens.weight"] = g.place(g.zeros(emb.shape[0], C), emb)
    if "lm_head.weight" in t:
        head = t.pop("lm_head.weight")
        out["lm_head.weight"] = g.place(g.zeros(head.shape[0], C), head)
    norm = torch.ones(C)
    old_norm = t.pop("model.norm.weight")
    norm[:old_norm.numel()] = old_norm
    out["model.norm.weight"] = norm * math.sqrt(s["hidden_size"] / C)
    n_old, n_new = s["num_hidden_layers"], d["num_hidden_layers"]
    at = {round(i * n_new / n_old): i for i in range(n_old)}  # target index -> source layer
    for j in range(n_new):
        i = at.get(j)
        prefix = f"model.layers.{i}."
        old = {k: t.pop(k) for k in [k for k in t if k.startswith(prefix)]} if i is not None else None
        for k, v in grow_layer(old, s, d, g, prefix).items():
            out[f"model.layers.{j}.{k}"] = v
    return out


def grow_root_extras(t, enc_s, enc_d, dec_s, dec_d, g):
    """The cascade's own tensors: the query embeddings Q [L, C_enc] and the projector
    [C_dec, C_enc] from encoder to decoder."""
    out = {}
    q = t.pop("model.Q.weight")
    out["model.Q.weight"] = g.place(g.zeros(q.shape[0], enc_d["hidden_size"]), q)
    w = t.pop("model.mm_projector.weight")
    new = g.zeros(dec_d["hidden_size"], enc_d["hidden_size"])
    new[:dec_s["hidden_size"], enc_s["hidden_size"]:] = g.rand(dec_s["hidden_size"],
                                                               enc_d["hidden_size"] - enc_s["hidden_size"])
    out["model.mm_projector.weight"] = g.place(new, w)
    b = t.pop("model.mm_projector.bias")
    out["model.mm_projector.bias"] = g.place(g.zeros(dec_d["hidden_size"]), b)
    return out


def grown_config(cfg, target):
    out = dict(cfg)
    out["rms_norm_eps"] = float(cfg.get("rms_norm_eps", 1e-6)) * cfg["hidden_size"] / target["hidden_size"]
    for k in DIMS:
        out[k] = int(target[k])
    return out


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"cannot read {path}: {e}")


def grow(src_dir, enc_cfg_path, dec_cfg_path, out_dir, dtype, std, seed):
    root_cfg = load_json(os.path.join(src_dir, "config.json"))
    enc_cfg = load_json(os.path.join(src_dir, "llm1", "config.json"))
    enc_s, dec_s = shape_of(enc_cfg, f"{src_dir}/llm1/config.json"), shape_of(root_cfg, f"{src_dir}/config.json")
    enc_d, dec_d = shape_of(load_json(enc_cfg_path), enc_cfg_path), shape_of(load_json(dec_cfg_path), dec_cfg_path)
    check_growth(enc_s, enc_d, "encoder")
    check_growth(dec_s, dec_d, "decoder")
    g = Grower(std, seed)
    files = {}
    for rel, s, d in (("llm1/model.safetensors", enc_s, enc_d), ("model.safetensors", dec_s, dec_d)):
        path = os.path.join(src_dir, rel)
        if not os.path.isfile(path):
            fail(f"{path}: missing (grow a model folder with one weight file per LLM)")
        t, meta = read_safetensors(path)
        t = {k: v.float() for k, v in t.items()}
        out = grow_root_extras(t, enc_s, enc_d, dec_s, dec_d, g) if rel == "model.safetensors" else {}
        out.update(grow_lm(t, s, d, g))
        if t:
            fail(f"{path}: tensors this script does not know how to grow: {sorted(t)[:5]}")
        files[rel] = ({k: v.to(dtype).contiguous() for k, v in out.items()}, meta)
    parent = os.path.dirname(os.path.abspath(out_dir)) or "."
    work = tempfile.mkdtemp(prefix=".grow-", dir=parent)
    os.chmod(work, 0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        os.makedirs(os.path.join(work, "llm1"))
        for rel, (tensors, meta) in files.items():
            write_safetensors(os.path.join(work, rel), tensors, meta)
        name = "F32" if dtype == torch.float32 else "BF16"
        root = grown_config(root_cfg, dec_d)
        root["contexts_compression_llm_hidden_size"] = enc_d["hidden_size"]
        enc = grown_config(enc_cfg, enc_d)
        for cfg in (root, enc):
            cfg["torch_dtype"] = cfg["dtype"] = "float32" if name == "F32" else "bfloat16"
        with open(os.path.join(work, "config.json"), "w") as f:
            json.dump(root, f, indent=2)
        with open(os.path.join(work, "llm1", "config.json"), "w") as f:
            json.dump(enc, f, indent=2)
        for extra in ("tokenizer.json", "qwen.tiktoken", "generation_config.json"):
            if os.path.isfile(os.path.join(src_dir, extra)):
                shutil.copy(os.path.join(src_dir, extra), os.path.join(work, extra))
        if os.path.exists(out_dir):
            fail(f"{out_dir} exists; choose a new folder")
        os.rename(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    n = sum(v.numel() for tensors, _ in files.values() for v in tensors.values())
    print(f"grew {src_dir} into {out_dir}: encoder {enc_s['hidden_size']}x{enc_s['num_hidden_layers']} -> "
          f"{enc_d['hidden_size']}x{enc_d['num_hidden_layers']}, decoder {dec_s['hidden_size']}x"
          f"{dec_s['num_hidden_layers']} -> {dec_d['hidden_size']}x{dec_d['num_hidden_layers']}, "
          f"{n / 1e6:.1f}M parameters, {name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="a c3 model folder (config.json, model.safetensors, llm1/)")
    ap.add_argument("--encoder-config", required=True, help="the target encoder's Qwen2 config.json")
    ap.add_argument("--decoder-config", required=True, help="the target decoder's Qwen2 config.json")
    ap.add_argument("--out", required=True, help="a new folder")
    ap.add_argument("--dtype", choices=("f32", "bf16"), default="f32")
    ap.add_argument("--init-std", type=float, default=0.02, help="std of the weights that only feed new parts")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if os.path.exists(a.out):
        fail(f"{a.out} exists; choose a new folder")
    grow(a.src, a.encoder_config, a.decoder_config, a.out,
         torch.float32 if a.dtype == "f32" else torch.bfloat16, a.init_std, a.seed)


if __name__ == "__main__":
    main()
