"""Fixtures for the c3 Python tests: where the CLI, the golden data and the models are, the
loaded cascades (once per session), and a runner for the CLI that the results are compared with.

Run by ctest (python_tests) with PYTHONPATH=<build>/python and C3_BIN=<build>/c3, or by hand:
  PYTHONPATH=build/python python3 -m pytest python/tests
Missing golden data fails the tests; it never skips them.
"""
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest
import torch

import c3

ROOT = Path(__file__).resolve().parents[2]


def testdata_dir() -> Path:
    for var in ("C3_TESTDATA", "C3_TESTDATA_DEFAULT"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return ROOT.parent / "shared" / "testdata"


TINY = testdata_dir() / "c3" / "c3-tiny"
SMALL = ROOT / "models" / "c3-small"
SAMPLE = ROOT / "docs" / "sample.txt"
LONG = ROOT / "bench" / "data" / "valid-passage-970tok.txt"  # 3 chunks with c3-small


def run_cli(*args, stdin: str = None) -> str:
    """Runs the c3 CLI next to this build; its stdout, or a failure with its stderr."""
    exe = os.environ.get("C3_BIN", str(ROOT / "build" / "c3"))
    env = dict(os.environ, C3_NO_PROGRESS="1")
    p = subprocess.run([exe, *map(str, args)], input=stdin, capture_output=True, text=True, env=env)
    assert p.returncode == 0, f"c3 {' '.join(map(str, args))} failed:\n{p.stderr}"
    return p.stdout


def read_safetensors(path: Path) -> dict:
    """The tensors of a safetensors file (the few dtypes the golden files use)."""
    dtypes = {"F32": torch.float32, "I64": torch.int64, "BF16": torch.bfloat16}
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        data = bytearray(raw[8 + n + begin:8 + n + end])
        out[name] = torch.frombuffer(data, dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


@pytest.fixture(scope="session")
def tiny() -> c3.Cascade:
    assert TINY.is_dir(), f"golden data missing: {TINY} (set C3_TESTDATA)"
    return c3.Cascade.load(str(TINY), device="cpu", dtype="f32")


@pytest.fixture(scope="session")
def small() -> c3.Cascade:
    return c3.Cascade.load(str(SMALL))


@pytest.fixture(scope="session")
def tiny_case() -> dict:
    return json.loads((TINY / "case.json").read_text())


@pytest.fixture(scope="session")
def sample() -> str:
    return SAMPLE.read_text()


@pytest.fixture(scope="session")
def long_text() -> str:
    return LONG.read_text()
