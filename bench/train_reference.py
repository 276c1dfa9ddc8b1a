#!/usr/bin/env python3
"""PyTorch reference for `c3 train` throughput: the same cascade built from HF transformers'
Qwen2 modules (encoder, learnable queries Q, projector, decoder), trained on reconstruction with
fused AdamW under bf16 autocast, fixed-length random passages. Eager by default; --compile runs
torch.compile(model) in its default mode on the whole cascade (embeddings, both stacks, the
projector, lm_head and the loss; the optimizer step stays eager). Prints one JSON line per batch
size: text tokens/s and MFU with the same FLOP model as src/train/trainer.cpp (6 x params x tokens
+ causal attention + lm_head), the compile time, and the peak memory.

Usage (on the GPU machine):
  python3 bench/train_reference.py --encoder configs/medium-encoder.json \\
      --decoder configs/medium-decoder.json --latents 32 --batch 16 64 --tokens 512 --steps 20
  ... --compile        # torch.compile, each batch size compiled for its static shapes
  ... --grad-ckpt      # HF gradient checkpointing in both stacks (non-reentrant)

With --lock FILE the timed steps run only while holding an exclusive lock on FILE, so that several
processes can share one GPU and never time at once (scripts/device/train_speed.sh compiles three
configs side by side, then times everything one after the other). With --ready FILE, every batch
size is compiled and warmed up first, FILE is created, and only then is the lock taken.
"""
import argparse, contextlib, fcntl, json, time

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


class Cascade(torch.nn.Module):
    """Encoder over passage + L query slots -> projector -> latents in the decoder prompt -> loss."""

    def __init__(self, ec, dc, latents):
        super().__init__()
        self.enc, self.dec = Qwen2ForCausalLM(ec), Qwen2ForCausalLM(dc)
        self.Q = torch.nn.Parameter(torch.randn(latents, ec.hidden_size) * 0.02)
        self.proj = torch.nn.Linear(ec.hidden_size, dc.hidden_size)

    def forward(self, ids, prompt):
        B, T = ids.shape
        L, P = self.Q.shape[0], prompt.shape[1]
        e = self.enc.model.embed_tokens(ids)
        e = torch.cat([e, self.Q.unsqueeze(0).expand(B, L, -1).to(e.dtype)], 1)  # passage + slots
        h = self.enc.model(inputs_embeds=e, use_cache=False).last_hidden_state[:, T:]  # [B, L, C]
        lat = self.proj(h)
        pe = self.dec.model.embed_tokens(prompt)
        pe = torch.cat([pe[:, : P - L], lat.to(pe.dtype)], 1)
        x = torch.cat([pe, self.dec.model.embed_tokens(ids[:, :-1])], 1)
        hd = self.dec.model(inputs_embeds=x, use_cache=False).last_hidden_state[:, P - 1:]  # [B, T, C]
        logits = self.dec.lm_head(hd).float()
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids.reshape(-1))


def flops_per_step(ec, dc, net, B, T, L, P):
    layer_params = lambda m: sum(p.numel() for p in m.model.layers.parameters())
    te, td = T + L + 2, P + T + 1
    f = 2.0 * (layer_params(net.enc) * te + layer_params(net.dec) * td) + 2.0 * dc.hidden_size * dc.vocab_size * (T + 1)
    f += 2.0 * ec.num_hidden_layers * ec.hidden_size * te * te + 2.0 * dc.num_hidden_layers * dc.hidden_size * td * td
    return 3.0 * f * B


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--decoder", required=True)
    ap.add_argument("--config-name", default="", help="label in the output (e.g. medium)")
    ap.add_argument("--latents", type=int, default=32)
    ap.add_argument("--batch", type=int, nargs="+", default=[16], help="one or more batch sizes")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--prompt", type=int, default=75, help="decoder prompt length (75 at L=32)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="torch.compile(model), default mode")
    ap.add_argument("--grad-ckpt", action="store_true",
                    help="gradient checkpointing in both stacks (HF's, non-reentrant)")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--lock", help="hold an exclusive lock on this file while timing")
    ap.add_argument("--ready", help="compile and warm up every batch size first, then create this file")
    a = ap.parse_args()
    dev = "cuda"
    torch.manual_seed(0)
    if a.compile:
        # Each batch size gets its own static graph, as in a process of its own (by default a
        # second shape would recompile with dynamic shapes).
        torch._dynamo.config.automatic_dynamic_shapes = False
    ec, dc = qwen(a.encoder), qwen(a.decoder)
    with torch.device(dev):  # initialised on the GPU: a 4.6B-parameter init on the CPU takes minutes
        net = Cascade(ec, dc, a.latents).train()
    if a.grad_ckpt:
        for m in (net.enc, net.dec):
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = torch.compile(net) if a.compile else net
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    L, T, P, V = a.latents, a.tokens, a.prompt, dc.vocab_size

    def make_step(B):
        def step():
            ids = torch.randint(0, V - 8, (B, T), device=dev)
            prompt = torch.randint(0, V - 8, (B, P), device=dev)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(ids, prompt)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    def warm(B):  # returns the first step's seconds (the compile, with --compile)
        step = make_step(B)
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        for _ in range(a.warmup - 1):
            step()
        torch.cuda.synchronize()
        return first

    def timed(B, first):
        step = make_step(B)
        torch.cuda.reset_peak_memory_stats()
        step()  # one more warm step after a possible wait for the lock
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        flops = flops_per_step(ec, dc, net, B, T, L, P) * a.steps
        impl = ("pytorch-compile" if a.compile else "pytorch-eager") + ("-ckpt" if a.grad_ckpt else "")
        print(json.dumps({"impl": impl,
                          "config": a.config_name, "batch": B, "tokens": T, "steps": a.steps,
                          "tokens_per_sec": round(B * T * a.steps / dt),
                          "mfu": round(flops / dt / (a.peak_tflops * 1e12), 4),
                          "first_step_s": round(first, 1),
                          "peak_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2),
                          "torch": torch.__version__, "gpu": torch.cuda.get_device_name()}),
              flush=True)

    @contextlib.contextmanager
    def gpu_lock():
        if not a.lock:
            yield
            return
        with open(a.lock, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    if a.ready:
        firsts = {B: warm(B) for B in a.batch}
        torch.cuda.empty_cache()  # give back what the warm-up cached while others time
        open(a.ready, "w").close()
        with gpu_lock():
            for B in a.batch:
                timed(B, firsts[B])
    else:
        for B in a.batch:
            with gpu_lock():
                timed(B, warm(B))

if __name__ == "__main__":
    main()
