# Source THERE (GPU machine): puts the carried .deps and PyTorch's LibTorch on the build paths.
_root="$(pwd)/.deps/root"
export PATH="$_root/usr/bin:$PATH"
export PKG_CONFIG_PATH="$_root/usr/lib/x86_64-linux-gnu/pkgconfig:$_root/usr/share/pkgconfig"
export LD_LIBRARY_PATH="$_root/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
export CPATH="$_root/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}"  # OpenSSL's multiarch headers
export TORCH_PREFIX="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')"
export CMAKE_PREFIX_PATH="$TORCH_PREFIX:$_root/usr:$_root/usr/lib/x86_64-linux-gnu/cmake"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# The golden data: beside the checkout where the machine has it, else copied into the tree
# (shared/testdata travels with the call when present; the tests fail, never skip, without it).
export C3_TESTDATA="$(pwd)/../shared/testdata"
[ -d "$C3_TESTDATA" ] || export C3_TESTDATA="$(pwd)/shared/testdata"
