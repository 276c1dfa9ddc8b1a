#!/usr/bin/env bash
# The Python module on the GPU machine (issue 20), one call on nvidia-h200: build the CLI and
# c3._c3 against PyTorch 2.11's LibTorch (build-gpu/, -DC3_PYTHON=ON), run the pytest suite
# there, check that `pip install .` reuses that build, and time the Python round trip against the
# CLI's on CUDA (bench/python_roundtrip.py; the goal: within 5%). Prepare here first with
#   bash scripts/device/bundle_deps.sh        # then carry .deps
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
export CUDACXX="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
PY="$(command -v python3)"
"$PY" -c 'import torch, pybind11; print("torch", torch.__version__, torch.cuda.get_device_name(), "pybind11", pybind11.__version__)'
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=ON -DC3_PYTHON=ON \
  -DPython3_EXECUTABLE="$PY" > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
ninja -C build-gpu c3 _c3 > "$OUT/build.log" 2>&1 || { grep -E "error" -A3 "$OUT/build.log" | head -60; exit 1; }
echo "built c3 and _c3 at ${SECONDS}s"
echo "== pytest (CPU tests, torch $("$PY" -c 'import torch; print(torch.__version__)'))"
# -v and faulthandler: a crash names its test and Python stack (2026-12-05: a segfault on 2.11
# whose test the tail did not show).
PYTHONPATH=build-gpu/python C3_BIN=build-gpu/c3 "$PY" -X faulthandler -m pytest -v -p no:cacheprovider \
  python/tests > "$OUT/pytest.txt" 2>&1
echo "pytest exit $?"
grep -E "PASSED|FAILED|ERROR|SKIPPED" "$OUT/pytest.txt" | grep -vc PASSED | xargs echo "not passed:"
grep -E "FAILED|ERROR|Fatal Python|Segmentation|^  File|^Thread|^Current thread" "$OUT/pytest.txt" | head -30
tail -3 "$OUT/pytest.txt"
# A crash stops pytest: its native stack (gdb, or cuda-gdb, which the GPU image has instead and
# which debugs host code too), then the tests after it.
crashed="$(grep -oE "^python/tests/[^ ]+::[^ ]+ Fatal Python error" "$OUT/pytest.txt" | head -1 | cut -d' ' -f1)"
if [ -n "$crashed" ]; then
  echo "== $crashed crashed: its native stack"
  GDB="$(command -v gdb || command -v cuda-gdb || true)"
  if [ -n "$GDB" ]; then
    PYTHONPATH=build-gpu/python C3_BIN=build-gpu/c3 timeout 180 "$GDB" -q -batch -ex run -ex bt \
      -ex "info sharedlibrary" --args "$PY" -m pytest -q -p no:cacheprovider "$crashed" \
      > "$OUT/crash_stack.txt" 2>&1
    grep -E "^#[0-9]+ " "$OUT/crash_stack.txt" | head -25
  else
    echo "no gdb or cuda-gdb on this machine"
  fi
  # Which variant of Latents.save crashes, each in its own process (2026-12-05: save of a float32
  # tensor from compress, dtype=None).
  for variant in "None" "'f32'" "'bf16'" "None, touched" ; do
    PYTHONPATH=build-gpu/python timeout 60 "$PY" -X faulthandler - "$variant" > /tmp/probe.txt 2>&1 <<'PYPROBE'
import sys, tempfile, os, c3
variant = sys.argv[1]
m = c3.Cascade.load("models/c3-small")
[lat] = m.compress([open("docs/sample.txt").read()], chunk_tokens=24)
if variant.endswith("touched"):
    _ = lat.tensor.sum()
dtype = eval(variant.split(",")[0])
path = os.path.join(tempfile.mkdtemp(), "p.c3")
lat.save(path, dtype=dtype)
back = c3.Latents.load(path)
print("saved and loaded", back)
PYPROBE
    echo "Latents.save(dtype=$variant): exit $? $(tail -1 /tmp/probe.txt | cut -c1-160)"
  done
  # One suspect: _c3's own copies of inline library code (nlohmann::json, fmt) bound by the
  # dynamic linker to other copies that torch's libraries export, as happens to a module and not
  # to the c3 executable (an executable's own definitions come first). The bindings of _c3's
  # symbols that land in another library, by library, and the library-code ones among them.
  LD_DEBUG=bindings LD_DEBUG_OUTPUT=/tmp/ldb PYTHONPATH=build-gpu/python timeout 60 "$PY" - \
    > /dev/null 2>&1 <<'PYBIND'
import os, tempfile, c3
m = c3.Cascade.load("models/c3-small")
[lat] = m.compress([open("docs/sample.txt").read()], chunk_tokens=24)
lat.save(os.path.join(tempfile.mkdtemp(), "p.c3"), dtype="bf16")
PYBIND
  cat /tmp/ldb.* 2>/dev/null | grep -E "binding file [^ ]*_c3[^ ]*\.so" | grep -vE "to [^ ]*_c3[^ ]*\.so" \
    > "$OUT/c3_bindings.txt"
  echo "_c3 symbols bound elsewhere: $(wc -l < "$OUT/c3_bindings.txt")"
  sed -E 's/.* to ([^ ]+) \[[0-9]+\]: .*/\1/' "$OUT/c3_bindings.txt" | sort | uniq -c | sort -rn | head -8
  # Library code bound into a library that is not its own (libfmt, libxxhash) is the suspect.
  sed -E "s/.* to ([^ ]+) \[[0-9]+\]: normal symbol \`([^']+)'.*/\1 \2/" "$OUT/c3_bindings.txt" | c++filt \
    | grep -E "nlohmann|fmt::|XXH" | grep -vE "^[^ ]*/lib(fmt|xxhash)\.so" | cut -c1-200 | sort -u | head -15
  PYTHONPATH=build-gpu/python C3_BIN=build-gpu/c3 "$PY" -X faulthandler -m pytest -q -p no:cacheprovider \
    --deselect "$crashed" python/tests > "$OUT/pytest_rest.txt" 2>&1
  echo "the others: exit $?"; grep -E "FAILED|ERROR|Fatal Python" "$OUT/pytest_rest.txt" | head -20
  tail -2 "$OUT/pytest_rest.txt"
fi
echo "== pip install reusing build-gpu"
C3_BUILD_DIR=build-gpu "$PY" -m pip install -q --no-build-isolation --no-deps --no-index \
  --target /tmp/c3pkg . > "$OUT/pip.log" 2>&1 || tail -20 "$OUT/pip.log"
(cd /tmp && PYTHONPATH=/tmp/c3pkg "$PY" -c 'import c3; print("c3", c3.__version__, "from", c3.__file__)')
echo "== Python round trip vs the CLI on CUDA"
for beams in 1 4; do
  PYTHONPATH=build-gpu/python "$PY" bench/python_roundtrip.py --c3 build-gpu/c3 --device cuda \
    --repeats 15 --beams "$beams"
done 2>&1 | tee "$OUT/python_roundtrip_cuda.txt"
echo "total ${SECONDS}s"
