#!/usr/bin/env bash
# One H100 (session 5): paper-size speed, c3 with every kernel vs HF transformers in the same
# call (issue 8), then, in the time left, the kernel tests and the test that crashed in
# std::filesystem::remove_all (now util/remove_tree).
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
export CUDACXX="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
nvidia-smi -L
cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=ON > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
ninja -C build-gpu c3 >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -40; exit 1; }
echo "c3 built in ${SECONDS}s"
(ninja -C build-gpu model_tests c3_decode_kernels_bench > /tmp/build2.log 2>&1; echo "tests built at ${SECONDS}s" > /tmp/tests_built) &
B=(--random-init configs/qwen2.5-1.5b.json configs/qwen2.5-3b.json 32 --device cuda --dtype bf16
   --batch 16 --passage-tokens 1024 --new-tokens 64 --repeats 3)
timeout 100 build-gpu/c3 bench "${B[@]}" --json "$OUT/c3_paper.json" > "$OUT/c3_paper.txt" 2>&1; echo "c3 bench exit $? at ${SECONDS}s"
timeout 150 python3 bench/hf_reference.py "${B[@]}" --json "$OUT/hf_paper.json" > "$OUT/hf_paper.txt" 2>&1; echo "HF exit $? at ${SECONDS}s"
python3 bench/hf_reference.py --compare "$OUT/c3_paper.json" "$OUT/hf_paper.json" 2>&1 | tee "$OUT/c3_vs_hf.md"
wait; cat /tmp/tests_built
timeout 40 build-gpu/tests/model_tests --gtest_filter='FuseProjections.Save*:FusedKernels.*' > "$OUT/tests.txt" 2>&1
echo "tests exit $?"; grep -E "^\[ +(OK|FAILED|PASSED)|\*\*\*" "$OUT/tests.txt"
timeout 30 build-gpu/c3_decode_kernels_bench --iters 100 > "$OUT/kernel_bench.md" 2>&1; cat "$OUT/kernel_bench.md"
echo "total ${SECONDS}s"
