"""bench/torch_reference.py, the cascade written again in plain PyTorch apart from c3's C++, gives
c3's greedy ids for the shipped model: its query layout (segment positions), prompt, n-gram ban
and stopping, checked by an independent implementation on every CI run."""
import sys

import pytest

import c3
from conftest import LONG, ROOT, SMALL

sys.path.insert(0, str(ROOT / "bench"))
from torch_reference import Cascade, NgramBan  # noqa: E402


@pytest.fixture(scope="module")
def pair():
    mine = c3.Cascade.load(str(SMALL), dtype="f32")
    return mine, Cascade(str(SMALL), mine.tokenizer)


@pytest.mark.parametrize("text", [
    "The lighthouse keeper wrote down the weather every hour, even when nobody asked.",
    LONG.read_text()[:1800],  # one chunk of 508 tokens
], ids=["one sentence", "a 508-token chunk"])
def test_plain_pytorch_gives_c3s_ids(pair, text):
    mine, ref = pair
    ids = mine.tokenizer.encode(text)
    assert len(ids) <= mine.max_passage_tokens
    got = mine.roundtrip([text])[0]
    want = ref.decompress(ref.compress(ids), len(ids))
    assert got["ids"] == want
    assert got["text"] == text  # and both bring the text back


def test_the_ngram_ban_is_hfs():
    ban = NgramBan(3, [5, 6, 7, 5, 6])
    assert ban.banned() == {7}  # "5 6 7" exists: after "5 6", 7 would repeat it
    ban.push(8)
    assert ban.banned() == set()
    assert NgramBan(0, [1, 1, 1]).banned() == set()
