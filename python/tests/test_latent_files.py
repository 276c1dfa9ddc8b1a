"""Latents cross between Python and .c3 files both ways, and their tensor is shared with torch."""
import pytest
import torch

import c3
from conftest import LONG, SMALL, run_cli


def test_a_file_from_the_cli_loads_and_decodes_in_python(small, long_text, tmp_path):
    path = tmp_path / "cli.c3"
    run_cli("compress", "--model", SMALL, LONG, "-o", path)  # bf16 latents, as by default
    lat = c3.Latents.load(str(path))
    n = len(lat)
    assert n >= 2 and lat.tensor.shape == (n, 32, 256) and lat.tensor.dtype == torch.bfloat16
    assert sum(lat.chunk_tokens) == lat.source_tokens
    assert sum(lat.chunk_bytes) == lat.source_bytes == len(long_text.encode())
    assert lat.model_fingerprint == small.fingerprint
    assert lat.tokenizer_hash == small.tokenizer.file_hash
    assert small.decompress([lat]) == [run_cli("decompress", "--model", SMALL, path)]
    # Python's fp32 latents, rounded as the CLI stores them, are the file's.
    [mine] = small.compress([long_text])
    assert torch.equal(mine.tensor.to(torch.bfloat16), lat.tensor)
    assert (mine.chunk_tokens, mine.chunk_bytes) == (lat.chunk_tokens, lat.chunk_bytes)


def test_a_file_from_python_decodes_with_the_cli(small, sample, tmp_path):
    [lat] = small.compress([sample], chunk_tokens=24)
    assert len(lat) == 3
    for dtype, want in [(None, torch.float32), ("bf16", torch.bfloat16)]:
        path = tmp_path / f"py-{dtype}.c3"
        lat.save(str(path), dtype=dtype)
        back = c3.Latents.load(str(path))
        assert back.tensor.dtype == want
        assert torch.equal(back.tensor, lat.tensor.to(want))
        assert (back.chunk_tokens, back.chunk_bytes, back.source_chars) == \
            (lat.chunk_tokens, lat.chunk_bytes, lat.source_chars)
        assert run_cli("decompress", "--model", SMALL, path) == small.decompress([back])[0]


def test_the_tensor_is_shared_not_copied(small, sample):
    [lat] = small.compress([sample])
    t = lat.tensor
    assert t.data_ptr() == lat.tensor.data_ptr()
    t.zero_()
    assert lat.tensor.abs().sum().item() == 0
    mine = torch.ones(1, 32, 256, requires_grad=True)
    lat.tensor = mine
    with torch.no_grad():
        mine.mul_(2)
    assert torch.all(lat.tensor == 2) and not lat.tensor.requires_grad
    with pytest.raises(c3.Error, match=r"shape \[1, 32, 256\], got \[1, 2, 3\]"):
        lat.tensor = torch.zeros(1, 2, 3)
    with pytest.raises(TypeError, match="torch.Tensor"):
        lat.tensor = [[0.0]]
