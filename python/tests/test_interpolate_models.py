"""scripts/interpolate_models.py: weight averaging of two c3 model folders (how c3-small v10 was
made). The ends give each model back tensor for tensor, the middle is the mean, the result loads
and decodes, and mismatched folders are refused with the tensor's name."""
import shutil
import subprocess
import sys

import pytest
import torch

import c3
from conftest import ROOT, SMALL, TINY

sys.path.insert(0, str(ROOT / "scripts"))
from interpolate_models import read_safetensors, write_safetensors  # noqa: E402

SCRIPT = ROOT / "scripts" / "interpolate_models.py"


def interpolate(a, b, t, out):
    return subprocess.run([sys.executable, str(SCRIPT), str(a), str(b), "--t", str(t), "--out", str(out)],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """c3-small with every weight of the decoder file plus 0.5: a second model of the same shape."""
    d = tmp_path_factory.mktemp("shifted") / "model"
    shutil.copytree(SMALL, d)
    tensors, meta = read_safetensors(str(d / "llm1" / "model.safetensors"))
    write_safetensors(str(d / "llm1" / "model.safetensors"),
                      {k: (v.float() + 0.5).to(v.dtype) for k, v in tensors.items()}, meta)
    return d


def test_the_ends_are_the_models_and_the_middle_their_mean(tmp_path, shifted):
    for t, want in ((0, SMALL), (1, shifted)):
        p = interpolate(SMALL, shifted, t, tmp_path / f"t{t}")
        assert p.returncode == 0, p.stderr
        for f in ("model.safetensors", "llm1/model.safetensors"):
            got, _ = read_safetensors(str(tmp_path / f"t{t}" / f))
            ref, _ = read_safetensors(str(want / f))
            assert got.keys() == ref.keys()
            assert all(torch.equal(got[k], ref[k]) for k in ref), (t, f)
    p = interpolate(SMALL, shifted, 0.5, tmp_path / "mid")
    assert p.returncode == 0, p.stderr
    mid, _ = read_safetensors(str(tmp_path / "mid" / "llm1" / "model.safetensors"))
    a, _ = read_safetensors(str(SMALL / "llm1" / "model.safetensors"))
    for k, v in mid.items():  # a + 0.25, within one bf16 rounding of the stored value
        assert torch.allclose(v.float(), a[k].float() + 0.25, rtol=1e-2, atol=1e-2), k
    enc_mid, _ = read_safetensors(str(tmp_path / "mid" / "model.safetensors"))
    enc, _ = read_safetensors(str(SMALL / "model.safetensors"))
    assert all(torch.equal(enc_mid[k], enc[k]) for k in enc)  # equal in both: unchanged


def test_the_result_loads_and_decodes_like_the_model(tmp_path):
    p = interpolate(SMALL, SMALL, 0.3, tmp_path / "same")
    assert p.returncode == 0, p.stderr
    text = "The lighthouse keeper wrote down the weather every hour, even when nobody asked."
    want = c3.Cascade.load(str(SMALL)).roundtrip([text])[0]["text"]
    assert c3.Cascade.load(str(tmp_path / "same")).roundtrip([text])[0]["text"] == want == text


def test_models_of_another_shape_are_refused_by_name(tmp_path):
    p = interpolate(SMALL, TINY, 0.5, tmp_path / "bad")  # c3-tiny has a third weight file
    assert p.returncode != 0 and not (tmp_path / "bad").exists()
    assert "hold different weight files" in p.stderr and "Traceback" not in p.stderr, p.stderr
    tiny = tmp_path / "tiny"
    shutil.copytree(TINY, tiny)
    (tiny / "expected.safetensors").unlink()
    p = interpolate(SMALL, tiny, 0.5, tmp_path / "bad")  # the same files, other tensors
    assert p.returncode != 0 and not (tmp_path / "bad").exists()
    assert ("hold different tensors" in p.stderr or ": shape [" in p.stderr) and "Traceback" not in p.stderr, p.stderr
    assert not list(tmp_path.glob(".interp-*")), "a failed run leaves no work folder"
