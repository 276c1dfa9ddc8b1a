"""Bad input raises a clear exception: c3.Error (a ValueError) with the library's message, or a
TypeError that names the argument; never a crash."""
import pytest
import torch

import c3
from conftest import ROOT, TINY


def test_loading(tmp_path):
    with pytest.raises(c3.Error, match="/nonexistent/model"):
        c3.Cascade.load("/nonexistent/model")
    with pytest.raises(c3.Error, match="device='tpu'"):
        c3.Cascade.load(str(TINY), device="tpu")
    with pytest.raises(c3.Error, match="dtype='f16'"):
        c3.Cascade.load(str(TINY), dtype="f16")
    if not torch.cuda.is_available():
        with pytest.raises(c3.Error, match="CUDA is not available"):
            c3.Cascade.load(str(TINY), device="cuda")


def test_texts(tiny):
    with pytest.raises(c3.Error, match=r"texts\[1\].*empty"):
        tiny.compress(["fine", ""])
    with pytest.raises(c3.Error, match=r"texts\[0\].*only whitespace"):
        tiny.roundtrip([" \n\t"])
    with pytest.raises(c3.Error, match=r"texts\[0\]: invalid UTF-8 at byte offset 2"):
        tiny.compress([b"ok\xff"])
    with pytest.raises(TypeError, match=r"\[text\]"):
        tiny.compress("one text")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        tiny.roundtrip(["fine", 3])
    with pytest.raises(c3.Error, match="chunk_tokens=4"):
        tiny.compress(["fine"], chunk_tokens=4)


def test_decoding_options(tiny):
    [lat] = tiny.compress(["Some text to decode."])
    for kwargs, name in [({"beams": 0}, "beams=0"), ({"no_repeat_ngram": -1}, "no_repeat_ngram=-1"),
                         ({"max_new_tokens": 0}, "max_new_tokens=0"),
                         ({"batch_size": 0}, "batch_size=0")]:
        with pytest.raises(c3.Error, match=name):
            tiny.decompress([lat], **kwargs)
    with pytest.raises(TypeError, match=r"\[latents\]"):
        tiny.decompress(lat)
    with pytest.raises(TypeError, match=r"latents\[0\] must be a c3.Latents"):
        tiny.decompress(["text"])


def test_latents_of_another_model_are_refused(tiny, small):
    [lat] = small.compress(["Made by the small model."])
    with pytest.raises(c3.Error, match=r"latents\[0\]' was made by another model"):
        tiny.decompress([lat])


def test_files_that_are_not_c3_latents(tmp_path):
    with pytest.raises(c3.Error, match="is not a .c3 latent file"):
        c3.Latents.load(str(TINY / "model.safetensors"))
    text = tmp_path / "text.c3"
    text.write_text("not safetensors at all")
    with pytest.raises(c3.Error, match="text.c3"):
        c3.Latents.load(str(text))
    with pytest.raises(c3.Error, match="missing.c3"):
        c3.Latents.load(str(tmp_path / "missing.c3"))
    # A verified file that keeps 2 of its 4 chunks as plain tokens: Latents hold latents only.
    verified = ROOT / "fuzz" / "corpus" / "latent_file" / "v2_valid.c3"
    with pytest.raises(c3.Error, match="stores 2 of its chunks as plain tokens.*c3 decompress"):
        c3.Latents.load(str(verified))


def test_saving_where_it_cannot(tiny):
    [lat] = tiny.compress(["Some text."])
    with pytest.raises(c3.Error, match="/nonexistent/dir/x.c3"):
        lat.save("/nonexistent/dir/x.c3")
    with pytest.raises(c3.Error, match="dtype='int8'"):
        lat.save("/tmp/never.c3", dtype="int8")
