// CUDA kernel of RoPE's backward (launch.h; torch wrapper in backward_kernels.cpp).
//
// Forward (HF): y = x c + rotate_half(x) s with rotate_half(x) = [-x2, x1] and c, s the fp32
// tables rounded to T, each product and the sum rounded to T. Its transpose, rounded where
// autograd's ops round (the product, then the sum of the two contributions):
//   d <  D/2:  grad_x[d] = g[d] c[d] + g[d + D/2] s[d + D/2]
//   d >= D/2:  grad_x[d] = g[d] c[d] - g[d - D/2] s[d - D/2]
// __fmul_rn / __fadd_rn keep nvcc from fusing a product into the sum (one rounding where ATen
// has two), so the result equals autograd's through the reference ops.
#include <cuda_runtime.h>

#include <algorithm>

#include "model/cuda/element_types.cuh"
#include "model/cuda/launch.h"
#include "model/cuda/row_grid.cuh"

namespace c3::model::fused::cuda {
namespace {

using elem::round_to;
using elem::to_f;
using elem::to_t;

template <typename T>
__global__ void rotary_backward_kernel(const T* __restrict__ g, const float* __restrict__ cos,
                                       const float* __restrict__ sin, T* __restrict__ gx, int64_t B,
                                       int64_t H, int64_t S, int64_t D, int64_t g0, int64_t g1,
                                       int64_t g2, int64_t g3, int64_t x0, int64_t x1, int64_t x2,
                                       int64_t x3, int64_t cb, int64_t ct) {
  const int64_t half = D / 2;
  for_each_rotary_row(B, H, S, [&](int64_t b, int64_t h, int64_t t, int64_t) {
    const T* gv = g + b * g0 + h * g1 + t * g2;
    T* out = gx + b * x0 + h * x1 + t * x2;
    const int64_t ci = b * cb + t * ct;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
      const int64_t partner = d < half ? d + half : d - half;
      const float a = round_to<T>(__fmul_rn(to_f(gv[d * g3]), round_to<T>(cos[ci + d])));
      const float r = round_to<T>(__fmul_rn(to_f(gv[partner * g3]), round_to<T>(sin[ci + partner])));
      out[d * x3] = to_t<T>(d < half ? __fadd_rn(a, r) : __fadd_rn(a, -r));
    }
  });
}

}  // namespace

cudaError_t launch_rotary_backward(DType t, const void* g, const float* cos, const float* sin,
                                   void* gx, int64_t B, int64_t H, int64_t S, int64_t D,
                                   const int64_t sg[4], const int64_t sx[4], int64_t cb, int64_t ct,
                                   cudaStream_t stream) {
  const RotaryGrid grid = rotary_grid(B * H, S, D);
  C3_ELEM_DISPATCH(t, rotary_backward_kernel<scalar_t><<<grid.grid, grid.block, 0, stream>>>(
                          static_cast<const scalar_t*>(g), cos, sin, static_cast<scalar_t*>(gx), B,
                          H, S, D, sg[0], sg[1], sg[2], sg[3], sx[0], sx[1], sx[2], sx[3], cb, ct));
  return cudaGetLastError();
}

}  // namespace c3::model::fused::cuda
