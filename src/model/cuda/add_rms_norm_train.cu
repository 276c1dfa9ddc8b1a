// CUDA kernels of training's residual add and RMSNorm, both ways (launch.h; torch wrapper in
// backward_kernels.cpp, autograd node in model/add_rms_norm_autograd.cpp).
//
// Under bf16 autocast the residual stream h is fp32 and each branch's output delta is bf16. The
// unfused step ran, per norm: the add, the norm, the cast of its output to bf16 for the next
// GEMM; and in backward the cast of that gradient back to fp32, the norm's backward, the add of
// the residual's own gradient, and the cast of the sum to bf16 for delta. Here each way is one
// pass over the row, with the same roundings:
//   forward   h = x + delta (in h's type TX), r = rsqrt(mean(h^2) + eps), n = (h r) rounded to TX,
//             y = (w n) rounded to TX, then to TY;
//   backward  gn = (gy w) rounded to TX, g = r gn - h r^3 sum(gn h) / C rounded to TX,
//             gx = gh + g (rounded to TX), gdelta = gx in TD, grad_w = sum over rows of gy n.
// The fp32 sums may add in another order than ATen's. A thread keeps its columns' values in
// registers between the row's sum and its writes, and its columns' share of grad_w across rows;
// each block writes one row of grad_w partial sums (no atomics: the result does not depend on
// scheduling).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "model/cuda/block_sum.cuh"
#include "model/cuda/element_types.cuh"
#include "model/cuda/host_switches.h"
#include "model/cuda/launch.h"

namespace c3::model::fused::cuda {
namespace {

using elem::round_to;
using elem::to_f;
using elem::to_t;

constexpr int kThreads = 256;
constexpr int kPack = 4;  // elements a thread moves at once: 16 bytes of fp32, 8 of bf16
constexpr int kMaxPacksPerThread = static_cast<int>(kAddRmsNormTrainMaxC / (kPack * kThreads));
static_assert(kMaxPacksPerThread == 8, "pack counts dispatched below: 1, 2, 4, 8");

// Four consecutive elements of T as fp32 (p aligned to 4 elements).
template <typename T>
__device__ __forceinline__ void load4(const T* p, float (&v)[kPack]) {
  if constexpr (sizeof(T) == 4) {
    const float4 w = *reinterpret_cast<const float4*>(p);
    v[0] = w.x, v[1] = w.y, v[2] = w.z, v[3] = w.w;
  } else {
    const uint2 w = *reinterpret_cast<const uint2*>(p);
    T e[kPack];
    memcpy(e, &w, sizeof(w));
#pragma unroll
    for (int j = 0; j < kPack; ++j) v[j] = to_f(e[j]);
  }
}

// Stores four fp32 values as T (rounded to nearest even).
template <typename T>
__device__ __forceinline__ void store4(T* p, const float (&v)[kPack]) {
  if constexpr (sizeof(T) == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
    T e[kPack];
#pragma unroll
    for (int j = 0; j < kPack; ++j) e[j] = to_t<T>(v[j]);
    uint2 w;
    memcpy(&w, e, sizeof(w));
    *reinterpret_cast<uint2*>(p) = w;
  }
}

// P: packs a thread keeps (a template, so that short rows keep few registers).
template <typename TX, typename TD, typename TY, int P>
__global__ void __launch_bounds__(kThreads)
    add_rms_norm_train_kernel(const TX* __restrict__ x, const TD* __restrict__ delta,
                              const TX* __restrict__ w, TX* __restrict__ h, TY* __restrict__ y,
                              int64_t N, int64_t C, float eps) {
  __shared__ float scratch[64];
  const int64_t packs = C / kPack;
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const int64_t base = row * C;
    float hv[P][kPack];
    float ss = 0.f, unused = 0.f;
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const int64_t c = (threadIdx.x + static_cast<int64_t>(k) * blockDim.x) * kPack;
      if (c >= packs * kPack) break;
      float a[kPack], d[kPack];
      load4(x + base + c, a);
      load4(delta + base + c, d);
#pragma unroll
      for (int j = 0; j < kPack; ++j) {
        hv[k][j] = round_to<TX>(__fadd_rn(a[j], d[j]));  // the residual add, in h's type
        ss += hv[k][j] * hv[k][j];
      }
      store4(h + base + c, hv[k]);
    }
    block_sum2(ss, unused, scratch);
    const float r = rsqrtf(__fadd_rn(ss / static_cast<float>(C), eps));
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const int64_t c = (threadIdx.x + static_cast<int64_t>(k) * blockDim.x) * kPack;
      if (c >= packs * kPack) break;
      float wv[kPack], out[kPack];
      load4(w + c, wv);
#pragma unroll
      for (int j = 0; j < kPack; ++j) {
        const float n = round_to<TX>(__fmul_rn(hv[k][j], r));  // normed, cast to h's type
        out[j] = round_to<TX>(__fmul_rn(wv[j], n));            // weight * normed, in h's type
      }
      store4(y + base + c, out);  // then autocast's cast, to TY
    }
  }
}

template <typename TX, typename TD, typename TY, int P>
__global__ void __launch_bounds__(kThreads)
    add_rms_norm_train_backward_kernel(const TY* __restrict__ gy, const TX* __restrict__ gh,
                                       const TX* __restrict__ h, const TX* __restrict__ w,
                                       TX* __restrict__ gx, TD* __restrict__ gdelta,
                                       float* __restrict__ gw_part, int64_t N, int64_t C,
                                       float eps) {
  __shared__ float scratch[64];
  const int64_t packs = C / kPack;
  float gw_acc[P][kPack] = {};  // this thread's columns' share of grad_w
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) {
    const int64_t base = row * C;
    float hv[P][kPack], gn[P][kPack], gv[P][kPack];
    float ss = 0.f, dot = 0.f;  // sum h^2, sum gn h
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const int64_t c = (threadIdx.x + static_cast<int64_t>(k) * blockDim.x) * kPack;
      if (c >= packs * kPack) break;
      float wv[kPack];
      load4(h + base + c, hv[k]);
      load4(gy + base + c, gv[k]);
      load4(w + c, wv);
#pragma unroll
      for (int j = 0; j < kPack; ++j) {
        gn[k][j] = round_to<TX>(__fmul_rn(gv[k][j], wv[j]));  // grad of normed, in its type
        ss += hv[k][j] * hv[k][j];
        dot += gn[k][j] * hv[k][j];
      }
    }
    // Short rows load the residual's gradient before the row's sum, so that its loads are in
    // flight with the others; long rows (P > 2) would spill the registers it takes.
    constexpr int kEarly = P <= 2 ? P : 1;
    float early[kEarly][kPack];
    if (P <= 2 && gh) {
#pragma unroll
      for (int k = 0; k < kEarly; ++k) {
        const int64_t c = (threadIdx.x + static_cast<int64_t>(k) * blockDim.x) * kPack;
        if (c < packs * kPack) load4(gh + base + c, early[k]);
      }
    }
    block_sum2(ss, dot, scratch);
    const float r = rsqrtf(__fadd_rn(ss / static_cast<float>(C), eps));
    const float coef = r * r * r * dot / static_cast<float>(C);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const int64_t c = (threadIdx.x + static_cast<int64_t>(k) * blockDim.x) * kPack;
      if (c >= packs * kPack) break;
      float total[kPack], incoming[kPack] = {0.f, 0.f, 0.f, 0.f};
      if (gh) {
        if constexpr (P <= 2) {
#pragma unroll
          for (int j = 0; j < kPack; ++j) incoming[j] = early[k][j];
        } else {
          load4(gh + base + c, incoming);
        }
      }
#pragma unroll
      for (int j = 0; j < kPack; ++j) {
        const float g = round_to<TX>(r * gn[k][j] - hv[k][j] * coef);     // the norm's grad of h
        total[j] = gh ? round_to<TX>(__fadd_rn(incoming[j], g)) : g;      // plus the residual's
        gw_acc[k][j] += gv[k][j] * round_to<TX>(__fmul_rn(hv[k][j], r));  // gy times normed
      }
      if (gx) store4(gx + base + c, total);
      if (gdelta) store4(gdelta + base + c, total);
    }
  }
#pragma unroll
  for (int k = 0; k < P; ++k) {
    const int64_t c = (threadIdx.x + static_cast<int64_t>(k) * blockDim.x) * kPack;
    if (c >= packs * kPack) break;
    float* out = gw_part + blockIdx.x * C + c;
#pragma unroll
    for (int j = 0; j < kPack; ++j) out[j] = gw_acc[k][j];
  }
}

// Threads a row takes: its packs rounded up to whole warps, at most kThreads.
int row_threads(int64_t C) {
  const int64_t packs = C / kPack;
  const int64_t warps = (packs + 31) / 32;
  return static_cast<int>(std::min<int64_t>(kThreads, std::max<int64_t>(32, warps * 32)));
}

bool shape_ok(int64_t N, int64_t C) {
  return N > 0 && C > 0 && C % kPack == 0 && C <= kAddRmsNormTrainMaxC;
}

// A kernel's types and packs a thread, as one tag for the launchers' lambdas.
template <typename TX, typename TD, typename TY, int P>
struct Kind {
  using X = TX;  // h's type (x, w, h, gx)
  using D = TD;  // delta's (and its gradient's)
  using Y = TY;  // y's (and its gradient's)
  static constexpr int kPacks = P;
};

// Runs f(Kind<TX, TD, TY, P>{}) for the supported type triples (h fp32 with delta and y each fp32,
// bf16 or fp16, as under autocast; or all three of one 2-byte type, a bf16 model) and P the packs
// each of a row's threads takes: 1, 2, 4 or 8.
template <typename TX, typename TD, typename TY, typename F>
cudaError_t with_packs(int64_t C, F&& f) {
  const int64_t per_thread = (C / kPack + row_threads(C) - 1) / row_threads(C);
  if (per_thread <= 1) return f(Kind<TX, TD, TY, 1>{});
  if (per_thread <= 2) return f(Kind<TX, TD, TY, 2>{});
  if (per_thread <= 4) return f(Kind<TX, TD, TY, 4>{});
  return f(Kind<TX, TD, TY, 8>{});
}

template <typename TX, typename TD, typename F>
cudaError_t with_y(DType ty, int64_t C, F&& f) {
  switch (ty) {
    case DType::kFloat:
      return with_packs<TX, TD, float>(C, f);
    case DType::kBFloat16:
      return with_packs<TX, TD, __nv_bfloat16>(C, f);
    case DType::kHalf:
      return with_packs<TX, TD, __half>(C, f);
  }
  return cudaErrorInvalidValue;
}

template <typename F>
cudaError_t dispatch(DType tx, DType td, DType ty, int64_t C, F&& f) {
  if (tx == DType::kFloat) {
    switch (td) {
      case DType::kFloat:
        return with_y<float, float>(ty, C, f);
      case DType::kBFloat16:
        return with_y<float, __nv_bfloat16>(ty, C, f);
      case DType::kHalf:
        return with_y<float, __half>(ty, C, f);
    }
    return cudaErrorInvalidValue;
  }
  if (td != tx || ty != tx) return cudaErrorInvalidValue;
  if (tx == DType::kBFloat16) return with_packs<__nv_bfloat16, __nv_bfloat16, __nv_bfloat16>(C, f);
  return with_packs<__half, __half, __half>(C, f);
}

}  // namespace

bool add_rms_norm_train_types_ok(DType tx, DType td, DType ty) {
  return tx == DType::kFloat || (td == tx && ty == tx);
}

cudaError_t launch_add_rms_norm_train(DType tx, DType td, DType ty, const void* x,
                                      const void* delta, const void* w, void* h, void* y, int64_t N,
                                      int64_t C, float eps, cudaStream_t stream) {
  if (!shape_ok(N, C) || !add_rms_norm_train_types_ok(tx, td, ty)) return cudaErrorInvalidValue;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(N, 1 << 20));
  const int threads = row_threads(C);
  return dispatch(tx, td, ty, C, [&](auto kind) {
    using K = decltype(kind);
    using TX = typename K::X;
    add_rms_norm_train_kernel<TX, typename K::D, typename K::Y, K::kPacks>
        <<<blocks, threads, 0, stream>>>(static_cast<const TX*>(x),
                                         static_cast<const typename K::D*>(delta),
                                         static_cast<const TX*>(w), static_cast<TX*>(h),
                                         static_cast<typename K::Y*>(y), N, C, eps);
    return cudaGetLastError();
  });
}

int add_rms_norm_train_backward_grid(DType tx, DType td, DType ty, int64_t N, int64_t C) {
  if (!shape_ok(N, C) || !add_rms_norm_train_types_ok(tx, td, ty)) return 1;
  const int sms = current_device_attribute(cudaDevAttrMultiProcessorCount);
  if (sms < 1) return 1;
  int per_sm = 0;
  const int threads = row_threads(C);
  const cudaError_t e = dispatch(tx, td, ty, C, [&](auto kind) {
    using K = decltype(kind);
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &per_sm,
        add_rms_norm_train_backward_kernel<typename K::X, typename K::D, typename K::Y, K::kPacks>,
        threads, 0);
  });
  if (e != cudaSuccess || per_sm < 1) per_sm = 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(N, int64_t{per_sm} * sms)));
}

cudaError_t launch_add_rms_norm_train_backward(DType tx, DType td, DType ty, const void* gy,
                                               const void* gh, const void* h, const void* w,
                                               void* gx, void* gdelta, float* gw_part, int64_t N,
                                               int64_t C, float eps, int grid_blocks,
                                               cudaStream_t stream) {
  if (!shape_ok(N, C) || grid_blocks < 1 || !add_rms_norm_train_types_ok(tx, td, ty))
    return cudaErrorInvalidValue;
  const int threads = row_threads(C);
  return dispatch(tx, td, ty, C, [&](auto kind) {
    using K = decltype(kind);
    using TX = typename K::X;
    add_rms_norm_train_backward_kernel<TX, typename K::D, typename K::Y, K::kPacks>
        <<<grid_blocks, threads, 0, stream>>>(
            static_cast<const typename K::Y*>(gy), static_cast<const TX*>(gh),
            static_cast<const TX*>(h), static_cast<const TX*>(w), static_cast<TX*>(gx),
            static_cast<typename K::D*>(gdelta), gw_part, N, C, eps);
    return cudaGetLastError();
  });
}

}  // namespace c3::model::fused::cuda
