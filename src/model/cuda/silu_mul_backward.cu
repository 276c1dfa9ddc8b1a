// CUDA kernel of SiLU-and-multiply's backward (launch.h; torch wrapper in backward_kernels.cpp).
//
// Forward (fused_kernels.cu): s = silu(gate) rounded to T, y = s up rounded to T. Backward, with
// autograd's roundings through the reference ops (mul, then ATen's silu_backward in fp32):
//   grad_up   = g s                                   rounded to T
//   grad_s    = g up                                  rounded to T
//   grad_gate = grad_s sig (1 + gate (1 - sig))       rounded to T,  sig = 1 / (1 + exp(-gate))
// written side by side as the gradient of the stacked [gate, up] projection: [N, 2I].
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
__global__ void silu_mul_backward_kernel(const T* __restrict__ gu, const T* __restrict__ g,
                                         T* __restrict__ ggu, int64_t N, int64_t I) {
  for_each_row_col(N, I, [&](int64_t r, int64_t c) {
    const T* gate_row = gu + r * 2 * I;
    T* out_row = ggu + r * 2 * I;
    const float gate = to_f(gate_row[c]), up = to_f(gate_row[I + c]);
    const float gv = to_f(g[r * I + c]);
    const float s = round_to<T>(gate / (1.0f + expf(-gate)));  // the forward's silu
    const float grad_s = round_to<T>(__fmul_rn(gv, up));
    const float sig = 1.0f / (1.0f + expf(-gate));
    out_row[c] = to_t<T>(grad_s * sig * (1.0f + gate * (1.0f - sig)));
    out_row[I + c] = to_t<T>(__fmul_rn(gv, s));
  });
}

}  // namespace

cudaError_t launch_silu_mul_backward(DType t, const void* gate_up, const void* grad,
                                     void* grad_gate_up, int64_t N, int64_t I,
                                     cudaStream_t stream) {
  constexpr int kThreads = 256;
  C3_ELEM_DISPATCH(
      t, silu_mul_backward_kernel<scalar_t><<<rows_by_cols(N, I, kThreads), kThreads, 0, stream>>>(
             static_cast<const scalar_t*>(gate_up), static_cast<const scalar_t*>(grad),
             static_cast<scalar_t*>(grad_gate_up), N, I));
  return cudaGetLastError();
}

}  // namespace c3::model::fused::cuda
