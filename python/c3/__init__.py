"""c3 from Python: Context Cascade Compression on PyTorch tensors.

A thin layer over the C++ library (the module c3._c3, built with pybind11 against the LibTorch
that this Python's torch uses):

    import c3
    model = c3.Cascade.load("models/c3-small")           # device="cpu", dtype="auto"
    [lat] = model.compress([text])                       # c3.Latents: .tensor [chunks, L, hidden]
    lat.save("doc.c3")                                   # the .c3 file `c3 decompress` reads
    [back] = model.decompress([c3.Latents.load("doc.c3")])
    model.roundtrip([text])                              # dicts as `c3 roundtrip --json`
    model.compress_file(text, "doc.c3", min_precision=0.99)   # verified, as the CLI's
    model.decompress_file("doc.c3")                      # any .c3 file, plain chunks too
    c3.evaluate(model, texts, bins="288-352")            # the dict of `c3 eval --json`
    c3.Tokenizer.from_file("tokenizer.json").encode(text)

Errors in the input raise c3.Error (a ValueError) with the library's message. See docs/python.md.
"""

__version__ = "0.1.0"

import torch  # first: it loads the LibTorch libraries that c3._c3 links against

from ._c3 import Cascade, Error, Latents, Tokenizer, evaluate, torch_version


def _check_torch() -> None:
    # Two different LibTorch builds in one process crash rather than fail: refuse at import.
    built = torch_version.split(".")[:2]
    running = torch.__version__.split("+")[0].split(".")[:2]
    if built != running:
        raise ImportError(
            f"c3 was built against LibTorch {torch_version} but this Python's torch is "
            f"{torch.__version__}; rebuild it in this environment "
            "(pip install --no-build-isolation --force-reinstall .)")


_check_torch()

__all__ = ["Cascade", "Error", "Latents", "Tokenizer", "evaluate", "torch_version", "__version__"]
