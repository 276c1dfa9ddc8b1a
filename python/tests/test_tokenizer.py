"""c3.Tokenizer: the golden ids of the official C3 tokenizer, the CLI's ids, and clear errors."""
import json

import pytest

import c3
from conftest import SMALL, TINY, read_safetensors, run_cli


def test_encode_gives_the_golden_ids(tiny_case):
    tok = c3.Tokenizer.from_file(str(TINY / "tokenizer.json"))
    # The official encoder input: the context, then <img>, L x <imgpad>, </img>.
    golden = read_safetensors(TINY / "expected.safetensors")["context_ids"].tolist()
    assert tok.encode(tiny_case["encoder_input"]) == golden
    assert tok.decode(golden) == tiny_case["encoder_input"]
    assert tok.encode(tiny_case["context"]) == golden[:-10]


def test_encode_batch_equals_the_cli(sample, long_text):
    texts = [sample, long_text, "a <|im_end|> inside", "ünïcödé ✓ 日本語",
             "  spaces\n\nand lines "]
    path = SMALL / "tokenizer.json"
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    out = run_cli("tokenize", "--tokenizer", path, stdin=lines)
    want = [json.loads(line)["ids"] for line in out.splitlines()]
    tok = c3.Tokenizer.from_file(str(path))
    assert tok.encode_batch(texts) == want
    assert [tok.encode(t) for t in texts] == want
    assert [tok.decode(ids) for ids in want] == texts


def test_the_cascade_holds_its_models_tokenizer(small):
    tok = small.tokenizer
    assert tok.file_hash == c3.Tokenizer.from_file(str(SMALL / "tokenizer.json")).file_hash
    im_end = tok.token_to_id("<|im_end|>")
    assert im_end is not None and tok.is_special(im_end) and tok.id_to_token(im_end) == "<|im_end|>"
    assert tok.token_to_id("no such token") is None and tok.id_to_token(10**6) is None
    assert tok.vocab_size == 4096
    assert tok.decode([im_end], skip_special_tokens=True) == ""


def test_bad_input_raises_clear_errors():
    tok = c3.Tokenizer.from_file(str(TINY / "tokenizer.json"))
    with pytest.raises(c3.Error, match="byte offset 3"):
        tok.encode(b"abc\xff")
    with pytest.raises(c3.Error, match=r"texts\[1\]: .*byte offset 1"):
        tok.encode_batch(["fine", b"a\xc3"])
    with pytest.raises(TypeError, match=r"not one text"):
        tok.encode_batch("one text")
    with pytest.raises(c3.Error, match="nope.json"):
        c3.Tokenizer.from_file("/nonexistent/nope.json")
    assert issubclass(c3.Error, ValueError)
