"""The shipped model (models/c3-small) from Python: the same round trips as the CLI, greedy and
with beam search, one chunk and several."""
import json

from conftest import LONG, SMALL, run_cli


def test_roundtrip_equals_the_clis_on_a_document_of_several_chunks(small, long_text):
    cli = json.loads(run_cli("roundtrip", "--json", "--model", SMALL, LONG))
    [py] = small.roundtrip([long_text])
    assert py["chunks"] >= 2 and py["latents"] == py["chunks"] * small.latent_len
    assert py.keys() == cli.keys()
    for k in cli.keys() - {"seconds"}:
        assert py[k] == cli[k], k


def test_beam_search_equals_the_clis(small, sample, tmp_path):
    src = tmp_path / "sample.txt"
    src.write_text(sample)
    cli = json.loads(run_cli("roundtrip", "--json", "--beams", "2", "--chunk-tokens", "24",
                             "--model", SMALL, src))
    [py] = small.roundtrip([sample], beams=2, chunk_tokens=24)
    assert py["chunks"] > 1
    assert (py["ids"], py["text"]) == (cli["ids"], cli["text"])


def test_compress_then_decompress_gives_the_texts_back(small, sample):
    texts = [sample, "Alice was beginning to get very tired of sitting by her sister on the bank."]
    lats = small.compress(texts)
    assert [len(x) for x in lats] == [1, 1]
    assert lats[0].tensor.shape == (1, small.latent_len, small.hidden_size)
    n = len(sample.encode())
    assert lats[0].source_bytes == n and lats[0].chunk_bytes == [n]
    assert small.decompress(lats) == texts
    assert small.compress([]) == [] and small.decompress([]) == []


def test_properties(small):
    assert (small.latent_len, small.hidden_size, small.max_passage_tokens) == (32, 256, 640)
    assert (small.device, small.dtype) == ("cpu", "float32")
    assert small.path == str(SMALL) and len(small.fingerprint) == 32
    assert "c3-small" in repr(small)
