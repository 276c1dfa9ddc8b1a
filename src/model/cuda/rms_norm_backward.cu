// CUDA kernel of RMSNorm's backward (launch.h; torch wrapper in backward_kernels.cpp).
//
// Forward (fused_kernels.cu, HF's op order): r = rsqrt(mean(x^2) + eps), n = (x r) rounded to T,
// y = w n rounded to T. Backward, per row: gn = g w rounded to T (autograd rounds the gradient of
// n to n's dtype), then
//   grad_x = r gn - x r^3 sum(gn x) / C,    grad_w = sum over rows of g n,
// with both row sums in one pass and r recomputed (no tensor saved beside x). The weight's
// gradient is summed per block in shared memory and written as one row per block: the caller
// adds the rows, so the result does not depend on scheduling (no atomics).
#include <cuda_runtime.h>

#include "model/cuda/block_sum.cuh"
#include "model/cuda/element_types.cuh"
#include "model/cuda/launch.h"

namespace c3::model::fused::cuda {
namespace {

using elem::round_to;
using elem::to_f;
using elem::to_t;

constexpr int kThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    rms_norm_backward_kernel(const T* __restrict__ g, const T* __restrict__ x,
                             const T* __restrict__ w, T* __restrict__ gx,
                             float* __restrict__ gw_part, int64_t N, int64_t C, float eps) {
  extern __shared__ float gw_acc[];  // [C]: this block's share of the weight's gradient
  __shared__ float scratch[64];
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) gw_acc[i] = 0.f;  // own columns only
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const T* gr = g + row * C;
    const T* xr = x + row * C;
    T* gxr = gx + row * C;
    float ss = 0.f, dot = 0.f;  // sum x^2, sum gn x
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
      const float xv = to_f(xr[i]);
      const float gn = round_to<T>(__fmul_rn(to_f(gr[i]), to_f(w[i])));
      ss += xv * xv;
      dot += gn * xv;
    }
    block_sum2(ss, dot, scratch);
    const float r = rsqrtf(__fadd_rn(ss / static_cast<float>(C), eps));
    const float coef = r * r * r * dot / static_cast<float>(C);
    for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
      const float xv = to_f(xr[i]), gv = to_f(gr[i]);
      const float gn = round_to<T>(__fmul_rn(gv, to_f(w[i])));
      gxr[i] = to_t<T>(r * gn - xv * coef);
      gw_acc[i] += gv * round_to<T>(__fmul_rn(xv, r));  // g times the forward's rounded n
    }
  }
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) gw_part[blockIdx.x * C + i] = gw_acc[i];
}

}  // namespace

cudaError_t launch_rms_norm_backward(DType t, const void* g, const void* x, const void* w, void* gx,
                                     float* gw_part, int64_t N, int64_t C, float eps,
                                     int grid_blocks, cudaStream_t stream) {
  if (C > kRmsNormBackwardMaxC || grid_blocks < 1) return cudaErrorInvalidValue;
  const size_t smem = static_cast<size_t>(C) * sizeof(float);
  C3_ELEM_DISPATCH(
      t, rms_norm_backward_kernel<scalar_t><<<grid_blocks, kThreads, smem, stream>>>(
             static_cast<const scalar_t*>(g), static_cast<const scalar_t*>(x),
             static_cast<const scalar_t*>(w), static_cast<scalar_t*>(gx), gw_part, N, C, eps));
  return cudaGetLastError();
}

}  // namespace c3::model::fused::cuda
