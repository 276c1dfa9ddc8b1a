# Source THERE (GPU machine), after env.sh (and nccl_env.sh for NCCL builds):
#   c3_build_gpu TARGET...   configures build-gpu/ with tests and the CUDA kernels, builds the
#                            targets, and on an error prints the first lines of it and fails.
export CUDACXX="${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
c3_build_gpu() {
  cmake -S . -B build-gpu -G Ninja -DC3_BUILD_BENCH=OFF -DC3_BUILD_TESTS=ON \
    ${C3_NCCL_CMAKE_ARGS[@]+"${C3_NCCL_CMAKE_ARGS[@]}"} > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; return 1; }
  ninja -C build-gpu "$@" >> /tmp/build.log 2>&1 || { grep -E "error" -A3 /tmp/build.log | head -40; return 1; }
  echo "built $* at ${SECONDS}s"
}
