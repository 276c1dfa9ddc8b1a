# Source on the GPU machine after env.sh: finds nccl.h / libnccl from the PyTorch wheel (they live
# in the nvidia-nccl-* package, not under torch/include) and sets C3_NCCL_CMAKE_ARGS for cmake.
NCCL_INC="$(python3 - <<'PY'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages(), "/usr/include", "/usr/local/cuda/include"]
for r in roots:
    hits = glob.glob(os.path.join(r, "nccl.h")) + glob.glob(os.path.join(r, "nvidia", "**", "nccl.h"), recursive=True)
    if hits:
        print(os.path.dirname(hits[0])); break
PY
)"
C3_NCCL_CMAKE_ARGS=()
if [ -n "$NCCL_INC" ]; then
  NCCL_LIB="$(cd "$NCCL_INC/.." && pwd)/lib"
  C3_NCCL_CMAKE_ARGS=(-DCMAKE_CXX_FLAGS="-I$NCCL_INC -DUSE_C10D_NCCL")
  if [ -e "$NCCL_LIB/libnccl.so.2" ]; then
    C3_NCCL_CMAKE_ARGS+=(-DCMAKE_CXX_STANDARD_LIBRARIES="$NCCL_LIB/libnccl.so.2"
                         -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath,$NCCL_LIB")
    export LD_LIBRARY_PATH="$NCCL_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  echo "nccl.h: $NCCL_INC"
else
  echo "nccl_env.sh: nccl.h not found; multi-GPU training will be unavailable" >&2
fi
