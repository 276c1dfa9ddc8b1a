#!/usr/bin/env python3
"""The C3 cascade in HF transformers: the speed figures `c3 bench` reports, and greedy-id parity.

Runs on the GPU machine (torch 2.x, transformers 5.x, safetensors, tokenizers). Three modes:

  speed:   python3 bench/hf_reference.py --random-init ENC.json DEC.json L [--tokenizer FILE]
               [--device cuda] [--dtype bf16] [--batch 16] [--passage-tokens 1024]
               [--new-tokens 128] [--repeats 5] [--json OUT]
           python3 bench/hf_reference.py --model C3_DIR ...            (same, trained weights)
  parity:  c3 bench --model C3_DIR --dtype f32 --dump-ids TEXT > c3_ids.json
           python3 bench/hf_reference.py --model C3_DIR --parity c3_ids.json [--device cuda]
  compare: python3 bench/hf_reference.py --compare c3_bench.json hf_bench.json

The cascade is built as in the C3 paper's code: a Qwen2ForCausalLM encoder runs over
context + <img> + <imgpad>*L + </img> with the <imgpad> embeddings replaced by the learned
queries Q; the final-normed hidden states at those L slots go through a Linear projector and
replace the <imgpad> embeddings of the decoder prompt; a Qwen2ForCausalLM decoder generates
from those embeddings (generate(inputs_embeds=..., input_ids=prompt ids), so that the n-gram
ban sees the prompt ids, as c3 does).
"""
import argparse
import glob
import json
import os
import statistics
import sys
import time

import torch
from safetensors.torch import load_file
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

from torch_reference import decoder_prompt_text, encoder_positions  # the prompt and slot layout, once

H100_FLOPS = 800e12  # dense bf16
H100_BANDWIDTH = 3.0e12  # bytes/s


def qwen2_config(path_or_dict, min_vocab):
    """A Qwen2Config from a config.json (plain Qwen2 or the C3 root config)."""
    d = dict(path_or_dict) if isinstance(path_or_dict, dict) else json.load(open(path_or_dict))
    for k in ("model_type", "architectures", "torch_dtype", "latent_token_len", "im_start_token",
              "im_end_token", "im_patch_token", "use_im_start_end", "c3_max_passage_tokens",
              "contexts_compression_llm_hidden_size"):
        d.pop(k, None)
    cfg = Qwen2Config.from_dict(d)
    cfg.vocab_size = max(cfg.vocab_size, min_vocab)  # as c3 grows a vocabulary to the tokenizer's
    return cfg


def read_safetensors_dir(d):
    files = sorted(glob.glob(os.path.join(d, "*.safetensors")))
    if not files:
        sys.exit(f"error: no *.safetensors in {d}")
    sd = {}
    for f in files:
        sd.update(load_file(f))
    return sd


class Tok:
    """The few tokenizer facts the cascade needs, from tokenizer.json."""

    def __init__(self, path):
        from tokenizers import Tokenizer
        self.tok = Tokenizer.from_file(path)
        self.vocab_size = self.tok.get_vocab_size(with_added_tokens=True)
        spec = json.load(open(path))["added_tokens"]
        self.special_ids = sorted(t["id"] for t in spec if t.get("special"))
        self.ids = {t["content"]: t["id"] for t in spec}
        for name in ("<img>", "</img>", "<imgpad>", "<|im_start|>", "<|im_end|>"):
            if name not in self.ids:
                sys.exit(f"error: {path} has no token {name}")

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids


class HFCascade(torch.nn.Module):
    def __init__(self, enc_cfg, dec_cfg, latents, tok):
        super().__init__()
        self.encoder = Qwen2ForCausalLM(enc_cfg)
        self.decoder = Qwen2ForCausalLM(dec_cfg)
        self.Q = torch.nn.Embedding(latents, enc_cfg.hidden_size)
        self.mm_projector = torch.nn.Linear(enc_cfg.hidden_size, dec_cfg.hidden_size)
        self.L = latents
        self.tok = tok
        self.query_positions = "after_text"
        self.prompt_ids = tok.encode(decoder_prompt_text(latents))
        patch = tok.ids["<imgpad>"]
        self.prompt_slots = [i for i, t in enumerate(self.prompt_ids) if t == patch]
        assert len(self.prompt_slots) == latents, "the prompt must hold L <imgpad> tokens"

    def encoder_input_ids(self, context):
        t = self.tok.ids
        return list(context) + [t["<img>"]] + [t["<imgpad>"]] * self.L + [t["</img>"]]

    @torch.no_grad()
    def compress(self, ids):
        """ids: [B, T] encoder inputs of one length (each ends with the L slots + </img>)."""
        emb = self.encoder.model.embed_tokens(ids)  # [B, T, C]
        s = ids.shape[1] - 1 - self.L
        emb[:, s:s + self.L] = self.Q.weight.to(emb.dtype)
        n = ids.shape[1] - self.L - 2
        pos = encoder_positions(n, self.L, self.query_positions).to(ids.device)
        pos = pos[None].expand(ids.shape[0], -1)
        # An explicit mask: without one, transformers 5 reads positions that step back (the
        # "segments" layout) as the starts of packed sequences and masks the slots off the text.
        mask = torch.ones_like(ids)
        h = self.encoder.model(inputs_embeds=emb, position_ids=pos, attention_mask=mask,
                               use_cache=False).last_hidden_state
        return self.mm_projector(h[:, s:s + self.L])  # [B, L, C_dec]

    @torch.no_grad()
    def decompress(self, latents, max_new_tokens, ngram, eos):
        B = latents.shape[0]
        dev = latents.device
        ids = torch.tensor(self.prompt_ids, device=dev).unsqueeze(0).expand(B, -1)
        pe = self.decoder.model.embed_tokens(ids).clone()  # [B, P, C]
        pe[:, self.prompt_slots] = latents.to(pe.dtype)
        gc = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False,
                              no_repeat_ngram_size=ngram if ngram > 0 else None,
                              eos_token_id=eos, pad_token_id=self.tok.ids.get("<|endoftext|>", 0))
        out = self.decoder.generate(input_ids=ids, inputs_embeds=pe,
                                    attention_mask=torch.ones_like(ids), generation_config=gc)
        P = ids.shape[1]
        if out.shape[1] >= P and torch.equal(out[:, :P], ids):
            out = out[:, P:]
        return out


def build(args, device, dtype):
    """The HF cascade on `device`: random weights of the configs' shapes, or a c3 folder's."""
    torch.set_default_dtype(dtype)
    if args.model:
        tok = Tok(os.path.join(args.model, "tokenizer.json"))
        root = json.load(open(os.path.join(args.model, "config.json")))
        L = root["latent_token_len"]
        enc_cfg = qwen2_config(os.path.join(args.model, "llm1", "config.json"), tok.vocab_size)
        dec_cfg = qwen2_config(root, tok.vocab_size)
    else:
        tok = Tok(args.tokenizer)
        enc_path, dec_path, L = args.random_init
        L = int(L)
        enc_cfg = qwen2_config(enc_path, tok.vocab_size)
        dec_cfg = qwen2_config(dec_path, tok.vocab_size)
    t0 = time.perf_counter()
    with torch.device(device):
        m = HFCascade(enc_cfg, dec_cfg, L, tok)
    torch.set_default_dtype(torch.float32)
    if args.model:
        enc_sd = read_safetensors_dir(os.path.join(args.model, "llm1"))
        dec_sd = read_safetensors_dir(args.model)
        with torch.no_grad():
            m.Q.weight.copy_(dec_sd.pop("model.Q.weight"))
            m.mm_projector.weight.copy_(dec_sd.pop("model.mm_projector.weight"))
            m.mm_projector.bias.copy_(dec_sd.pop("model.mm_projector.bias"))
        for name, net, sd in (("llm1", m.encoder, enc_sd), ("root", m.decoder, dec_sd)):
            missing, unexpected = net.load_state_dict(sd, strict=False)
            missing = [k for k in missing if k != "lm_head.weight"]  # tied to embed_tokens
            if missing or unexpected:
                sys.exit(f"error: {name} weights: missing {missing}, unexpected {unexpected}")
            if net.config.tie_word_embeddings:
                net.tie_weights()
    if args.model:
        layout = {k: root.get(k, d) for k, d in (("c3_query_positions", "after_text"),
                                                 ("c3_query_mask", "causal"),
                                                 ("c3_query_pooling", "none"))}
        if layout["c3_query_mask"] != "causal" or layout["c3_query_pooling"] != "none":
            sys.exit(f"error: {args.model}/config.json: this reference has the causal query mask "
                     f"and no pooling only, not {layout}")
        m.query_positions = layout["c3_query_positions"]
    m = m.to(device=device, dtype=dtype).eval()
    return m, time.perf_counter() - t0


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(device, warmup, repeats, fn):
    for _ in range(warmup):
        fn()
    secs = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        secs.append(time.perf_counter() - t0)
    return secs


def n_params(mod):
    return sum(p.numel() for p in mod.parameters())


def speed(args):
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    m, build_s = build(args, device, dtype)
    # Stop disabled: generate would otherwise fill an unset eos_token_id from the model's defaults.
    m.decoder.generation_config.eos_token_id = None
    m.decoder.config.eos_token_id = None
    print(f"HF cascade built in {build_s:.1f} s (attn_implementation="
          f"{m.decoder.config._attn_implementation})", file=sys.stderr)
    hi = min(m.tok.special_ids) if m.tok.special_ids else m.tok.vocab_size
    g = torch.Generator().manual_seed(args.seed)
    passages = torch.randint(0, hi, (args.batch, args.passage_tokens), generator=g).tolist()
    P = len(m.prompt_ids)
    elem = torch.finfo(dtype).bits // 8
    emb = m.decoder.model.embed_tokens.weight.numel()
    tied = m.decoder.config.tie_word_embeddings
    dec_bytes = (n_params(m.decoder) - (0 if tied else emb)) * elem
    enc_flops = 2.0 * (n_params(m.encoder.model) - m.encoder.model.embed_tokens.weight.numel()
                       + n_params(m.mm_projector))
    rows = []

    def add(step, b, ngram, secs, tokens):
        med = statistics.median(secs)
        rows.append({"step": step, "batch": b, "no_repeat_ngram_size": ngram, "seconds": med,
                     "min_seconds": min(secs), "passages_per_s": b / med,
                     "tokens_per_s": tokens / med,
                     "peak_bytes": torch.cuda.max_memory_allocated(device)
                     if device.type == "cuda" else -1})
        print(f"  {step:<11} batch {b:>3} ngram {ngram:>2}: {med * 1e3:9.2f} ms  "
              f"{tokens / med:11.1f} tok/s", file=sys.stderr, flush=True)

    def reset_peak():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    for b in sorted({1, args.batch}):
        ids = torch.tensor([m.encoder_input_ids(p) for p in passages[:b]], device=device)
        reset_peak()
        lat = [None]
        secs = time_calls(device, args.warmup, args.repeats, lambda: lat.__setitem__(0, m.compress(ids)))
        add("compress", b, 0, secs, b * args.passage_tokens)
        latents = lat[0]
        reset_peak()
        secs = time_calls(device, args.warmup, args.repeats,
                          lambda: m.decompress(latents, 1, 0, None))
        add("prefill", b, 0, secs, b * P)
        for ngram in args.ngrams:
            reset_peak()
            out = [None]
            secs = time_calls(device, args.warmup, args.repeats, lambda: out.__setitem__(
                0, m.decompress(latents, args.new_tokens, ngram, None)))
            assert out[0].shape == (b, args.new_tokens), f"generated {tuple(out[0].shape)}"
            add("decompress", b, ngram, secs, b * args.new_tokens)
    import transformers
    report = {
        "meta": {"impl": "hf", "transformers": transformers.__version__,
                 "torch": torch.__version__, "device": str(device),
                 "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                 "dtype": args.dtype, "latents": m.L, "decoder_prompt_tokens": P,
                 "batch": args.batch, "passage_tokens": args.passage_tokens,
                 "new_tokens": args.new_tokens, "repeats": args.repeats,
                 "attn_implementation": m.decoder.config._attn_implementation,
                 "model": args.model or "random-init " + " ".join(args.random_init),
                 "build_seconds": build_s},
        "rows": rows,
        "memory": {"peak_allocated_bytes": max([r["peak_bytes"] for r in rows] + [-1]),
                   "peak_reserved_bytes": torch.cuda.max_memory_reserved(device)
                   if device.type == "cuda" else -1},
        "limits": {"flops": H100_FLOPS, "bandwidth_bytes_per_s": H100_BANDWIDTH,
                   "encoder_flops_per_token": enc_flops, "decoder_bytes_per_step": dec_bytes,
                   "compress_tokens_per_s": H100_FLOPS / enc_flops,
                   "decode_tokens_per_s_batch1": H100_BANDWIDTH / dec_bytes},
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


def parity(args):
    """Greedy ids of HF vs a `c3 bench --dump-ids` JSON, same weights, fp32."""
    dump = json.load(open(args.parity))
    device = torch.device(args.device)
    m, _ = build(args, device, torch.float32)
    if dump["encoder_input_ids"] != m.encoder_input_ids(dump["context_ids"]):
        sys.exit("parity: encoder input ids differ from c3's")
    if dump["prompt_ids"] != m.prompt_ids:
        sys.exit("parity: decoder prompt ids differ from c3's (tokenizer mismatch?)")
    ids = torch.tensor([dump["encoder_input_ids"]], device=device)
    eos = dump["im_end_id"]
    out = m.decompress(m.compress(ids), dump["max_new_tokens"], dump["no_repeat_ngram_size"], eos)
    hf = out[0].tolist()
    if eos in hf:  # c3 returns the ids before the stop token
        hf = hf[:hf.index(eos)]
    c3 = dump["output_ids"]
    same = hf == c3
    first = next((i for i, (a, b) in enumerate(zip(hf, c3)) if a != b), min(len(hf), len(c3)))
    print(f"parity ({dump['device']} c3 {dump['dtype']} vs HF fp32 on {device}, ngram "
          f"{dump['no_repeat_ngram_size']}): c3 {len(c3)} ids, HF {len(hf)} ids: "
          + ("IDENTICAL" if same else f"DIFFER at {first}: c3 {c3[first:first + 5]} "
             f"HF {hf[first:first + 5]}"))
    return 0 if same else 1


def compare(c3_path, hf_path):
    """Prints c3 and HF side by side with the card's limits (from c3's report)."""
    c3, hf = json.load(open(c3_path)), json.load(open(hf_path))
    lim = c3["limits"]
    key = lambda r: (r["step"], r["batch"], r["no_repeat_ngram_size"])
    hf_rows = {key(r): r for r in hf["rows"]}
    m = c3["meta"]
    print(f"c3 vs HF ({hf['meta'].get('gpu', '?')}, c3 {m.get('dtype')}, HF {hf['meta']['dtype']} "
          f"{hf['meta'].get('attn_implementation')}, transformers {hf['meta'].get('transformers')}); "
          f"passage {m.get('passage_tokens')} tok, {m.get('new_tokens')} new tok, L {m.get('latents')}")
    card = lim.get("card", "H100")  # reports before the card was detected assumed an H100
    print(f"| step | batch | ngram | c3 ms | HF ms | c3 tok/s | HF tok/s | c3/HF | {card} limit tok/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in c3["rows"]:
        h = hf_rows.get(key(r))
        limit = ""
        if r["step"] == "compress":
            limit = f"{lim['compress_tokens_per_s']:.0f}"
        elif r["step"] == "decompress":
            limit = f"{r['batch'] * lim['decode_tokens_per_s_batch1']:.0f}"
        hms = f"{h['seconds'] * 1e3:.1f}" if h else "-"
        htok = f"{h['tokens_per_s']:.1f}" if h else "-"
        ratio = f"{r['tokens_per_s'] / h['tokens_per_s']:.2f}x" if h else "-"
        ng = r["no_repeat_ngram_size"] if r["step"] == "decompress" else "-"
        print(f"| {r['step']} | {r['batch']} | {ng} | {r['seconds'] * 1e3:.1f} | {hms} | "
              f"{r['tokens_per_s']:.1f} | {htok} | {ratio} | {limit} |")
    gb = lambda b: f"{b / 1e9:.2f} GB" if b and b > 0 else "n/a"
    print(f"peak allocated: c3 {gb(c3['memory']['peak_allocated_bytes'])}, "
          f"HF {gb(hf['memory']['peak_allocated_bytes'])}; decode floor "
          f"{lim['decoder_bytes_per_step'] / 1e9:.2f} GB/step at {lim['bandwidth_bytes_per_s'] / 1e12:.3g} TB/s = "
          f"{lim['decode_tokens_per_s_batch1']:.0f} tok/s per row; compress limit "
          f"{lim['compress_tokens_per_s']:.0f} tok/s at {lim['flops'] / 1e12:.0f} TFLOP/s "
          f"({lim.get('reference', '')})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model", help="c3 checkpoint folder (config.json, llm1/, tokenizer.json)")
    src.add_argument("--random-init", nargs=3, metavar=("ENC_CONFIG", "DEC_CONFIG", "L"))
    src.add_argument("--compare", nargs=2, metavar=("C3_JSON", "HF_JSON"))
    ap.add_argument("--tokenizer", default="models/c3-small/tokenizer.json")
    ap.add_argument("--parity", metavar="C3_IDS_JSON", help="output of c3 bench --dump-ids")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--passage-tokens", type=int, default=1024)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--ngrams", type=int, nargs="+", default=[0, 20])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the report here")
    args = ap.parse_args()
    if args.compare:
        compare(*args.compare)
        return 0
    if not args.model and not args.random_init:
        ap.error("give --model DIR or --random-init ENC DEC L (or --compare)")
    if args.parity:
        if not args.model:
            ap.error("--parity needs --model DIR (the weights c3 used)")
        return parity(args)
    speed(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
