"""scripts/grow_model.py: function-preserving growth of a trained c3 model into a wider, deeper
shape. The grown cascade gives the source's ids, its latents are the source's with zeros in the
new dimensions, and shapes it cannot grow into are refused by name."""
import json
import subprocess
import sys

import pytest
import torch

import c3
from conftest import ROOT, SMALL

SCRIPT = ROOT / "scripts" / "grow_model.py"
RECIPE = [f"--encoder-config={ROOT / 'configs' / 'recipe-encoder.json'}",
          f"--decoder-config={ROOT / 'configs' / 'recipe-decoder.json'}"]
TEXT = "The lighthouse keeper wrote down the weather every hour, even when nobody asked."


def grow(src, out, *args):
    return subprocess.run([sys.executable, str(SCRIPT), str(src), *args, "--out", str(out)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    out = tmp_path_factory.mktemp("grow") / "recipe"
    p = grow(SMALL, out, *RECIPE)
    assert p.returncode == 0, p.stderr
    return out


def test_the_grown_model_has_the_target_shape(grown):
    root = json.loads((grown / "config.json").read_text())
    enc = json.loads((grown / "llm1" / "config.json").read_text())
    for cfg in (root, enc):
        assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"],
                cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (512, 1536, 8, 8, 4)
    assert root["contexts_compression_llm_hidden_size"] == 512
    assert root["c3_query_positions"] == "segments"  # the source's layout is kept


def test_it_computes_what_the_source_computes(grown):
    small = c3.Cascade.load(str(SMALL), dtype="f32")
    big = c3.Cascade.load(str(grown), dtype="f32")
    [a], [b] = small.compress([TEXT]), big.compress([TEXT])
    assert b.tensor.shape == (len(a), 32, 512)
    assert torch.equal(b.tensor[..., 256:], torch.zeros_like(b.tensor[..., 256:]))
    assert torch.allclose(b.tensor[..., :256], a.tensor, rtol=1e-5, atol=2e-5), \
        (b.tensor[..., :256] - a.tensor).abs().max()
    ra, rb = small.roundtrip([TEXT])[0], big.roundtrip([TEXT])[0]
    assert rb["ids"] == ra["ids"] and rb["text"] == TEXT


def test_shapes_it_cannot_grow_into_are_refused_by_name(tmp_path, grown):
    small_cfgs = [f"--encoder-config={ROOT / 'configs' / 'small-encoder.json'}",
                  f"--decoder-config={ROOT / 'configs' / 'small-decoder.json'}"]
    p = grow(grown, tmp_path / "shrunk", *small_cfgs)
    assert p.returncode != 0 and "hidden_size would shrink from 512 to 256" in p.stderr, p.stderr
    odd = tmp_path / "odd-heads.json"
    cfg = json.loads((ROOT / "configs" / "recipe-decoder.json").read_text())
    cfg["num_attention_heads"] = 16  # head size 32 instead of 64
    odd.write_text(json.dumps(cfg))
    p = grow(SMALL, tmp_path / "odd", RECIPE[0], f"--decoder-config={odd}")
    assert p.returncode != 0 and "decoder: head_dim must stay 64" in p.stderr, p.stderr
    p = grow(SMALL, grown, *RECIPE)
    assert p.returncode != 0 and "exists; choose a new folder" in p.stderr
    for bad in (tmp_path / "shrunk", tmp_path / "odd"):
        assert not bad.exists()
    assert not list(tmp_path.glob(".grow-*")) and not list(grown.parent.glob(".grow-*"))
