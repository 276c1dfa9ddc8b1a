"""Every call that computes or reads files runs without the GIL. The module records, inside each
such call, whether the calling thread held the GIL there (PyGILState_Check); a call that forgot to
release it reads "held", one that skipped the release helper "none"."""
import pytest

import c3
from c3 import _c3
from conftest import SMALL, TINY


@pytest.mark.parametrize("name", [
    "Cascade.load", "compress", "decompress", "roundtrip", "compress_file", "decompress_file",
    "evaluate", "Latents.load", "Latents.save", "Tokenizer.from_file", "encode", "encode_batch",
    "decode"])
def test_the_gil_is_released(tiny, tiny_case, tmp_path, name):
    text = tiny_case["context"]
    [lat] = tiny.compress([text])
    lat.save(str(tmp_path / "x.c3"))
    tok = tiny.tokenizer
    calls = {
        "Cascade.load": lambda: c3.Cascade.load(str(TINY)),
        "compress": lambda: tiny.compress([text]),
        "decompress": lambda: tiny.decompress([lat]),
        "roundtrip": lambda: tiny.roundtrip([text]),
        "compress_file": lambda: tiny.compress_file(text, tmp_path / "z.c3", min_precision=0.5),
        "decompress_file": lambda: tiny.decompress_file(tmp_path / "x.c3"),
        "evaluate": lambda: c3.evaluate(tiny, [text], bins="16-48", per_bin=1),
        "Latents.load": lambda: c3.Latents.load(str(tmp_path / "x.c3")),
        "Latents.save": lambda: lat.save(str(tmp_path / "y.c3")),
        "Tokenizer.from_file": lambda: c3.Tokenizer.from_file(str(SMALL / "tokenizer.json")),
        "encode": lambda: tok.encode(text),
        "encode_batch": lambda: tok.encode_batch([text] * 4),
        "decode": lambda: tok.decode([1, 2, 3]),
    }
    _c3._last_call_gil()  # reset
    calls[name]()
    assert _c3._last_call_gil() == "released"
