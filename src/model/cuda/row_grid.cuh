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

// Launch shape of the 16-byte kernels (vector_access.cuh).
struct LaunchShape {
  dim3 grid, block;
};

// rows x packs (16-byte words of a row): a row's packs on x (up to 512), as many rows as make
// about 256 threads on y, row groups on the grid's x (kernels loop past 65535). Decode's few rows
// get as few blocks. Kernels launched with it walk their packs with for_each_row_pack.
inline LaunchShape rows_of_packs(int64_t rows, int64_t packs) {
  const int tx = static_cast<int>(std::clamp<int64_t>(packs, 1, 512));
  const int ty = std::max(1, 256 / tx);
  const int64_t blocks = (rows + ty - 1) / ty;
  return {dim3(static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65535))), dim3(tx, ty, 1)};
}

// RoPE with 16-byte accesses: `packs` threads a (batch, head, position) row on x (each takes a
// pack of the first half and its partner pack of the second), positions on y up to 256 threads,
// batch x heads on z. Walked with for_each_rotary_row and threadIdx.x in steps of blockDim.x.
inline LaunchShape rotary_pack_grid(int64_t batch_heads, int64_t positions, int64_t packs) {
  const int tx = static_cast<int>(std::clamp<int64_t>(packs, 1, 256));
  const int ty = static_cast<int>(std::clamp<int64_t>(positions, 1, 256 / tx));
  const int64_t by = (positions + ty - 1) / ty;
  return {dim3(1, static_cast<unsigned>(std::clamp<int64_t>(by, 1, 65535)),
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

// f(b, h, t, b * H + h) for each (batch, head, position) row of a rotary_grid or rotary_pack_grid
// launch that this thread's y index owns.
template <typename F>
__device__ __forceinline__ void for_each_rotary_row(int64_t B, int64_t H, int64_t S, F&& f) {
  for (int64_t bh = blockIdx.z; bh < B * H; bh += gridDim.z) {
    const int64_t b = bh / H, h = bh % H;
    for (int64_t t = blockIdx.y * static_cast<int64_t>(blockDim.y) + threadIdx.y; t < S;
         t += static_cast<int64_t>(gridDim.y) * blockDim.y)
      f(b, h, t, bh);
  }
}

// f(b, h, t, b * H + h, d) for each pack start d (< D / 2, in steps of W) of each row of a
// rotary_pack_grid launch that this thread owns.
template <int W, typename F>
__device__ __forceinline__ void for_each_rotary_pack(int64_t B, int64_t H, int64_t S, int64_t half,
                                                     F&& f) {
  for_each_rotary_row(B, H, S, [&](int64_t b, int64_t h, int64_t t, int64_t bh) {
    for (int64_t d = threadIdx.x * static_cast<int64_t>(W); d < half; d += blockDim.x * W)
      f(b, h, t, bh, d);
  });
}

// f(r, p) for each (row, pack) of a rows_of_packs launch that this thread owns.
template <typename F>
__device__ __forceinline__ void for_each_row_pack(int64_t rows, int64_t packs, F&& f) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y; r < rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.y)
    for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) f(r, p);
}
#endif

}  // namespace c3::model::fused::cuda
