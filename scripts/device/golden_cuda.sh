#!/usr/bin/env bash
# On the GPU machine, one call: the golden checks on CUDA. Builds c3 and the test binaries against
# this machine's PyTorch LibTorch with the CUDA kernels, runs the suites with the CUDA golden tests
# on (C3_TEST_DEVICE=cuda: bf16 and fp32 on the golden Qwen2 and C3 models, the kernels against
# ATen), then compares c3 with HF transformers' Qwen2ForCausalLM on the same weights.
# Usage: bash scripts/device/golden_cuda.sh      (carry .deps: scripts/device/bundle_deps.sh)
# Knobs: TESTS="util_tests io_tests model_tests c3_tests eval_tests" (binaries to run), SKIP_HF=1
# (no transformers comparison), PY_CHECKS=1 (also Python safetensors and HF tokenizers against
# what c3 writes and encodes).
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/build.sh
export C3_TEST_DEVICE=cuda C3_NO_PROGRESS=1
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
# The suites' outputs go back as one tar ($OUT takes 8 files, and bench_paper.sh often shares it).
TXT=/tmp/golden_cuda_txt; rm -rf "$TXT"; mkdir -p "$TXT"
TESTS="${TESTS:-util_tests io_tests model_tests c3_tests eval_tests}"
log() { echo; echo "== $*"; }
log machine; nvidia-smi -L; python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
c3_build_gpu c3 $TESTS || exit 1
# The plots need gnuplot, which the GPU machine lacks (CI has it): there they are left out, said so.
FILTER="*"
command -v gnuplot >/dev/null || { FILTER="-Plot.*Png*:Plot.QuotesInTitlesAreEscaped"; echo "no gnuplot here: $FILTER"; }
for t in $TESTS; do
  timeout 150 build-gpu/tests/$t --gtest_filter="$FILTER" > "$TXT/$t.txt" 2>&1
  echo "$t exit $? at ${SECONDS}s"
  grep -E "^\[ +(FAILED|PASSED|SKIPPED) |\*\*\*|max abs|cuda bf16" "$TXT/$t.txt" | head -20
done
log "the decode kernels and cascades again with one warp a GEMV row and no programmatic dependent launch"
C3_GEMV_SPLIT=0 C3_PDL=0 timeout 150 build-gpu/tests/model_tests --gtest_filter='FusedKernels.*:*Golden*' 2>&1 \
  | grep -E "^\[ +(FAILED|PASSED) |Failure" | head -12
C3_GEMV_SPLIT=0 C3_PDL=0 timeout 120 build-gpu/tests/c3_tests 2>&1 | grep -E "ids equal|^\[ +(FAILED|PASSED) " | head -8
log "the kernels and cascades again with the opt-in ones: C3_DECODE_NORM_VEC=1 C3_ATTN_SPLIT=1 C3_ROTARY_BTHD=1"
C3_DECODE_NORM_VEC=1 C3_ATTN_SPLIT=1 C3_ROTARY_BTHD=1 timeout 150 build-gpu/tests/model_tests --gtest_filter='FusedKernels.*:*Golden*' 2>&1 \
  | grep -E "^\[ +(FAILED|PASSED) |Failure|decode attention" | head -16
C3_DECODE_NORM_VEC=1 C3_ATTN_SPLIT=1 C3_ROTARY_BTHD=1 timeout 120 build-gpu/tests/c3_tests 2>&1 | grep -E "ids equal|^\[ +(FAILED|PASSED) " | head -8
log "c3-tiny cascade, fp32 on CUDA (ids exact)"
C3_TEST_DTYPE=f32 timeout 120 build-gpu/tests/c3_tests 2>&1 | grep -E "max abs|ids equal|PASSED|FAILED"

if [ -z "${SKIP_HF:-}" ]; then
  log "HF transformers on CUDA (fp32, bf16) vs golden, and c3 vs HF logits and ids"
  HF_DIR="$(mktemp -d)"
  python3 scripts/device/hf_compare_qwen2.py --testdata "$C3_TESTDATA" --out "$HF_DIR" --c3 build-gpu/c3
  C3_HF_LOGITS="$HF_DIR" timeout 150 build-gpu/tests/model_tests --gtest_filter='*CompareWithHF*'
fi

if [ -n "${PY_CHECKS:-}" ]; then
  DATA="$(dirname "$C3_TESTDATA")/data/corpus"
  log "Python safetensors loads what c3 writes"
  python3 scripts/device/check_safetensors.py build-gpu/c3 --testdata "$C3_TESTDATA" 2>&1 | tail -4
  log "HF tokenizers vs c3 on the valid set (shipped tokenizer), and their speed"
  python3 scripts/device/check_tokenizer_hf.py --tokenizer models/c3-small/tokenizer.json \
    --texts "$DATA/valid.jsonl.xz" --c3 build-gpu/c3 2>&1 | tail -3
  mkdir -p /tmp/qwen && tar -xJf "$C3_TESTDATA/tokenizer/qwen-tokenizer.tar.xz" -C /tmp/qwen
  QTOK=$(find /tmp/qwen -name tokenizer.json | head -1)
  build-gpu/c3 tokenize --tokenizer "$QTOK" --bench "$DATA/valid.jsonl.xz" --threads 16 2>&1 | tail -1
  timeout 120 python3 scripts/device/bench_tokenizer_hf.py --tokenizer "$QTOK" \
    --texts "$DATA/valid.jsonl.xz" --threads 16 2>&1 | tail -6
fi
log "done in ${SECONDS}s"
tar -C "$TXT" -czf "$OUT/golden_tests.tar.gz" .
