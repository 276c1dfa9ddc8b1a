#!/usr/bin/env bash
# Install, build, and run every test (GoogleTest through ctest) against ../shared/testdata, the
# Python module's pytest suite among them (ctest -L python), then install the Python package into
# a venv as the README says, reusing build/'s module (C3_BUILD_DIR), and import it.
# Then a second pass: an ASan + UBSan build (build-asan/) and its ctest run; C3_CI_SANITIZE=0 skips
# it (docs/hardening.md has the times on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Debian's python3: the one whose torch (python3-torch) is the LibTorch that c3 links.
PY="${C3_PYTHON_EXE:-/usr/bin/python3}"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DC3_BUILD_TESTS=ON -DC3_BUILD_BENCH=OFF \
  -DC3_PYTHON=ON -DPython3_EXECUTABLE="$PY" >/dev/null
ninja -C build
(cd build && C3_NO_PROGRESS=1 ctest --output-on-failure -j2)
rm -rf build/venv && "$PY" -m venv --system-site-packages build/venv
C3_BUILD_DIR=build build/venv/bin/pip install -q --no-build-isolation --no-index --disable-pip-version-check .
(cd build && venv/bin/python -c 'import c3; print("venv: c3", c3.__version__, "from", c3.__file__)')
if [[ ${C3_CI_SANITIZE:-1} == 1 ]]; then
  # LibTorch is not built with ASan: its allocations at load time read as leaks, so leak checking
  # is off; every other ASan/UBSan report fails the test.
  # -O0 with line tables only (-g1): a third of RelWithDebInfo's compile time, and the reports
  # still name file and line. The decode kernels stay optimised (CMakeLists.txt says why).
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" \
    -DC3_BUILD_TESTS=ON -DC3_BUILD_BENCH=OFF -DC3_SANITIZE=ON >/dev/null
  ninja -C build-asan
  (cd build-asan && C3_NO_PROGRESS=1 ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j2)
fi
