// Launch shapes for element-wise kernels over rows: the row on the grid (y, or z and y) and the
// column on x, so that a kernel finds its element without dividing a flat 64-bit index (on an
// H100 those divisions made RoPE and SiLU·mul several times slower than their memory traffic).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace c3::model::fused::cuda {

// rows x cols, `threads` columns a block on x; rows on y (kernels loop when rows > 65535).
// Kernels launched with it walk their elements with for_each_row_col.
inline dim3 rows_by_cols(int64_t rows, int64_t cols, int threads) {
  const int64_t bx = std::max<int64_t>(1, (cols + threads - 1) / threads);
  return dim3(static_cast<unsigned>(std::min<int64_t>(bx, 65535)),
              static_cast<unsigned>(std::clamp<int64_t>(rows, 1, 65535)), 1);
}

// RoPE over [batch x heads, positions, head dim]: the head dim on x (one warp or more), as many
// positions as make 256 threads on y, batch x heads on z. Kernels launched with it walk their
// rows with for_each_rotary_row and the head dimension from threadIdx.x in steps of blockDim.x.
struct RotaryGrid {
  dim3 grid, block;
};
inline RotaryGrid rotary_grid(int64_t batch_heads, int64_t positions, int64_t head_dim) {
  const int tx = head_dim >= 128 ? 128 : head_dim >= 64 ? 64 : 32;
  const int ty = 256 / tx;
  const int64_t by = std::max<int64_t>(1, (positions + ty - 1) / ty);
  return {dim3(1, static_cast<unsigned>(std::min<int64_t>(by, 65535)),
               static_cast<unsigned>(std::clamp<int64_t>(batch_heads, 1, 65535))),
          dim3(tx, ty, 1)};
}

#ifdef __CUDACC__
// f(r, c) for each element of a rows_by_cols launch's rows x cols that this thread owns.
template <typename F>
__device__ __forceinline__ void for_each_row_col(int64_t rows, int64_t cols, F&& f) {
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < cols;
         c += static_cast<int64_t>(gridDim.x) * blockDim.x)
      f(r, c);
}

// f(b, h, t, b * H + h) for each (batch, head, position) row of a rotary_grid launch that this
// thread's y index owns.
template <typename F>
__device__ __forceinline__ void for_each_rotary_row(int64_t B, int64_t H, int64_t S, F&& f) {
  for (int64_t bh = blockIdx.z; bh < B * H; bh += gridDim.z) {
    const int64_t b = bh / H, h = bh % H;
    for (int64_t t = blockIdx.y * static_cast<int64_t>(blockDim.y) + threadIdx.y; t < S;
         t += static_cast<int64_t>(gridDim.y) * blockDim.y)
      f(b, h, t, bh);
  }
}
#endif

}  // namespace c3::model::fused::cuda
