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
#include "model/cuda/vector_access.cuh"

namespace c3::model::fused::cuda {
namespace {

using elem::round_to;
using elem::to_f;
using elem::to_t;

// One element of grad_x: g and c at d, its partner's gp and sp (at d + D/2 in the first half,
// where the partner's term is added, else at d - D/2, where it is subtracted).
template <typename T>
__device__ __forceinline__ T rotary_grad_one(float g, float c, float gp, float sp,
                                             bool first_half) {
  const float a = round_to<T>(__fmul_rn(g, round_to<T>(c)));
  const float r = round_to<T>(__fmul_rn(gp, round_to<T>(sp)));
  return to_t<T>(first_half ? __fadd_rn(a, r) : __fadd_rn(a, -r));
}

// Scalar path, for strided or unaligned rows: the head dim from threadIdx.x (rotary_grid).
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
      out[d * x3] = rotary_grad_one<T>(to_f(gv[d * g3]), cos[ci + d], to_f(gv[partner * g3]),
                                       sin[ci + partner], d < half);
    }
  });
}

// 16-byte path (unit last strides, rotary_pack_grid): a thread takes a pack at d < D/2 and its
// partner at d + D/2 of g and both tables, and writes both packs of grad_x.
template <typename T>
__global__ void rotary_backward_vec_kernel(const T* __restrict__ g, const float* __restrict__ cos,
                                           const float* __restrict__ sin, T* __restrict__ gx,
                                           int64_t B, int64_t H, int64_t S, int64_t D, int64_t g0,
                                           int64_t g1, int64_t g2, int64_t x0, int64_t x1,
                                           int64_t x2, int64_t cb, int64_t ct) {
  constexpr int W = kVecWidth<T>;
  const int64_t half = D / 2;
  for_each_rotary_pack<W>(B, H, S, half, [&](int64_t b, int64_t h, int64_t t, int64_t, int64_t d) {
    const T* gv = g + b * g0 + h * g1 + t * g2 + d;
    const Vec<T> g_lo = load_vec(gv), g_hi = load_vec(gv + half);
    const int64_t c0 = b * cb + t * ct + d;
    const RotaryTablePacks<W> tab = load_rotary_tables<W>(cos + c0, sin + c0, half);
    Vec<T> y_lo, y_hi;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float gl = to_f(g_lo.v[k]), gh = to_f(g_hi.v[k]);
      y_lo.v[k] = rotary_grad_one<T>(gl, tab.c_lo.v[k], gh, tab.s_hi.v[k], true);
      y_hi.v[k] = rotary_grad_one<T>(gh, tab.c_hi.v[k], gl, tab.s_lo.v[k], false);
    }
    T* out = gx + b * x0 + h * x1 + t * x2 + d;
    store_vec(out, y_lo);
    store_vec(out + half, y_hi);
  });
}

template <typename T>
void rotary_backward_typed(const T* g, const float* cos, const float* sin, T* gx, int64_t B,
                           int64_t H, int64_t S, int64_t D, const int64_t sg[4],
                           const int64_t sx[4], int64_t cb, int64_t ct, cudaStream_t stream) {
  const int64_t half = D / 2;
  if (sg[3] == 1 && sx[3] == 1 &&
      vec_aligned<T>({g, gx}, {half, sg[0], sg[1], sg[2], sx[0], sx[1], sx[2]}) &&
      vec_aligned<float>({cos, sin}, {cb, ct})) {
    const LaunchShape l = rotary_pack_grid(B * H, S, half / kVecWidth<T>);
    rotary_backward_vec_kernel<T><<<l.grid, l.block, 0, stream>>>(
        g, cos, sin, gx, B, H, S, D, sg[0], sg[1], sg[2], sx[0], sx[1], sx[2], cb, ct);
  } else {
    const RotaryGrid l = rotary_grid(B * H, S, D);
    rotary_backward_kernel<T><<<l.grid, l.block, 0, stream>>>(g, cos, sin, gx, B, H, S, D, sg[0],
                                                             sg[1], sg[2], sg[3], sx[0], sx[1],
                                                             sx[2], sx[3], cb, ct);
  }
}

}  // namespace

cudaError_t launch_rotary_backward(DType t, const void* g, const float* cos, const float* sin,
                                   void* gx, int64_t B, int64_t H, int64_t S, int64_t D,
                                   const int64_t sg[4], const int64_t sx[4], int64_t cb, int64_t ct,
                                   cudaStream_t stream) {
  C3_ELEM_DISPATCH(t, rotary_backward_typed(static_cast<const scalar_t*>(g), cos, sin,
                                            static_cast<scalar_t*>(gx), B, H, S, D, sg, sx, cb, ct,
                                            stream));
  return cudaGetLastError();
}

}  // namespace c3::model::fused::cuda
