#!/usr/bin/env bash
# One H100 (session 6): where a paper-size decode step and compress spend their GPU time
# (c3 bench --trace, Kineto), next to the plain bench figures, for issue 8.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/build.sh
OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
nvidia-smi -L
c3_build_gpu c3 || exit 1
(ninja -C build-gpu c3_tests c3_decode_kernels_bench > /tmp/build2.log 2>&1; echo "tests built at ${SECONDS}s" > /tmp/tests_built) &
B=(--random-init configs/qwen2.5-1.5b.json configs/qwen2.5-3b.json 32 --device cuda --dtype bf16
   --batch 16 --passage-tokens 1024 --new-tokens 64 --repeats 3)
mkdir -p /tmp/tr
timeout 150 build-gpu/c3 bench "${B[@]}" --json "$OUT/c3_paper.json" --trace /tmp/tr/t > "$OUT/c3_paper.txt" 2>&1; echo "c3 bench exit $? at ${SECONDS}s"
cat "$OUT/c3_paper.txt"
for f in /tmp/tr/*.json; do echo "== $(basename "$f") ($(du -h "$f" | cut -f1))"; python3 scripts/device/trace_summary.py "$f"; done > "$OUT/trace_summary.txt" 2>&1
head -c 20000 "$OUT/trace_summary.txt" | grep -v "^ *[0-9.]* ms  x" | head -150
tar -C /tmp/tr -cJf "$OUT/traces.tar.xz" . ; ls -la "$OUT"
wait; cat /tmp/tests_built
C3_TEST_DEVICE=cuda timeout 60 build-gpu/tests/c3_tests > "$OUT/c3_tests.txt" 2>&1; echo "c3_tests exit $?"; grep -E "FAILED|PASSED" "$OUT/c3_tests.txt" | head
echo "total ${SECONDS}s"
