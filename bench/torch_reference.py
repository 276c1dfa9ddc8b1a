#!/usr/bin/env python3
"""The C3 cascade in plain PyTorch, written apart from c3's C++ (no HF transformers needed): what
a PyTorch user would run on a CPU. Two uses:

  parity: its greedy ids equal c3's for a c3 model folder (python/tests/test_torch_reference.py,
          in CI: an independent check of c3-small, query layout included);
  speed:  python3 bench/torch_reference.py --model models/c3-small --text-file F [--repeats 5]
          [--threads 2]: c3 (its Python module) and this reference on the same text, alternating,
          fp32, one chunk; seconds and ids side by side.

Qwen2 as in HF: RMSNorm in fp32, rotate-half RoPE, grouped-query attention with a causal mask,
SiLU MLP, tied or separate lm_head. The cascade as in the paper's code: the encoder reads text +
<img> + L <imgpad> + </img> with the <imgpad> embeddings replaced by the learned queries Q (RoPE
positions as c3_query_positions says); the final-normed states at the slots, projected, replace
the <imgpad> embeddings of the decoder's prompt; greedy decoding with a KV cache and HF's
no_repeat_ngram_size over prompt and output, until <|im_end|> or 1.5x the source tokens + 16.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from interpolate_models import read_safetensors  # noqa: E402


def decoder_prompt_text(latents):
    """The official decoder prompt (c3's decoder_prompt_text)."""
    slots = "<img>" + "<imgpad>" * latents + "</img>"
    return ("<|im_start|>system\nYou should follow the instructions carefully and explain your "
            "answers in detail.<|im_end|><|im_start|>user\n" + slots +
            "\nRepeat the text: <|im_end|><|im_start|>assistant\n")


def encoder_positions(n, latents, layout):
    """RoPE positions of text n + <img> + L slots + </img> (src/c3/query_layout.h): every token at
    its index, or with c3_query_positions "segments" slot j at the end of its text segment,
    floor((j + 1) n / L), and </img> at n + 1."""
    pos = list(range(n + latents + 2))
    if layout == "segments":
        pos[n + 1:n + 1 + latents] = [(j + 1) * n // latents for j in range(latents)]
        pos[n + 1 + latents] = n + 1
    return torch.tensor(pos)


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


class Qwen2:
    """One Qwen2 language model's weights and forward pass (fp32), with an optional KV cache."""

    def __init__(self, tensors, cfg):
        t = {k: v.float() for k, v in tensors.items()}
        self.emb = t["model.embed_tokens.weight"]
        self.head = t.get("lm_head.weight", self.emb)
        self.norm = t["model.norm.weight"]
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.H, self.K = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.D = cfg["hidden_size"] // self.H
        theta = float(cfg.get("rope_parameters", {}).get("rope_theta", cfg.get("rope_theta", 10000.0)))
        self.inv_freq = 1.0 / theta ** (torch.arange(0, self.D, 2, dtype=torch.float32) / self.D)
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            self.layers.append({k: t[p + n] for k, n in (
                ("in_norm", "input_layernorm.weight"), ("post_norm", "post_attention_layernorm.weight"),
                ("wq", "self_attn.q_proj.weight"), ("bq", "self_attn.q_proj.bias"),
                ("wk", "self_attn.k_proj.weight"), ("bk", "self_attn.k_proj.bias"),
                ("wv", "self_attn.v_proj.weight"), ("bv", "self_attn.v_proj.bias"),
                ("wo", "self_attn.o_proj.weight"), ("wg", "mlp.gate_proj.weight"),
                ("wu", "mlp.up_proj.weight"), ("wd", "mlp.down_proj.weight"))})

    def rope(self, x, pos):
        """x [B, heads, T, D] rotated by positions pos [T] (HF's rotate_half)."""
        f = pos.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat([f, f], dim=-1)
        x1, x2 = x[..., :self.D // 2], x[..., self.D // 2:]
        return x * emb.cos() + torch.cat([-x2, x1], dim=-1) * emb.sin()

    def forward(self, x, pos, cache=None):
        """Final-normed hidden states of embeddings x [1, T, C] at positions pos [T]. `cache`, a
        list (one (k, v) per layer, filled on the first call), makes later calls continue."""
        T = x.shape[1]
        for i, l in enumerate(self.layers):
            h = rms_norm(x, l["in_norm"], self.eps)
            q = (h @ l["wq"].T + l["bq"]).view(1, T, self.H, self.D).transpose(1, 2)
            k = (h @ l["wk"].T + l["bk"]).view(1, T, self.K, self.D).transpose(1, 2)
            v = (h @ l["wv"].T + l["bv"]).view(1, T, self.K, self.D).transpose(1, 2)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if cache is not None:
                if len(cache) > i:
                    k = torch.cat([cache[i][0], k], dim=2)
                    v = torch.cat([cache[i][1], v], dim=2)
                    cache[i] = (k, v)
                else:
                    cache.append((k, v))
            S = k.shape[2]
            k = k.repeat_interleave(self.H // self.K, dim=1)
            v = v.repeat_interleave(self.H // self.K, dim=1)
            att = (q @ k.transpose(-1, -2)) / math.sqrt(self.D)
            seen = torch.arange(S)[None, :] <= torch.arange(S - T, S)[:, None]  # causal by index
            att = att.masked_fill(~seen, float("-inf")).softmax(dim=-1)
            x = x + (att @ v).transpose(1, 2).reshape(1, T, self.H * self.D) @ l["wo"].T
            h = rms_norm(x, l["post_norm"], self.eps)
            x = x + (torch.nn.functional.silu(h @ l["wg"].T) * (h @ l["wu"].T)) @ l["wd"].T
        return rms_norm(x, self.norm, self.eps)


class NgramBan:
    """HF's no_repeat_ngram_size: a token may not complete an n-gram already in the sequence."""

    def __init__(self, n, ids):
        self.n, self.seq, self.seen = n, [], {}
        for t in ids:
            self.push(t)

    def push(self, t):
        self.seq.append(t)
        if self.n > 0 and len(self.seq) >= self.n:
            self.seen.setdefault(tuple(self.seq[-self.n:-1]), set()).add(t)

    def banned(self):
        if self.n <= 0 or len(self.seq) + 1 < self.n:
            return set()
        return self.seen.get(tuple(self.seq[-(self.n - 1):]), set())


class Cascade:
    def __init__(self, model_dir, tokenizer):
        root = json.load(open(os.path.join(model_dir, "config.json")))
        enc_cfg = json.load(open(os.path.join(model_dir, "llm1", "config.json")))
        dec_t, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        enc_t, _ = read_safetensors(os.path.join(model_dir, "llm1", "model.safetensors"))
        self.Q = dec_t.pop("model.Q.weight").float()
        self.proj_w = dec_t.pop("model.mm_projector.weight").float()
        self.proj_b = dec_t.pop("model.mm_projector.bias").float()
        self.enc, self.dec = Qwen2(enc_t, enc_cfg), Qwen2(dec_t, root)
        self.L = root["latent_token_len"]
        self.layout = root.get("c3_query_positions", "after_text")
        for key in ("c3_query_mask", "c3_query_pooling"):
            if root.get(key, "causal" if key.endswith("mask") else "none") not in ("causal", "none"):
                sys.exit(f"error: {model_dir}: this reference has the causal query mask and no pooling only")
        tid = tokenizer.token_to_id
        self.img, self.pad, self.img_end = tid("<img>"), tid("<imgpad>"), tid("</img>")
        self.stop = tid("<|im_end|>")
        self.prompt = tokenizer.encode(decoder_prompt_text(self.L))
        self.slots = [i for i, t in enumerate(self.prompt) if t == self.pad]

    @torch.no_grad()
    def compress(self, ids):
        n = len(ids)
        x = self.enc.emb[torch.tensor(ids + [self.img] + [self.pad] * self.L + [self.img_end])][None]
        x[0, n + 1:n + 1 + self.L] = self.Q
        h = self.enc.forward(x, encoder_positions(n, self.L, self.layout))
        return h[0, n + 1:n + 1 + self.L] @ self.proj_w.T + self.proj_b

    @torch.no_grad()
    def decompress(self, latents, source_tokens, ngram=20):
        x = self.dec.emb[torch.tensor(self.prompt)][None].clone()
        x[0, self.slots] = latents
        cache, out = [], []
        ban = NgramBan(ngram, self.prompt)
        h = self.dec.forward(x, torch.arange(len(self.prompt)), cache)
        for step in range(int(1.5 * source_tokens) + 16):
            logits = h[0, -1] @ self.dec.head.T
            for t in ban.banned():
                logits[t] = float("-inf")
            t = int(logits.argmax())
            if t == self.stop:
                break
            out.append(t)
            ban.push(t)
            h = self.dec.forward(self.dec.emb[t][None, None], torch.tensor([len(self.prompt) + step]), cache)
        return out


def main():
    ap = argparse.ArgumentParser(description="c3 against plain PyTorch on one chunk, fp32, CPU")
    ap.add_argument("--model", default="models/c3-small")
    ap.add_argument("--text-file", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--c3-python", default="build/python", help="where the c3 module is built")
    a = ap.parse_args()
    sys.path.insert(0, a.c3_python)
    import c3
    torch.set_num_threads(a.threads)
    text = open(a.text_file, encoding="utf-8").read()
    mine = c3.Cascade.load(a.model, dtype="f32")
    ids = mine.tokenizer.encode(text)
    if len(ids) > mine.max_passage_tokens:
        sys.exit(f"error: {a.text_file} is {len(ids)} tokens; one chunk holds {mine.max_passage_tokens}")
    ref = Cascade(a.model, mine.tokenizer)
    secs = {"c3": [], "torch": []}
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        got = mine.roundtrip([text])[0]
        secs["c3"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        want = ref.decompress(ref.compress(ids), len(ids))
        secs["torch"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in secs.items()}
    print(f"{a.model}, {len(ids)} tokens in one chunk, fp32, CPU, torch {torch.__version__} with "
          f"{a.threads} threads, median of {a.repeats}")
    for k in ("c3", "torch"):
        print(f"  {k:6s} {med[k]:.3f} s  (runs: {', '.join(f'{s:.3f}' for s in secs[k])})")
    print(f"  torch / c3: {med['torch'] / med['c3']:.2f}x; ids {'equal' if got['ids'] == want else 'DIFFER'}"
          f" ({len(got['ids'])} and {len(want)} tokens)")


if __name__ == "__main__":
    main()
