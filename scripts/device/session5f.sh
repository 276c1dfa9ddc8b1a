#!/usr/bin/env bash
# Two GPUs (written in session 5, not run yet: the device time ran out): the NCCL two-process test whose parent used to crash in
# std::filesystem::remove_all (now util/remove_tree), and c3_tests in device mode.
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/device/env.sh
source scripts/device/nccl_env.sh
source scripts/device/build.sh
export C3_TESTDATA="$PWD/shared/testdata" C3_NO_PROGRESS=1
nvidia-smi -L
c3_build_gpu train_tests c3_tests || exit 1
CUDA_VISIBLE_DEVICES=0,1 C3_DIST_DEVICE=cuda C3_DIST_REQUIRE=1 timeout 90 build-gpu/tests/train_tests \
  --gtest_filter='Distributed.*' > /tmp/nccl.txt 2>&1
echo "train_tests Distributed (NCCL) exit $?"; grep -E "^\[ +(OK|FAILED|PASSED|SKIPPED)|\*\*\*|max \|" /tmp/nccl.txt | head -20
C3_TEST_DEVICE=cuda CUDA_VISIBLE_DEVICES=0 timeout 60 build-gpu/tests/c3_tests > /tmp/c3t.txt 2>&1
echo "c3_tests (device mode) exit $?"; grep -E "^\[ +(FAILED|PASSED)|\*\*\*" /tmp/c3t.txt | head
echo "total ${SECONDS}s"
