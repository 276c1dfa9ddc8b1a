"""Cascade.compress_file and decompress_file: .c3 files as `c3 compress` and `c3 decompress` write
and read them, verified compression (min_precision) included, crossing with the CLI both ways."""
import warnings
from pathlib import Path

import pytest

import c3
from conftest import ROOT, SMALL, run_cli

# 636 c3-small tokens: one 640-token chunk (20 tokens per latent, twice what c3-small is made
# for) does not come back exactly, so verification has something to cut.
LIGHTHOUSE = ROOT / "tests" / "data" / "lighthouse.txt"


@pytest.fixture(scope="module")
def lighthouse() -> str:
    return LIGHTHOUSE.read_text()


def test_verified_file_comes_back_exactly_where_plain_compression_does_not(small, lighthouse,
                                                                           tmp_path):
    plain = small.compress_file(lighthouse, tmp_path / "plain.c3", chunk_tokens=640)
    assert (plain["chunks"], plain["latent_chunks"], plain["plain_chunks"]) == (1, 1, 0)
    assert plain["verified"] is False and plain["lowest_precision"] is None
    assert plain["ratio"] == pytest.approx(plain["tokens"] / 32)
    assert small.decompress_file(tmp_path / "plain.c3") != lighthouse  # the premise

    r = small.compress_file(lighthouse, str(tmp_path / "v.c3"), chunk_tokens=640, min_precision=1)
    assert r["verified"] is True and r["min_precision"] == 1 and r["lowest_precision"] == 1.0
    assert r["tokens"] == plain["tokens"] and r["bytes"] == len(lighthouse.encode())
    assert r["chunks"] == r["latent_chunks"] + r["plain_chunks"] > 1
    assert r["slots"] == r["latent_chunks"] * 32 + r["plain_tokens"]
    assert r["ratio"] == pytest.approx(r["tokens"] / r["slots"])
    assert r["encodes"] > r["chunks"]  # the first chunk was tried whole, then cut
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recorded settings: no warning
        assert small.decompress_file(tmp_path / "v.c3") == lighthouse


def test_files_cross_with_the_cli_both_ways(small, lighthouse, tmp_path):
    run_cli("compress", "--model", SMALL, "--chunk-tokens", 640, "--min-precision", 1,
            LIGHTHOUSE, "-o", tmp_path / "cli.c3")
    assert small.decompress_file(tmp_path / "cli.c3") == lighthouse
    small.compress_file(lighthouse, tmp_path / "py.c3", chunk_tokens=640, min_precision=1)
    assert (tmp_path / "py.c3").read_bytes() == (tmp_path / "cli.c3").read_bytes()
    assert run_cli("decompress", "--model", SMALL, tmp_path / "py.c3") == lighthouse
    # Unverified files too; and Latents.load reads what compress_file writes.
    small.compress_file(lighthouse, tmp_path / "plain.c3")
    assert small.decompress_file(tmp_path / "plain.c3") == \
        run_cli("decompress", "--model", SMALL, tmp_path / "plain.c3") == \
        small.decompress([c3.Latents.load(str(tmp_path / "plain.c3"))])[0]


def test_overriding_a_recorded_setting_warns(small, lighthouse, tmp_path):
    small.compress_file(lighthouse, tmp_path / "v.c3", chunk_tokens=640, min_precision=1)
    with pytest.warns(UserWarning, match=r"length_cap \(recorded 1.5, now 2\).*recorded settings"):
        # Every chunk stops at <|im_end|> well before either cap: the same text.
        assert small.decompress_file(tmp_path / "v.c3", length_cap=2) == lighthouse


def test_bad_input_is_named(small, tiny, sample, tmp_path):
    with pytest.raises(c3.Error, match=r"min_precision=1.5: expected a char precision from 0 to 1"):
        small.compress_file(sample, tmp_path / "a.c3", min_precision=1.5)
    with pytest.raises(c3.Error, match=r"verify_floor=-1"):
        small.compress_file(sample, tmp_path / "a.c3", min_precision=0.9, verify_floor=-1)
    assert not (tmp_path / "a.c3").exists()
    with pytest.raises(c3.Error, match="latent_dtype='f16'"):
        small.compress_file(sample, tmp_path / "a.c3", latent_dtype="f16")
    with pytest.raises(TypeError, match="text must be a str, got list"):
        small.compress_file([sample], tmp_path / "a.c3")
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        small.compress_file(sample, 3)
    with pytest.raises(c3.Error, match="missing.c3"):
        small.decompress_file(tmp_path / "missing.c3")
    small.compress_file(sample, tmp_path / "s.c3")
    with pytest.raises(c3.Error, match="s.c3"):  # made by another model
        tiny.decompress_file(tmp_path / "s.c3")
