"""Writes the small seed corpora in fuzz/corpus/<target>/ (run once; the outputs are committed)."""
import base64
import json
import lzma
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    header, blobs, off = {}, b"", 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs += raw
        off += len(raw)
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blobs


def main():
    f32 = lambda n: struct.pack("<%df" % n, *[0.5 * i for i in range(n)])
    st = safetensors([("a.weight", "F32", [2, 3], f32(6)), ("b", "BF16", [4], b"\x80\x3f" * 4),
                      ("c", "I64", [], struct.pack("<q", 7)), ("e", "U8", [0], b"")],
                     {"format": "pt"})
    put("safetensors", "valid", st)
    put("safetensors", "truncated", st[:-5])
    put("safetensors", "empty_header", struct.pack("<Q", 2) + b"{}")
    put("safetensors", "huge_shape", safetensors([("x", "F32", [1 << 40, 1 << 30], b"")]))

    n, L, C = 2, 2, 4
    meta = {"format": "c3-latents", "format_version": "1", "model_fingerprint": "ab" * 16,
            "tokenizer_hash": "cd" * 16, "latent_token_len": str(L), "hidden_size": str(C),
            "dtype": "F32", "source_tokens": "9", "source_chars": "20", "source_bytes": "20",
            "n_chunks": str(n), "chunk_bytes": "[12,8]", "chunk_tokens": "[5,4]"}
    put("latent_file", "valid.c3", safetensors([("latents", "F32", [n, L, C], f32(n * L * C))], meta))
    meta_bf = dict(meta, dtype="BF16", n_chunks="1", chunk_bytes="[20]", chunk_tokens="[9]")
    put("latent_file", "bf16.c3", safetensors([("latents", "BF16", [1, L, C], b"\x80\x3f" * L * C)],
                                              meta_bf))
    put("latent_file", "bad_meta.c3",
        safetensors([("latents", "F32", [n, L, C], f32(n * L * C))], dict(meta, n_chunks="-1")))
    # Version 2: chunks 1 and 3 stored as plain token ids, verified precisions.
    ver = {"min_precision": 0.99, "floor_tokens": 2, "decode": {
        "max_new_tokens": 64, "no_repeat_ngram_size": 20, "stop_at_im_end": True,
        "length_cap": 1.5, "num_beams": 1, "device": "cpu", "dtype": "F32"}}
    meta2 = dict(meta, format_version="2", n_chunks="4", chunk_bytes="[12,4,8,6]",
                 chunk_tokens="[5,2,4,3]", source_tokens="14", source_bytes="30",
                 chunk_storage='["latents","tokens","latents","tokens"]',
                 chunk_precision="[1.0,1.0,0.995,1.0]", verification=json.dumps(ver))
    i32 = lambda ids: struct.pack("<%di" % len(ids), *ids)
    v2 = safetensors([("latents", "F32", [2, L, C], f32(2 * L * C)),
                      ("plain_tokens", "I32", [5], i32([7, 8, 9, 10, 11]))], meta2)
    put("latent_file", "v2_valid.c3", v2)
    put("latent_file", "v2_truncated.c3", v2[:-6])
    put("latent_file", "v2_bad_tokens.c3",
        safetensors([("latents", "F32", [2, L, C], f32(2 * L * C)),
                     ("plain_tokens", "I32", [4], i32([7, 8, 9, 10]))], meta2))

    cfg = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
           "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 300,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": True,
           "max_position_embeddings": 512, "eos_token_id": [1, 2], "bos_token_id": None}
    put("config_json", "qwen2.json", json.dumps(cfg, indent=1))
    cfg2 = dict(cfg, rope_parameters={"rope_theta": 1e6, "rope_type": "default"})
    del cfg2["rope_theta"]
    put("config_json", "rope_parameters.json", json.dumps(cfg2))
    put("config_json", "missing_key.json", json.dumps({"hidden_size": 64}))
    put("config_json", "not_object.json", "[1, 2, 3]")

    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, k = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + k)
            k += 1
    byte_chars = [chr(c) for c in cs]
    vocab = {ch: i for i, ch in enumerate(byte_chars)}
    merges = [["Ġ", "t"], ["h", "e"], ["Ġt", "he"], ["i", "n"], ["Ġ", "a"]]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    added = [{"id": len(vocab) + i, "content": c, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, c in enumerate(["<|endoftext|>", "<|im_end|>"])]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    pattern = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
               r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
           "normalizer": {"type": "NFC"},
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
                "invert": False}, bl]},
           "post_processor": bl, "decoder": bl,
           "model": {"type": "BPE", "dropout": None, "unk_token": None,
                     "continuing_subword_prefix": None, "end_of_word_suffix": None,
                     "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": merges}}
    put("tokenizer_json", "tiny.json", json.dumps(tok, ensure_ascii=False))
    tok_str_merges = dict(tok, model=dict(tok["model"], merges=[" ".join(m) for m in merges]))
    put("tokenizer_json", "string_merges.json", json.dumps(tok_str_merges, ensure_ascii=False))

    put("tokenizer_encode", "ascii", "Hello world! The quick brown fox, 12345.\n\tdone")
    put("tokenizer_encode", "utf8", "café naïve 日本語 😀 <|endoftext|> <|im_end|>x\r\n  ")
    put("tokenizer_encode", "invalid", b"ok \xff\xfe \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 end")
    put("tokenizer_encode", "ids", struct.pack("<8i", 0, 1, 4090, 4095, -1, 1 << 30, 65, 300))

    b64 = lambda bs: base64.b64encode(bs).decode()
    ranks = [bytes([b]) for b in range(256)] + [b"ab", b"bc", b"abc", b" the", b"\xe6\x97"]
    tik = "".join("%s %d\n" % (b64(t), r) for r, t in enumerate(ranks))
    put("tiktoken_file", "toy.tiktoken", tik)
    put("tiktoken_file", "crlf_blank.tiktoken", tik.replace("\n", "\r\n") + "\r\n\n")
    put("tiktoken_file", "gap.tiktoken", tik.replace(" 257\n", " 300\n"))
    put("tiktoken_file", "bad_base64.tiktoken", tik.replace(b64(b"ab"), "Y!I="))

    lines = "".join(json.dumps({"text": t}) + "\n" for t in ["first doc", "second\ndoc", "ünï"])
    put("corpus_reader", "plain.jsonl", b"\x00" + lines.encode())
    put("corpus_reader", "xz.jsonl", b"\x01" + lzma.compress(lines.encode()))
    put("corpus_reader", "bad_line.jsonl", b"\x00" + b'{"text": "a"}\n{"txt": 1}\nnot json\n')
    put("corpus_reader", "no_newline.jsonl", b"\x00" + b'{"text": "a"}\r\n\n{"text": "b"}')


if __name__ == "__main__":
    main()
