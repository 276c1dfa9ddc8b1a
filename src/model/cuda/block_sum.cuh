// Sums over a thread block, for the row kernels of training (one block per row).
#pragma once
#include <cuda_runtime.h>

namespace c3::model::fused::cuda {

#ifdef __CUDACC__
// Sums a and b over the block; every thread gets both sums. `scratch`: 64 floats of shared
// memory. Ends with a barrier, so that scratch is free again for the next row.
__device__ __forceinline__ void block_sum2(float& a, float& b, float* scratch) {
  for (int off = 16; off > 0; off >>= 1) {
    a += __shfl_xor_sync(0xffffffffu, a, off);
    b += __shfl_xor_sync(0xffffffffu, b, off);
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n_warps = blockDim.x >> 5;
  if (lane == 0) {
    scratch[warp] = a;
    scratch[32 + warp] = b;
  }
  __syncthreads();
  a = lane < n_warps ? scratch[lane] : 0.f;
  b = lane < n_warps ? scratch[32 + lane] : 0.f;
  for (int off = 16; off > 0; off >>= 1) {
    a += __shfl_xor_sync(0xffffffffu, a, off);
    b += __shfl_xor_sync(0xffffffffu, b, off);
  }
  __syncthreads();
}
#endif

}  // namespace c3::model::fused::cuda
