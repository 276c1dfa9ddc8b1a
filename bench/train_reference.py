#!/usr/bin/env python3
"""PyTorch-eager reference for `c3 train` throughput: the same cascade built from HF transformers'
Qwen2 modules (encoder, learnable queries Q, projector, decoder), trained on reconstruction with
AdamW under bf16 autocast, fixed-length random passages. Prints text tokens/s and MFU with the
same FLOP model as src/train/trainer.cpp (6 x params x tokens + causal attention + lm_head).

Usage (on the GPU machine):
  python3 bench/train_reference.py --encoder configs/medium-encoder.json \
      --decoder configs/medium-decoder.json --latents 32 --batch 16 --tokens 512 --steps 30
"""
import argparse, json, time

import torch
import torch.nn.functional as F
from transformers import Qwen2Config, Qwen2ForCausalLM


def qwen(path):
    c = json.load(open(path))
    rope = c.get("rope_parameters", {}).get("rope_theta", c.get("rope_theta", 10000.0))
    cfg = Qwen2Config(vocab_size=c["vocab_size"], hidden_size=c["hidden_size"],
                      intermediate_size=c["intermediate_size"],
                      num_hidden_layers=c["num_hidden_layers"],
                      num_attention_heads=c["num_attention_heads"],
                      num_key_value_heads=c["num_key_value_heads"], rms_norm_eps=c["rms_norm_eps"],
                      tie_word_embeddings=c["tie_word_embeddings"], rope_theta=rope)
    cfg._attn_implementation = "sdpa"
    return cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--decoder", required=True)
    ap.add_argument("--latents", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--prompt", type=int, default=75, help="decoder prompt length (75 at L=32)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    a = ap.parse_args()
    dev = "cuda"
    torch.manual_seed(0)
    ec, dc = qwen(a.encoder), qwen(a.decoder)
    enc = Qwen2ForCausalLM(ec).to(dev)
    dec = Qwen2ForCausalLM(dc).to(dev)
    L, B, T, P = a.latents, a.batch, a.tokens, a.prompt
    Q = torch.nn.Parameter(torch.randn(L, ec.hidden_size, device=dev) * 0.02)
    proj = torch.nn.Linear(ec.hidden_size, dc.hidden_size).to(dev)
    params = list(enc.parameters()) + list(dec.parameters()) + [Q] + list(proj.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    V = dc.vocab_size

    def step():
        ids = torch.randint(0, V - 8, (B, T), device=dev)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            e = enc.model.embed_tokens(ids)
            e = torch.cat([e, Q.unsqueeze(0).expand(B, L, -1).to(e.dtype)], 1)  # passage + slots
            h = enc.model(inputs_embeds=e).last_hidden_state[:, T:]              # [B, L, C_enc]
            lat = proj(h)
            prompt = dec.model.embed_tokens(torch.randint(0, V - 8, (B, P), device=dev))
            prompt = torch.cat([prompt[:, : P - L], lat.to(prompt.dtype)], 1)
            x = torch.cat([prompt, dec.model.embed_tokens(ids[:, :-1])], 1)
            hd = dec.model(inputs_embeds=x).last_hidden_state[:, P - 1:]          # [B, T, C]
            logits = dec.lm_head(hd).float()
            loss = F.cross_entropy(logits.reshape(-1, V), ids.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    layer_params = lambda m: sum(p.numel() for p in m.model.layers.parameters())
    te, td = T + L + 2, P + T + 1
    f = 2.0 * (layer_params(enc) * te + layer_params(dec) * td) + 2.0 * dc.hidden_size * V * (T + 1)
    f += 2.0 * ec.num_hidden_layers * ec.hidden_size * te * te + 2.0 * dc.num_hidden_layers * dc.hidden_size * td * td
    flops = 3.0 * f * B * a.steps
    tps = B * T * a.steps / dt
    print(json.dumps({"impl": "pytorch-eager-hf-qwen2", "batch": B, "tokens": T, "steps": a.steps,
                      "tokens_per_sec": round(tps), "mfu": round(flops / dt / (a.peak_tflops * 1e12), 4),
                      "torch": torch.__version__, "gpu": torch.cuda.get_device_name()}))


if __name__ == "__main__":
    main()
