#!/usr/bin/env bash
# On the GPU machine: builds model_tests and c3 against this machine's PyTorch LibTorch (CUDA),
# runs the golden Qwen2 tests (fp32 on CPU, plus bf16 on CUDA via C3_TEST_DEVICE=cuda), and
# compares c3 with HF transformers' Qwen2ForCausalLM on the same weights, fp32 and bf16 on CUDA.
#
# Usage, from the repo root on the device:
#   bash scripts/device/golden_model.sh
# Env: C3_TESTDATA (default ../shared/testdata), C3_DEPS_PREFIX=DIR adds DIR to CMAKE_PREFIX_PATH.
# Writes a log to $OUT/golden_model.log when OUT is set (the device tool's output folder).
set -euo pipefail
cd "$(dirname "$0")/../.."

TESTDATA="${C3_TESTDATA:-$(pwd)/../shared/testdata}"
if [ ! -d "$TESTDATA/qwen2" ]; then
  echo "golden_model: no golden data at $TESTDATA/qwen2. HINT: set C3_TESTDATA=<folder>." >&2
  exit 1
fi
LOG="${OUT:-/tmp}/golden_model.log"
exec > >(tee "$LOG") 2>&1

echo "== machine"
nvidia-smi -L || true
python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'

echo "== build"
TORCH_PREFIX="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')"
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX${C3_DEPS_PREFIX:+;$C3_DEPS_PREFIX}"
ninja -C build-gpu model_tests c3

echo "== model_tests: golden checks, fp32 on CPU and bf16 on CUDA"
C3_TEST_DEVICE=cuda C3_TESTDATA="$TESTDATA" ./build-gpu/tests/model_tests

echo "== HF transformers on CUDA (fp32, bf16) vs golden, and c3 generate --device cuda vs HF"
HF_DIR="$(mktemp -d)"
python3 scripts/device/hf_compare_qwen2.py --testdata "$TESTDATA" --out "$HF_DIR" --c3 build-gpu/c3

echo "== c3 vs HF logits and ids (library, CUDA)"
C3_TEST_DEVICE=cuda C3_HF_LOGITS="$HF_DIR" C3_TESTDATA="$TESTDATA" \
  ./build-gpu/tests/model_tests --gtest_filter='*CompareWithHF*'
echo "golden_model: OK (log: $LOG)"
