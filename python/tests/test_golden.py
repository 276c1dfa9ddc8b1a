"""The golden cascade (c3-tiny, made with the official C3 code, fp32 on the CPU): Python gives
the official latents and the CLI's latents and ids."""
import json

import torch

import c3
from conftest import TINY, read_safetensors, run_cli


def test_latents_equal_the_official_and_the_clis(tiny, tiny_case, tmp_path):
    [lat] = tiny.compress([tiny_case["context"]])
    t = lat.tensor
    assert t.shape == (1, 8, 64) and t.dtype == torch.float32 and t.device.type == "cpu"
    official = read_safetensors(TINY / "expected.safetensors")["latents"]
    diff = (t[0] - official).abs().max().item()
    print(f"python vs official latents: max abs diff {diff:.3g}")
    assert diff <= 1e-6

    src = tmp_path / "context.txt"
    src.write_text(tiny_case["context"])
    run_cli("compress", "--model", TINY, "--dtype", "f32", "--latent-dtype", "f32", src,
            "-o", tmp_path / "cli.c3")
    cli = c3.Latents.load(str(tmp_path / "cli.c3"))
    diff = (cli.tensor - t).abs().max().item()
    print(f"python vs CLI latents: max abs diff {diff:.3g}")
    assert diff <= 1e-6
    assert (cli.chunk_tokens, cli.chunk_bytes, cli.source_tokens, cli.model_fingerprint) == \
        (lat.chunk_tokens, lat.chunk_bytes, lat.source_tokens, lat.model_fingerprint)
    assert lat.model_fingerprint == tiny.fingerprint


def test_roundtrip_ids_equal_the_clis(tiny, tiny_case, tmp_path):
    src = tmp_path / "context.txt"
    src.write_text(tiny_case["context"])
    cli = json.loads(run_cli("roundtrip", "--json", "--model", TINY, "--dtype", "f32", src))
    [py] = tiny.roundtrip([tiny_case["context"]])
    assert py.keys() == cli.keys()
    assert len(py["ids"]) > 0 and py["ids"] == cli["ids"]
    for k in cli.keys() - {"seconds"}:
        assert py[k] == cli[k], k


def test_greedy_ids_equal_the_officials(tiny, tiny_case):
    # The official 40 greedy tokens with no_repeat_ngram_size=3 (HF generate, no stop token).
    want = read_safetensors(TINY / "expected.safetensors")["greedy_ngram3_out"].tolist()
    im_end = tiny.tokenizer.token_to_id("<|im_end|>")
    if im_end in want:  # decompress stops there, as c3 decompress does
        want = want[:want.index(im_end)]
    [lat] = tiny.compress([tiny_case["context"]])
    [text] = tiny.decompress([lat], no_repeat_ngram=3, max_new_tokens=40, length_cap=0)
    assert text == tiny.tokenizer.decode(want)
