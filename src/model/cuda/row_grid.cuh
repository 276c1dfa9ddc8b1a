// Launch shapes for element-wise kernels over rows: the row on the grid (y, or z and y) and the
// column on x, so that a kernel finds its element without dividing a flat 64-bit index (on an
// H100 those divisions made RoPE and SiLU·mul several times slower than their memory traffic).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace c3::model::fused::cuda {

// rows x cols, `threads` columns a block on x; rows on y (kernels loop when rows > 65535).
inline dim3 rows_by_cols(int64_t rows, int64_t cols, int threads) {
  const int64_t bx = std::max<int64_t>(1, (cols + threads - 1) / threads);
  return dim3(static_cast<unsigned>(std::min<int64_t>(bx, 65535)),
              static_cast<unsigned>(std::clamp<int64_t>(rows, 1, 65535)), 1);
}

// RoPE over [batch x heads, positions, head dim]: the head dim on x (one warp or more), as many
// positions as make 256 threads on y, batch x heads on z.
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

}  // namespace c3::model::fused::cuda
