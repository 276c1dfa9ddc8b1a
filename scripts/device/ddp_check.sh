#!/usr/bin/env bash
# 2-GPU NCCL check of src/train/distributed: builds train_tests against this machine's PyTorch
# LibTorch, runs the 2-process equality tests on cuda:0 + cuda:1, and prints all-reduce bandwidth.
#
# Usage, from the repo root on a host with >= 2 GPUs:
#   bash scripts/device/ddp_check.sh [MB]        # MB: all-reduce buffer size, default 256
# Env: C3_DEPS_PREFIX=DIR adds DIR to CMAKE_PREFIX_PATH (e.g. unpacked Debian -dev packages).
# Writes a log to $OUT/ddp_check.log when OUT is set (the device tool's output folder).
set -euo pipefail
cd "$(dirname "$0")/../.."

# NVLink multicast (NVLS) stays off: it can take the host's shared GPUs down. Every process we
# start inherits these; launch_local also sets NCCL_NVLS_ENABLE=0 where it is unset.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

MB="${1:-256}"
LOG="${OUT:-/tmp}/ddp_check.log"
exec > >(tee "$LOG") 2>&1

echo "== machine"
nvidia-smi -L || true
python3 - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count(),
      "nccl", ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else "-")
EOF

TORCH_PREFIX="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"

# The wheel keeps nccl.h and libnccl in the nvidia-nccl-* package, not under torch/include;
# c10d's ProcessGroupNCCL.hpp needs the header.
NCCL_INC="$(python3 - <<'EOF'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages(), "/usr/include", "/usr/local/cuda/include"]
for r in roots:
    hits = glob.glob(os.path.join(r, "nccl.h")) + glob.glob(os.path.join(r, "nvidia", "**", "nccl.h"), recursive=True)
    if hits:
        print(os.path.dirname(hits[0]))
        break
EOF
)"
if [ -z "$NCCL_INC" ]; then
  echo "ddp_check: nccl.h not found (looked in site-packages/nvidia/**, /usr/include, /usr/local/cuda/include)." >&2
  echo "HINT: install the nvidia-nccl wheel matching torch, or point CPATH at NCCL's include dir." >&2
  exit 1
fi
NCCL_LIB="$(cd "$NCCL_INC/.." && pwd)/lib"
echo "nccl.h: $NCCL_INC"

CXX_FLAGS="-I$NCCL_INC -DUSE_C10D_NCCL"
LINK_ARGS=()
if [ -e "$NCCL_LIB/libnccl.so.2" ]; then
  # Only needed if inline c10d code calls NCCL directly; --as-needed drops it otherwise.
  LINK_ARGS=(-DCMAKE_CXX_STANDARD_LIBRARIES="$NCCL_LIB/libnccl.so.2"
             -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath,$NCCL_LIB")
  export LD_LIBRARY_PATH="$NCCL_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
PREFIX="$TORCH_PREFIX${C3_DEPS_PREFIX:+;$C3_DEPS_PREFIX}"

echo "== build"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DC3_BUILD_BENCH=OFF \
  -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_CXX_FLAGS="$CXX_FLAGS" "${LINK_ARGS[@]}"
ninja -C build-gpu train_tests

TESTS=build-gpu/tests/train_tests
echo "== 2-process NCCL: ranks bitwise equal, and equal to 1 process within 1e-6"
# C3_DIST_REQUIRE turns "no NCCL in this build" / "fewer than 2 GPUs" from a skip into a failure.
C3_DIST_DEVICE=cuda C3_DIST_REQUIRE=1 "$TESTS" --gtest_filter='Distributed*'
echo "== 2-process Gloo (CPU), if this LibTorch build has Gloo"
"$TESTS" --gtest_filter='Distributed.TwoProcesses*'
echo "== all-reduce bandwidth, ${MB} MB"
C3_DIST_DEVICE=cuda C3_DIST_REQUIRE=1 C3_DIST_BENCH_MB="$MB" "$TESTS" --gtest_filter='Distributed.AllreduceBandwidth'
echo "ddp_check: OK (log: $LOG)"
