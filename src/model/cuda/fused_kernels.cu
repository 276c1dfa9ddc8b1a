// CUDA kernels for RMSNorm, SiLU-and-multiply and RoPE (launch.h; torch wrappers in
// fused_kernels.cpp).
//
// Rounding: HF runs these as several ATen ops, each of which computes in fp32 and rounds its
// result to the tensor dtype. The kernels round at the same points (to_t, round to nearest
// even), and use __fmul_rn / __fadd_rn so that the compiler cannot contract a multiply and an
// add into one FMA, which would round once where ATen rounds twice.
#include "model/cuda/launch.h"
#include "model/cuda/row_grid.cuh"
#include "model/cuda/vector_access.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

namespace c3::model::fused::cuda {
namespace {

template <typename T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f(float v) { return v; }
template <> __device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T to_t(float v);
template <> __device__ __forceinline__ float to_t(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 to_t(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half to_t(float v) { return __float2half_rn(v); }

// ---- RMSNorm: one block per row -----------------------------------------------------------
constexpr int kNormThreads = 256;

template <typename T>
__global__ void rms_norm_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                T* __restrict__ out, int64_t C, float eps) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * C;
  T* outr = out + row * C;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
    const float v = to_f(xr[i]);
    ss += v * v;
  }
  // Block sum: warp shuffles, then the warps' partial sums through shared memory.
  __shared__ float partial[kNormThreads / 32];
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  __shared__ float rstd;
  if (threadIdx.x < 32) {
    float s = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (threadIdx.x == 0) rstd = rsqrtf(__fadd_rn(s / static_cast<float>(C), eps));
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
    const T normed = to_t<T>(__fmul_rn(to_f(xr[i]), rstd));  // x32 * rsqrt(...), cast to dtype
    outr[i] = to_t<T>(__fmul_rn(to_f(w[i]), to_f(normed)));  // weight * normed, in dtype
  }
}

// ---- silu(gate) * up over [N, 2I] -------------------------------------------------------
// One element: ATen's silu x / (1 + exp(-x)) rounded to T, times up, rounded.
template <typename T>
__device__ __forceinline__ T silu_mul_one(float g, float up) {
  const T s = to_t<T>(g / (1.0f + expf(-g)));
  return to_t<T>(__fmul_rn(to_f(s), up));
}

// Scalar path, for rows that 16-byte accesses don't fit. Rows on the grid's y, columns on x: no
// 64-bit division per element (a flat index split by `/ I` and `% I` cost more than the memory
// traffic; 2026-12-05 H100 profile).
template <typename T>
__global__ void silu_mul_kernel(const T* __restrict__ gu, T* __restrict__ out, int64_t N,
                                int64_t I) {
  for_each_row_col(N, I, [&](int64_t r, int64_t c) {
    const T* gate = gu + r * 2 * I;
    out[r * I + c] = silu_mul_one<T>(to_f(gate[c]), to_f(gate[I + c]));
  });
}

// 16-byte path: a thread takes one pack of gate, the matching pack of up, and writes one pack.
template <typename T>
__global__ void silu_mul_vec_kernel(const T* __restrict__ gu, T* __restrict__ out, int64_t N,
                                    int64_t I) {
  constexpr int W = kVecWidth<T>;
  for_each_row_pack(N, I / W, [&](int64_t r, int64_t p) {
    const T* gate = gu + r * 2 * I + p * W;
    const Vec<T> g = load_vec(gate), u = load_vec(gate + I);
    Vec<T> y;
#pragma unroll
    for (int k = 0; k < W; ++k) y.v[k] = silu_mul_one<T>(to_f(g.v[k]), to_f(u.v[k]));
    store_vec(out + r * I + p * W, y);
  });
}

template <typename T>
void silu_mul_typed(const T* gu, T* out, int64_t N, int64_t I, cudaStream_t stream) {
  if (vec_aligned<T>({gu, out}, {I})) {
    const LaunchShape l = rows_of_packs(N, I / kVecWidth<T>);
    silu_mul_vec_kernel<T><<<l.grid, l.block, 0, stream>>>(gu, out, N, I);
  } else {
    constexpr int kThreads = 256;
    silu_mul_kernel<T><<<rows_by_cols(N, I, kThreads), kThreads, 0, stream>>>(gu, out, N, I);
  }
}

// ---- RoPE: x [B, H, T, D] (any strides) -> contiguous [B, H, T, D] ------------------------
// out = x * cos + rotate_half(x) * sin, with cos/sin [B, T, D] fp32 rounded to the dtype first.
// One element: xi its x, rot its rotate_half(x) (-x[d + D/2] or x[d - D/2]), c/s its fp32 table
// entries.
template <typename T>
__device__ __forceinline__ T rotary_one(float xi, float rot, float c32, float s32) {
  const float c = to_f(to_t<T>(c32)), s = to_f(to_t<T>(s32));
  const T a = to_t<T>(__fmul_rn(xi, c));
  const T r = to_t<T>(__fmul_rn(rot, s));
  return to_t<T>(__fadd_rn(to_f(a), to_f(r)));
}

// Where row (b, h, t) of the output starts: element strides of batch, head and position (the
// head dimension is unit-stride).
struct OutStrides {
  int64_t b, h, t;
};

// Scalar path, for strided or unaligned rows: the head dim from threadIdx.x (rotary_grid).
template <typename T>
__global__ void rotary_kernel(const T* __restrict__ x, const float* __restrict__ cos,
                              const float* __restrict__ sin, T* __restrict__ out, int64_t B,
                              int64_t H, int64_t S, int64_t D, int64_t sb, int64_t sh, int64_t st,
                              int64_t sd, OutStrides so, int64_t cb, int64_t ct) {
  const int64_t half = D / 2;
  for_each_rotary_row(B, H, S, [&](int64_t b, int64_t h, int64_t t, int64_t) {
    const T* xv = x + b * sb + h * sh + t * st;
    T* ov = out + b * so.b + h * so.h + t * so.t;
    const int64_t c0 = b * cb + t * ct;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
      const float xi = to_f(xv[d * sd]);
      const float rot = d < half ? -to_f(xv[(d + half) * sd]) : to_f(xv[(d - half) * sd]);
      ov[d] = rotary_one<T>(xi, rot, cos[c0 + d], sin[c0 + d]);
    }
  });
}

// 16-byte path (unit last stride): a thread takes a pack at d < D/2 and its partner at d + D/2
// and writes both, so a row of D = 64 bf16 is 4 threads (rotary_pack_grid).
template <typename T>
__global__ void rotary_vec_kernel(const T* __restrict__ x, const float* __restrict__ cos,
                                  const float* __restrict__ sin, T* __restrict__ out, int64_t B,
                                  int64_t H, int64_t S, int64_t D, int64_t sb, int64_t sh,
                                  int64_t st, OutStrides so, int64_t cb, int64_t ct) {
  constexpr int W = kVecWidth<T>;
  const int64_t half = D / 2;
  for_each_rotary_pack<W>(B, H, S, half, [&](int64_t b, int64_t h, int64_t t, int64_t, int64_t d) {
    const T* xv = x + b * sb + h * sh + t * st + d;
    const Vec<T> lo = load_vec(xv), hi = load_vec(xv + half);
    const int64_t c0 = b * cb + t * ct + d;
    const RotaryTablePacks<W> tab = load_rotary_tables<W>(cos + c0, sin + c0, half);
    Vec<T> y_lo, y_hi;
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float xl = to_f(lo.v[k]), xh = to_f(hi.v[k]);
      y_lo.v[k] = rotary_one<T>(xl, -xh, tab.c_lo.v[k], tab.s_lo.v[k]);
      y_hi.v[k] = rotary_one<T>(xh, xl, tab.c_hi.v[k], tab.s_hi.v[k]);
    }
    T* ov = out + b * so.b + h * so.h + t * so.t + d;
    store_vec(ov, y_lo);
    store_vec(ov + half, y_hi);
  });
}

template <typename T>
void rotary_typed(const T* x, const float* cos, const float* sin, T* out, int64_t B, int64_t H,
                  int64_t S, int64_t D, const int64_t sx[4], const int64_t so3[3], int64_t cb,
                  int64_t ct, cudaStream_t stream) {
  const int64_t half = D / 2;
  const OutStrides so{so3[0], so3[1], so3[2]};
  if (sx[3] == 1 && vec_aligned<T>({x, out}, {half, sx[0], sx[1], sx[2], so.b, so.h, so.t}) &&
      vec_aligned<float>({cos, sin}, {cb, ct})) {
    const LaunchShape g = rotary_pack_grid(B * H, S, half / kVecWidth<T>);
    rotary_vec_kernel<T><<<g.grid, g.block, 0, stream>>>(x, cos, sin, out, B, H, S, D, sx[0],
                                                         sx[1], sx[2], so, cb, ct);
  } else {
    const RotaryGrid g = rotary_grid(B * H, S, D);
    rotary_kernel<T><<<g.grid, g.block, 0, stream>>>(x, cos, sin, out, B, H, S, D, sx[0], sx[1],
                                                     sx[2], sx[3], so, cb, ct);
  }
}

#define C3_DISPATCH(T, ...)                                                      \
  switch (T) {                                                                   \
    case DType::kFloat: { using scalar_t = float; __VA_ARGS__; break; }           \
    case DType::kBFloat16: { using scalar_t = __nv_bfloat16; __VA_ARGS__; break; } \
    case DType::kHalf: { using scalar_t = __half; __VA_ARGS__; break; }           \
  }

}  // namespace

cudaError_t launch_rms_norm(DType t, const void* x, const void* w, void* out, int64_t N,
                            int64_t C, float eps, cudaStream_t stream) {
  C3_DISPATCH(t, rms_norm_kernel<scalar_t><<<static_cast<unsigned>(N), kNormThreads, 0, stream>>>(
                     static_cast<const scalar_t*>(x), static_cast<const scalar_t*>(w),
                     static_cast<scalar_t*>(out), C, eps));
  return cudaGetLastError();
}

cudaError_t launch_silu_mul(DType t, const void* gate_up, void* out, int64_t N, int64_t I,
                            cudaStream_t stream) {
  C3_DISPATCH(t, silu_mul_typed(static_cast<const scalar_t*>(gate_up), static_cast<scalar_t*>(out),
                                N, I, stream));
  return cudaGetLastError();
}

cudaError_t launch_rotary(DType t, const void* x, const float* cos, const float* sin, void* out,
                          int64_t B, int64_t H, int64_t S, int64_t D, const int64_t sx[4],
                          const int64_t so[3], int64_t cb, int64_t ct, cudaStream_t stream) {
  C3_DISPATCH(t, rotary_typed(static_cast<const scalar_t*>(x), cos, sin,
                              static_cast<scalar_t*>(out), B, H, S, D, sx, so, cb, ct, stream));
  return cudaGetLastError();
}

}  // namespace c3::model::fused::cuda
