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
#include "model/cuda/vector_access.cuh"

namespace c3::model::fused::cuda {
namespace {

using elem::round_to;
using elem::to_f;
using elem::to_t;

// One element's gradients, of gate and of up.
template <typename T>
struct GateUpGrad {
  T gate, up;
};
template <typename T>
__device__ __forceinline__ GateUpGrad<T> silu_mul_grad(float gate, float up, float gv) {
  const float s = round_to<T>(gate / (1.0f + expf(-gate)));  // the forward's silu
  const float grad_s = round_to<T>(__fmul_rn(gv, up));
  const float sig = 1.0f / (1.0f + expf(-gate));
  return {to_t<T>(grad_s * sig * (1.0f + gate * (1.0f - sig))), to_t<T>(__fmul_rn(gv, s))};
}

// Scalar path, for rows that 16-byte accesses don't fit (rows_by_cols).
template <typename T>
__global__ void silu_mul_backward_kernel(const T* __restrict__ gu, const T* __restrict__ g,
                                         T* __restrict__ ggu, int64_t N, int64_t I) {
  for_each_row_col(N, I, [&](int64_t r, int64_t c) {
    const T* gate_row = gu + r * 2 * I;
    T* out_row = ggu + r * 2 * I;
    const GateUpGrad<T> d =
        silu_mul_grad<T>(to_f(gate_row[c]), to_f(gate_row[I + c]), to_f(g[r * I + c]));
    out_row[c] = d.gate;
    out_row[I + c] = d.up;
  });
}

// 16-byte path (rows_of_packs): a thread takes a pack of gate, up and grad, and writes the
// matching packs of both gradients.
template <typename T>
__global__ void silu_mul_backward_vec_kernel(const T* __restrict__ gu, const T* __restrict__ g,
                                             T* __restrict__ ggu, int64_t N, int64_t I) {
  constexpr int W = kVecWidth<T>;
  for_each_row_pack(N, I / W, [&](int64_t r, int64_t p) {
    const int64_t c = r * 2 * I + p * W;
    const Vec<T> gate = load_vec(gu + c), up = load_vec(gu + c + I);
    const Vec<T> gv = load_vec(g + r * I + p * W);
    Vec<T> d_gate, d_up;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const GateUpGrad<T> d = silu_mul_grad<T>(to_f(gate.v[k]), to_f(up.v[k]), to_f(gv.v[k]));
      d_gate.v[k] = d.gate;
      d_up.v[k] = d.up;
    }
    store_vec(ggu + c, d_gate);
    store_vec(ggu + c + I, d_up);
  });
}

template <typename T>
void silu_mul_backward_typed(const T* gu, const T* g, T* ggu, int64_t N, int64_t I,
                             cudaStream_t stream) {
  if (vec_aligned<T>({gu, g, ggu}, {I})) {
    const LaunchShape l = rows_of_packs(N, I / kVecWidth<T>);
    silu_mul_backward_vec_kernel<T><<<l.grid, l.block, 0, stream>>>(gu, g, ggu, N, I);
  } else {
    constexpr int kThreads = 256;
    silu_mul_backward_kernel<T>
        <<<rows_by_cols(N, I, kThreads), kThreads, 0, stream>>>(gu, g, ggu, N, I);
  }
}

}  // namespace

cudaError_t launch_silu_mul_backward(DType t, const void* gate_up, const void* grad,
                                     void* grad_gate_up, int64_t N, int64_t I,
                                     cudaStream_t stream) {
  C3_ELEM_DISPATCH(t, silu_mul_backward_typed(static_cast<const scalar_t*>(gate_up),
                                              static_cast<const scalar_t*>(grad),
                                              static_cast<scalar_t*>(grad_gate_up), N, I, stream));
  return cudaGetLastError();
}

}  // namespace c3::model::fused::cuda
