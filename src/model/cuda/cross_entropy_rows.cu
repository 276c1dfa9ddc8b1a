// CUDA kernel of cross-entropy over rows of logits, loss and gradient in one pass (launch.h; torch
// wrapper in cross_entropy_kernel.cpp; caller: model/chunked_cross_entropy.cpp).
//
// The reference chunk (chunked_cross_entropy.cpp) runs, over [n, V] logits in the head's GEMM
// dtype: the cast to fp32, argmax, log_softmax, NLL, exp of the log-probabilities, the scale,
// the scatter at the target and the cast back: six passes over fp32 logits, about 46 bytes
// moved per logit. Here one block takes a row: it reads the row once for its max, sum of
// exponentials and argmax (one online pass), then, when a gradient is asked for, reads it again
// and writes the gradient over it in the same dtype: 6 bytes a bf16 logit. The arithmetic is the
// reference's, in fp32: logp = (x - max) - log(sum), loss = -logp[target],
// grad = exp(logp) * scale, minus scale at the target, then rounded to the logits' dtype.
// Rows whose target is kIgnoreTarget (any negative) add no loss or hit and get a zero gradient.
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "model/cuda/element_types.cuh"
#include "model/cuda/launch.h"

namespace c3::model::fused::cuda {
namespace {

using elem::to_f;
using elem::to_t;

constexpr int kThreads = 256;

// A running max and sum of exp(x - max), and the first index of the max.
struct RowState {
  float max = -FLT_MAX;
  float sum = 0.f;
  int64_t arg = INT64_MAX;
};

__device__ __forceinline__ void add_value(RowState& s, float x, int64_t j) {
  if (x > s.max) {
    s.sum = s.sum * expf(s.max - x) + 1.f;
    s.max = x;
    s.arg = j;
  } else {
    s.sum += expf(x - s.max);
    if (x == s.max && j < s.arg) s.arg = j;
  }
}

__device__ __forceinline__ RowState merge(const RowState& a, const RowState& b) {
  if (b.sum == 0.f) return a;  // b saw no element
  if (a.sum == 0.f) return b;
  RowState r;
  r.max = fmaxf(a.max, b.max);
  r.sum = a.sum * expf(a.max - r.max) + b.sum * expf(b.max - r.max);
  r.arg = a.max > b.max ? a.arg : b.max > a.max ? b.arg : (a.arg < b.arg ? a.arg : b.arg);
  return r;
}

__device__ __forceinline__ RowState shfl_state(const RowState& s, int off) {
  RowState o;
  o.max = __shfl_xor_sync(0xffffffffu, s.max, off);
  o.sum = __shfl_xor_sync(0xffffffffu, s.sum, off);
  o.arg = __shfl_xor_sync(0xffffffffu, s.arg, off);
  return o;
}

// Every thread gets the block's state. Ends with a barrier (the scratch is free again).
__device__ RowState block_state(RowState s) {
  __shared__ float smax[32], ssum[32];
  __shared__ int64_t sarg[32];
  for (int off = 16; off > 0; off >>= 1) s = merge(s, shfl_state(s, off));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n_warps = blockDim.x >> 5;
  if (lane == 0) smax[warp] = s.max, ssum[warp] = s.sum, sarg[warp] = s.arg;
  __syncthreads();
  RowState w;
  if (lane < n_warps) w.max = smax[lane], w.sum = ssum[lane], w.arg = sarg[lane];
  for (int off = 16; off > 0; off >>= 1) w = merge(w, shfl_state(w, off));
  __syncthreads();
  return w;
}

// VEC consecutive elements: one 16-byte access where VEC > 1 (p aligned), else one element.
template <typename T, int VEC>
__device__ __forceinline__ void load_pack(const T* p, T (&v)[VEC]) {
  if constexpr (VEC > 1) {
    *reinterpret_cast<uint4*>(v) = *reinterpret_cast<const uint4*>(p);
  } else {
    v[0] = p[0];
  }
}
template <typename T, int VEC>
__device__ __forceinline__ void store_pack(T* p, const T (&v)[VEC]) {
  if constexpr (VEC > 1) {
    *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(v);
  } else {
    p[0] = v[0];
  }
}

// VEC elements a load: 16 bytes where the row allows it, else 1.
template <typename T, int VEC>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_rows_kernel(T* __restrict__ logits, const int64_t* __restrict__ target,
                              int64_t V, const float* __restrict__ scale,
                              float* __restrict__ row_loss, int32_t* __restrict__ row_hit) {
  const int64_t row = blockIdx.x;
  T* x = logits + row * V;
  const int64_t t = target[row];
  const int64_t step = static_cast<int64_t>(blockDim.x) * VEC;
  RowState s;
  for (int64_t j = static_cast<int64_t>(threadIdx.x) * VEC; j < V; j += step) {
    T v[VEC];
    load_pack(x + j, v);
#pragma unroll
    for (int k = 0; k < VEC; ++k) add_value(s, to_f(v[k]), j + k);
  }
  s = block_state(s);
  const float log_sum = logf(s.sum);
  const bool valid = t >= 0 && t < V;
  if (threadIdx.x == 0) {
    // logp[t] as log_softmax forms it: (x - max) - log(sum)
    row_loss[row] = valid ? -((to_f(x[t]) - s.max) - log_sum) : 0.f;
    row_hit[row] = valid && s.arg == t ? 1 : 0;
  }
  if (!scale) return;
  __syncthreads();  // x[t] is read above before any thread overwrites it
  const float sc = valid ? *scale : 0.f;
  for (int64_t j = static_cast<int64_t>(threadIdx.x) * VEC; j < V; j += step) {
    T v[VEC];
    load_pack(x + j, v);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      float g = __fmul_rn(expf((to_f(v[k]) - s.max) - log_sum), sc);
      if (j + k == t) g = __fadd_rn(g, -sc);
      v[k] = to_t<T>(g);
    }
    store_pack(x + j, v);
  }
}

template <typename T>
cudaError_t launch_typed(void* logits, const int64_t* target, int64_t n, int64_t V,
                         const float* scale, float* row_loss, int32_t* row_hit,
                         cudaStream_t stream) {
  constexpr int kVec = 16 / sizeof(T);
  const bool vec = V % kVec == 0 && reinterpret_cast<uintptr_t>(logits) % 16 == 0;
  T* x = static_cast<T*>(logits);
  if (vec) {
    cross_entropy_rows_kernel<T, kVec>
        <<<static_cast<unsigned>(n), kThreads, 0, stream>>>(x, target, V, scale, row_loss, row_hit);
  } else {
    cross_entropy_rows_kernel<T, 1>
        <<<static_cast<unsigned>(n), kThreads, 0, stream>>>(x, target, V, scale, row_loss, row_hit);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_cross_entropy_rows(DType t, void* logits, const int64_t* target, int64_t n,
                                      int64_t V, const float* scale, float* row_loss,
                                      int32_t* row_hit, cudaStream_t stream) {
  if (n < 1 || n > kCrossEntropyMaxRows || V < 1) return cudaErrorInvalidValue;
  switch (t) {
    case DType::kFloat:
      return launch_typed<float>(logits, target, n, V, scale, row_loss, row_hit, stream);
    case DType::kBFloat16:
      return launch_typed<__nv_bfloat16>(logits, target, n, V, scale, row_loss, row_hit, stream);
    case DType::kHalf:
      return launch_typed<__half>(logits, target, n, V, scale, row_loss, row_hit, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace c3::model::fused::cuda
