"""c3.evaluate gives the report of `c3 eval --json` over the same texts."""
import json

import pytest

import c3
from conftest import SMALL, run_cli


def test_the_report_equals_the_clis(small, sample, long_text, tmp_path):
    texts = [sample, long_text, sample + "\n\n" + long_text[:1500]]
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    bins = "16-48,96-160"
    run_cli("eval", "--model", SMALL, "--data", data, "--bins", bins, "--per-bin", 3,
            "--json", tmp_path / "cli.json")
    cli = json.loads((tmp_path / "cli.json").read_text())
    py = c3.evaluate(small, texts, bins=bins, per_bin=3)
    assert py.keys() == cli.keys()
    assert (py["model"], py["latents"]) == (cli["model"], cli["latents"])
    assert py["data"] == "3 texts from Python"
    # The sample is under 96 tokens: the second bin gets a passage from the two others only.
    assert [b["n"] for b in py["bins"]] == [b["n"] for b in cli["bins"]] == [3, 2]
    for mine, theirs in zip(py["bins"], cli["bins"]):
        assert mine.keys() == theirs.keys()
        for k in theirs.keys() - {"seconds"}:
            assert mine[k] == theirs[k], (mine["bin"], k)
    for k in ("docs_read", "per_bin", "no_repeat_ngram", "num_beams", "device", "fingerprint"):
        assert py["meta"][k] == cli["meta"][k], k
    # Bins as (lo, hi) pairs are the same bins.
    pairs = c3.evaluate(small, texts, bins=[(16, 48)], per_bin=1, token_accuracy=False)
    assert pairs["bins"][0]["bin"] == "16-48" and pairs["bins"][0]["token_accuracy"] is None


def test_exact_length_equals_the_clis(small, long_text, tmp_path):
    data = tmp_path / "texts.jsonl"
    data.write_text(json.dumps({"text": long_text}) + "\n")
    run_cli("eval", "--model", SMALL, "--data", data, "--bins", "600-700", "--per-bin", 1,
            "--exact-length", "--json", tmp_path / "cli.json")
    cli = json.loads((tmp_path / "cli.json").read_text())
    py = c3.evaluate(small, [long_text], bins="600-700", per_bin=1, exact_length=True)
    assert py["meta"]["exact_length"] is True and cli["meta"]["exact_length"] is True
    assert "exact_length" not in c3.evaluate(small, [long_text], bins="16-48", per_bin=1)["meta"]
    for k in ("char_precision", "exact_match", "word_precision", "token_accuracy"):
        assert py["bins"][0][k] == cli["bins"][0][k], k


def test_bad_bins(small):
    with pytest.raises(c3.Error, match="48-16"):
        c3.evaluate(small, ["text"], bins="48-16")
    with pytest.raises(TypeError, match="bins"):
        c3.evaluate(small, ["text"], bins=[("a", "b")])
