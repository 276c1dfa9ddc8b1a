// CUDA kernels of the decode step (launch.h; torch wrappers in fused_kernels.cpp):
//  - a GEMV for a few rows (bf16/fp16 weights), with a bias or a SiLU-and-multiply epilogue;
//  - the residual add fused with the next RMSNorm;
//  - decode attention over the static KV cache, with RoPE and the cache write folded in.
// A decode step at batch 1 reads every weight once and runs ~17 small kernels per layer through
// ATen; these bring it to 6, and the GEMV streams weights with 16-byte loads.
//
// Rounding follows the ATen ops they replace (see fused_kernels.cu): fp32 accumulation, one
// rounding to the dtype where each HF op rounds. Summation order differs from cuBLAS, so
// products agree to the dtype's last place, not bit for bit.
#include "model/cuda/host_switches.h"
#include "model/cuda/launch.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>

namespace c3::model::fused::cuda {
namespace {

template <typename T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T to_t(float v);
template <> __device__ __forceinline__ __nv_bfloat16 to_t(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half to_t(float v) { return __float2half_rn(v); }
template <typename T> __device__ __forceinline__ float round_f(float v) { return to_f(to_t<T>(v)); }

// Dot product of 8 packed 16-bit values (one 16-byte load each), accumulated into acc.
template <typename T> __device__ __forceinline__ float dot8(const uint4& a, const uint4& b, float acc);
template <>
__device__ __forceinline__ float dot8<__nv_bfloat16>(const uint4& a, const uint4& b, float acc) {
  const auto* pa = reinterpret_cast<const __nv_bfloat162*>(&a);
  const auto* pb = reinterpret_cast<const __nv_bfloat162*>(&b);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 fa = __bfloat1622float2(pa[i]), fb = __bfloat1622float2(pb[i]);
    acc = fmaf(fa.x, fb.x, acc);
    acc = fmaf(fa.y, fb.y, acc);
  }
  return acc;
}
template <>
__device__ __forceinline__ float dot8<__half>(const uint4& a, const uint4& b, float acc) {
  const auto* pa = reinterpret_cast<const __half2*>(&a);
  const auto* pb = reinterpret_cast<const __half2*>(&b);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 fa = __half22float2(pa[i]), fb = __half22float2(pb[i]);
    acc = fmaf(fa.x, fb.x, acc);
    acc = fmaf(fa.y, fb.y, acc);
  }
  return acc;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// ---- programmatic dependent launch (Hopper) ------------------------------------------------
// Launched with it (on Hopper unless C3_PDL=0, see launch_decode_kernel), a decode kernel may
// start while the one before it on the stream is still finishing, so the launch and the first
// weight loads overlap that kernel's tail. Every such kernel calls pdl_wait() before it reads or
// writes anything the kernel before it may touch, and pdl_release() once the next kernel may
// start its own preamble. Launched without it, both are no-ops.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

// ---- GEMV: y[m, n] = sum_k x[m, k] w[n, k], m < rows <= M ---------------------------------
// `split` warps per output row (two weight rows for SiLU: the gate row n and the up row n + I),
// each taking every split-th stretch of 256 weights; a block of kGemvWarps warps holds
// kGemvWarps / split rows. Each lane reads 8 weights per load, kUnroll loads in flight; x stays
// in L1/L2 (every warp reads it). One warp per row left too few loads in flight for the small
// matrices of a decode step (q/k/v at 720 GB/s on an H100, 2026-11-27): split gives them more.
constexpr int kGemvWarps = 4;
constexpr int kUnroll = 4;
enum Epilogue { kPlain = 0, kBias = 1, kSiluMul = 2 };

// The output of row n from its fp32 sums s0 (and s1, the up row, for SiLU).
template <typename T, int EPI>
__device__ __forceinline__ T gemv_out(float s0, float s1, const T* __restrict__ bias, int64_t n) {
  if (EPI == kBias) return to_t<T>(s0 + to_f(bias[n]));  // one rounding, as the GEMM's epilogue
  if (EPI == kSiluMul) {
    const float g = round_f<T>(s0), u = round_f<T>(s1);
    const float act = round_f<T>(g / (1.0f + expf(-g)));  // ATen's silu, rounded
    return to_t<T>(__fmul_rn(act, u));
  }
  return to_t<T>(s0);
}

template <typename T, int M, int EPI>
__global__ void __launch_bounds__(kGemvWarps * 32)
gemv_kernel(const T* __restrict__ x, int64_t ldx, int rows, const T* __restrict__ w, int64_t n_out,
            int64_t K, const T* __restrict__ bias, T* __restrict__ y, int64_t ldy, int split) {
  constexpr int R = EPI == kSiluMul ? 2 : 1;
  __shared__ float part[kGemvWarps][R][M];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int share = warp % split;  // which stretches of K this warp takes
  const int64_t n = static_cast<int64_t>(blockIdx.x) * (kGemvWarps / split) + warp / split;
  const bool valid = n < n_out;  // the same for the whole warp: no early return (syncs below)
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;

  const T* wr[R];
  wr[0] = w + n * K;
  if (R == 2) wr[R - 1] = w + (n + n_out) * K;
  const int64_t stride = static_cast<int64_t>(32 * 8) * split;  // elements between a warp's loads
  if (valid) {  // the weights never change: fetch the first ones while the kernel before ends
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int64_t k = (static_cast<int64_t>(share) * 32 + lane) * 8 + u * stride;
        if (k < K) prefetch_l2(wr[r] + k);
      }
  }
  pdl_wait();
  if (valid) {
    int64_t k = (static_cast<int64_t>(share) * 32 + lane) * 8;
    for (; k + (kUnroll - 1) * stride < K; k += kUnroll * stride) {
      uint4 wv[kUnroll][R];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
#pragma unroll
        for (int r = 0; r < R; ++r)
          wv[u][r] = __ldcs(reinterpret_cast<const uint4*>(wr[r] + k + u * stride));
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
#pragma unroll
        for (int m = 0; m < M; ++m) {
          if (m < rows) {
            const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + m * ldx + k + u * stride));
#pragma unroll
            for (int r = 0; r < R; ++r) acc[r][m] = dot8<T>(wv[u][r], xv, acc[r][m]);
          }
        }
    }
    for (; k < K; k += stride) {
      uint4 wv[R];
#pragma unroll
      for (int r = 0; r < R; ++r) wv[r] = __ldcs(reinterpret_cast<const uint4*>(wr[r] + k));
#pragma unroll
      for (int m = 0; m < M; ++m) {
        if (m < rows) {
          const uint4 xv = __ldg(reinterpret_cast<const uint4*>(x + m * ldx + k));
#pragma unroll
          for (int r = 0; r < R; ++r) acc[r][m] = dot8<T>(wv[r], xv, acc[r][m]);
        }
      }
    }
  }
  pdl_release();
#pragma unroll
  for (int m = 0; m < M; ++m) {
    float s[R];
#pragma unroll
    for (int r = 0; r < R; ++r) s[r] = warp_sum(acc[r][m]);
    if (lane != m) continue;
    if (split == 1) {
      if (valid && m < rows) y[m * ldy + n] = gemv_out<T, EPI>(s[0], s[R - 1], bias, n);
    } else {
#pragma unroll
      for (int r = 0; r < R; ++r) part[warp][r][m] = s[r];
    }
  }
  if (split == 1) return;
  __syncthreads();  // split is the same for the whole block
  const int m = lane;
  if (!valid || share != 0 || m >= M || m >= rows) return;
  float s[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    s[r] = 0.f;
    for (int j = 0; j < split; ++j) s[r] += part[warp + j][r][m];
  }
  y[m * ldy + n] = gemv_out<T, EPI>(s[0], s[R - 1], bias, n);
}

// Launches a decode kernel with programmatic dependent launch unless C3_PDL=0 (on since an H100
// run of 2026-12-06: golden ids unchanged, +3% decode tokens/s with the split GEMV).
bool pdl_enabled() {
  // The launch attribute needs compute capability 9.0.
  static const bool on = env_switch("C3_PDL", true) &&
                         current_device_attribute(cudaDevAttrComputeCapabilityMajor) >= 9;
  return on;
}

// The decode add + RMSNorm with 16-byte accesses where C3_DECODE_NORM_VEC=1 (off by default
// until a GPU run has timed it and checked it against the golden ids; then the scalar kernel).
bool vector_norm_enabled() {
  static const bool on = env_switch("C3_DECODE_NORM_VEC", false);
  return on;
}

// Launches a kernel with PDL where enabled and, with cluster > 1, in clusters of that many
// consecutive blocks along x (compute capability 9.0).
template <typename... Params, typename... Args>
cudaError_t launch_clustered(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared,
                             cudaStream_t stream, unsigned cluster, Args... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = shared;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (pdl_enabled()) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster > 1) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = cluster;
    attr[n].val.clusterDim.y = 1;
    attr[n++].val.clusterDim.z = 1;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  return cudaLaunchKernelEx(&cfg, kernel, static_cast<Params>(args)...);
}

template <typename... Params, typename... Args>
cudaError_t launch_decode_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared,
                                 cudaStream_t stream, Args... args) {
  return launch_clustered(kernel, grid, block, shared, stream, 1u, args...);
}

// Warps per output row: enough that the whole grid keeps about kGemvTargetWarps warps loading
// (~62 a streaming multiprocessor on an H100), while each warp still makes two loads or more.
// C3_GEMV_SPLIT=0 keeps one warp a row (the kernel before 2026-12-06, which the golden ids and
// an H100 run then compared it with).
constexpr int64_t kGemvTargetWarps = 8192;
int gemv_split(int64_t n_out, int64_t K) {
  static const bool on = env_switch("C3_GEMV_SPLIT", true);
  int split = 1;
  if (!on) return split;
  while (split < kGemvWarps && n_out * split < kGemvTargetWarps && K >= 512 * 2 * split) split *= 2;
  return split;
}

template <typename T, int EPI>
cudaError_t gemv_rows(const T* x, int64_t ldx, int rows, const T* w, int64_t n_out, int64_t K,
                      const T* bias, T* y, int64_t ldy, cudaStream_t stream) {
  const int split = gemv_split(n_out, K);
  const int64_t per_block = kGemvWarps / split;
  const unsigned blocks = static_cast<unsigned>((n_out + per_block - 1) / per_block);
  const dim3 threads(kGemvWarps * 32);
#define C3_GEMV(M)                                                                          \
  return launch_decode_kernel(gemv_kernel<T, M, EPI>, dim3(blocks), threads, 0, stream, x, ldx, rows, \
                              w, n_out, K, bias, y, ldy, split)
  if (rows <= 1) {
    C3_GEMV(1);
  } else if (rows <= 2) {
    C3_GEMV(2);
  } else if (rows <= 4) {
    C3_GEMV(4);
  } else {
    C3_GEMV(8);
  }
#undef C3_GEMV
}

template <typename T>
cudaError_t gemv_any(const void* x, int64_t ldx, int rows, const void* w, int64_t n_out, int64_t K,
                     const void* bias, bool silu_mul, void* y, int64_t ldy, cudaStream_t stream) {
  const T* xt = static_cast<const T*>(x);
  const T* wt = static_cast<const T*>(w);
  T* yt = static_cast<T*>(y);
  if (silu_mul) return gemv_rows<T, kSiluMul>(xt, ldx, rows, wt, n_out, K, nullptr, yt, ldy, stream);
  if (bias)
    return gemv_rows<T, kBias>(xt, ldx, rows, wt, n_out, K, static_cast<const T*>(bias), yt, ldy, stream);
  return gemv_rows<T, kPlain>(xt, ldx, rows, wt, n_out, K, nullptr, yt, ldy, stream);
}

// ---- h = x + delta; out = RMSNorm(h) * w: one block per row --------------------------------
constexpr int kNormThreads = 256;

template <typename T>
__global__ void add_rms_norm_kernel(const T* __restrict__ x, const T* __restrict__ delta,
                                    const T* __restrict__ w, T* __restrict__ h,
                                    T* __restrict__ out, int64_t C, float eps) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * C;
  const T* dr = delta ? delta + row * C : nullptr;
  T* hr = h + row * C;
  T* outr = out + row * C;
  pdl_wait();
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
    const T hv = dr ? to_t<T>(__fadd_rn(to_f(xr[i]), to_f(dr[i]))) : xr[i];  // the residual add
    if (dr) hr[i] = hv;
    const float v = to_f(hv);
    ss += v * v;
  }
  pdl_release();
  __shared__ float partial[kNormThreads / 32];
  ss = warp_sum(ss);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  __shared__ float rstd;
  if (threadIdx.x < 32) {
    float s = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
    s = warp_sum(s);
    if (threadIdx.x == 0) rstd = rsqrtf(__fadd_rn(s / static_cast<float>(C), eps));
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
    // Each thread rereads only the h values it wrote itself.
    const float hv = dr ? to_f(hr[i]) : to_f(xr[i]);
    const T normed = to_t<T>(__fmul_rn(hv, rstd));
    outr[i] = to_t<T>(__fmul_rn(to_f(w[i]), to_f(normed)));
  }
}

// The same with 16-byte accesses and the row kept in registers: each thread takes VPT packs of
// 8 elements, loads its weights before waiting on the kernel before (they are parameters), and
// reads x and delta once. The scalar kernel above made 8 dependent rounds of 2-byte loads a
// thread and reread h after the sum: about 6 us a row at hidden 2048 (H100, 2026-12-06), 73
// times a decode step. Same roundings; the sum of squares adds in another order.
template <typename T, int VPT>
__global__ void __launch_bounds__(kNormThreads)
    add_rms_norm_vec_kernel(const T* __restrict__ x, const T* __restrict__ delta,
                            const T* __restrict__ w, T* __restrict__ h, T* __restrict__ out,
                            int64_t C, float eps) {
  constexpr int E = 8;  // elements a pack: 16 bytes
  const int64_t base = static_cast<int64_t>(blockIdx.x) * C;
  uint4 wv[VPT];
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int64_t c = (threadIdx.x + static_cast<int64_t>(k) * blockDim.x) * E;
    if (c < C) wv[k] = *reinterpret_cast<const uint4*>(w + c);
  }
  pdl_wait();
  float hv[VPT][E];
  float ss = 0.f;
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int64_t c = (threadIdx.x + static_cast<int64_t>(k) * blockDim.x) * E;
    if (c >= C) break;
    const uint4 xv = *reinterpret_cast<const uint4*>(x + base + c);
    const T* xe = reinterpret_cast<const T*>(&xv);
    uint4 hp = xv;
    if (delta) {
      const uint4 dv = *reinterpret_cast<const uint4*>(delta + base + c);
      const T* de = reinterpret_cast<const T*>(&dv);
      T* he = reinterpret_cast<T*>(&hp);
#pragma unroll
      for (int j = 0; j < E; ++j) he[j] = to_t<T>(__fadd_rn(to_f(xe[j]), to_f(de[j])));
      *reinterpret_cast<uint4*>(h + base + c) = hp;  // the residual add
    }
    const T* he = reinterpret_cast<const T*>(&hp);
#pragma unroll
    for (int j = 0; j < E; ++j) {
      hv[k][j] = to_f(he[j]);
      ss += hv[k][j] * hv[k][j];
    }
  }
  pdl_release();
  __shared__ float partial[kNormThreads / 32];
  __shared__ float rstd;
  ss = warp_sum(ss);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float t = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
    t = warp_sum(t);
    if (threadIdx.x == 0) rstd = rsqrtf(__fadd_rn(t / static_cast<float>(C), eps));
  }
  __syncthreads();
  const float r = rstd;
#pragma unroll
  for (int k = 0; k < VPT; ++k) {
    const int64_t c = (threadIdx.x + static_cast<int64_t>(k) * blockDim.x) * E;
    if (c >= C) break;
    const T* we = reinterpret_cast<const T*>(&wv[k]);
    uint4 ov;
    T* oe = reinterpret_cast<T*>(&ov);
#pragma unroll
    for (int j = 0; j < E; ++j) {
      const T normed = to_t<T>(__fmul_rn(hv[k][j], r));
      oe[j] = to_t<T>(__fmul_rn(to_f(we[j]), to_f(normed)));
    }
    *reinterpret_cast<uint4*>(out + base + c) = ov;
  }
}

// Packs of 8 a thread for the vector kernel (1, 2 or 4), or 0 where it does not apply: C a
// multiple of 8 up to 4 packs a thread, every pointer 16-byte aligned.
int add_rms_norm_vec_packs(const void* x, const void* delta, const void* w, const void* h,
                           const void* out, int64_t C) {
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (C % 8 != 0 || !aligned(x) || !aligned(w) || !aligned(out) ||
      (delta && (!aligned(delta) || !aligned(h))))
    return 0;
  const int64_t packs = C / 8, per_thread = (packs + kNormThreads - 1) / kNormThreads;
  return per_thread <= 1 ? 1 : per_thread <= 2 ? 2 : per_thread <= 4 ? 4 : 0;
}

// ---- decode attention over a static cache ------------------------------------------------
// One block per (query head, row), or with split-KV a cluster of Z blocks per (query head, row),
// each taking a Z-th of the slots (at batch 1 the 16 heads of the paper's decoder would keep 16
// streaming multiprocessors busy and leave the rest idle). The block ropes its query and its
// group's new key, the group's first head (its first block) writes the new key and value into
// the cache slot, and every block takes the new key/value from shared memory for that slot (no
// block waits on another's write). Scores: a thread per slot, reading its key row with 16-byte
// loads that are all in flight at once. Values: each warp sums a quarter of the block's slots,
// lanes across the head dimension. With Z > 1 each block keeps its max, its sum of
// exponentials and its unnormalised output in shared memory, and the cluster's first block
// combines them through distributed shared memory. Slots [0, slot] that key_valid marks take
// part; fp32 softmax; output rounded to T.
constexpr int kAttnThreads = 128;
constexpr int kAttnWarps = kAttnThreads / 32;
constexpr int kAttnMaxSplits = 8;  // the portable cluster size

template <typename T>
__device__ __forceinline__ float rope_at(const T* v, const float* cos, const float* sin, int d,
                                         int D) {
  const int half = D / 2;
  const float xi = to_f(v[d]);
  const float rot = d < half ? -to_f(v[d + half]) : to_f(v[d - half]);
  const float c = round_f<T>(cos[d]), s = round_f<T>(sin[d]);  // tables cast to the dtype
  const float a = round_f<T>(__fmul_rn(xi, c)), r = round_f<T>(__fmul_rn(rot, s));
  return round_f<T>(__fadd_rn(a, r));
}

// Z blocks per (head, row): blockIdx.x = head * Z + split; Z = 1 without clusters.
template <typename T, int D>
__global__ void __launch_bounds__(kAttnThreads)
decode_attention_kernel(const T* __restrict__ qkv, int64_t ld_qkv, const float* __restrict__ cos,
                        const float* __restrict__ sin, int64_t ld_rope, T* __restrict__ k_cache,
                        T* __restrict__ v_cache, int64_t t_max, const int64_t* __restrict__ slot_ptr,
                        const bool* __restrict__ key_valid, int64_t ld_valid, int S, int H,
                        int Hkv, int Z, float scale, T* __restrict__ out, int64_t ld_out) {
  constexpr int kVec = D / 32;  // head-dimension entries per lane in the value sum
  extern __shared__ float scores[];  // [the block's slots]
  __shared__ float q_s[D], k_new[D], v_new[D];
  __shared__ float part[kAttnWarps][D];
  __shared__ float red[kAttnWarps];
  const int h = blockIdx.x / Z, z = blockIdx.x % Z, b = blockIdx.y, g = h / (H / Hkv);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  pdl_wait();
  const int64_t slot = *slot_ptr;
  const T* row = qkv + b * ld_qkv;
  const float* cb = cos + b * ld_rope;
  const float* sb = sin + b * ld_rope;
  const T* q_in = row + static_cast<int64_t>(h) * D;
  const T* k_in = row + static_cast<int64_t>(H) * D + static_cast<int64_t>(g) * D;
  const T* v_in = row + static_cast<int64_t>(H + Hkv) * D + static_cast<int64_t>(g) * D;
  const int64_t cache_row = (static_cast<int64_t>(b) * Hkv + g) * t_max;  // [B, Hkv, T_max, D]
  const bool writer = h % (H / Hkv) == 0 && z == 0;
  for (int d = tid; d < D; d += kAttnThreads) {
    q_s[d] = rope_at(q_in, cb, sb, d, D);
    const float kd = rope_at(k_in, cb, sb, d, D);
    k_new[d] = kd;
    v_new[d] = to_f(v_in[d]);
    if (writer) {
      k_cache[(cache_row + slot) * D + d] = to_t<T>(kd);
      v_cache[(cache_row + slot) * D + d] = v_in[d];
    }
  }
  __syncthreads();

  const int n_slots = static_cast<int>(slot + 1 < S ? slot + 1 : S);
  const int chunk = (n_slots + Z - 1) / Z;
  const int lo = min(n_slots, z * chunk), hi = min(n_slots, lo + chunk);
  const bool* valid = key_valid + b * ld_valid;
  for (int s = lo + tid; s < hi; s += kAttnThreads) {
    float dot = 0.f;
    if (s == slot) {
#pragma unroll
      for (int d = 0; d < D; ++d) dot = fmaf(q_s[d], k_new[d], dot);
    } else {
      const uint4* kr = reinterpret_cast<const uint4*>(k_cache + (cache_row + s) * D);
      uint4 kv[D / 8];
#pragma unroll
      for (int j = 0; j < D / 8; ++j) kv[j] = kr[j];
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        const T* e = reinterpret_cast<const T*>(&kv[j]);
#pragma unroll
        for (int i = 0; i < 8; ++i) dot = fmaf(q_s[j * 8 + i], to_f(e[i]), dot);
      }
    }
    scores[s - lo] = (s == slot || valid[s]) ? dot * scale : -FLT_MAX;
  }
  __syncthreads();

  float m = -FLT_MAX;
  for (int s = lo + tid; s < hi; s += kAttnThreads) m = fmaxf(m, scores[s - lo]);
  m = warp_max(m);
  if (lane == 0) red[warp] = m;
  __syncthreads();
  m = -FLT_MAX;
#pragma unroll
  for (int i = 0; i < kAttnWarps; ++i) m = fmaxf(m, red[i]);
  __syncthreads();
  float sum = 0.f;
  for (int s = lo + tid; s < hi; s += kAttnThreads) {
    const float e = scores[s - lo] == -FLT_MAX ? 0.f : __expf(scores[s - lo] - m);
    scores[s - lo] = e;
    sum += e;
  }
  sum = warp_sum(sum);
  if (lane == 0) red[warp] = sum;
  __syncthreads();
  sum = 0.f;
#pragma unroll
  for (int i = 0; i < kAttnWarps; ++i) sum += red[i];

  pdl_release();
  float acc[kVec];
#pragma unroll
  for (int i = 0; i < kVec; ++i) acc[i] = 0.f;
  const int d0 = lane * kVec;
#pragma unroll 4
  for (int s = lo + warp; s < hi; s += kAttnWarps) {
    const float p = scores[s - lo];
    if (s == slot) {
#pragma unroll
      for (int i = 0; i < kVec; ++i) acc[i] = fmaf(p, v_new[d0 + i], acc[i]);
    } else {
      const T* vr = v_cache + (cache_row + s) * D + d0;
#pragma unroll
      for (int i = 0; i < kVec; ++i) acc[i] = fmaf(p, to_f(vr[i]), acc[i]);
    }
  }
#pragma unroll
  for (int i = 0; i < kVec; ++i) part[warp][d0 + i] = acc[i];
  __syncthreads();
  T* o = out + b * ld_out + static_cast<int64_t>(h) * D;
  if (Z == 1) {
    const float inv = 1.f / sum;
    for (int d = tid; d < D; d += kAttnThreads) {
      float v = 0.f;
#pragma unroll
      for (int w = 0; w < kAttnWarps; ++w) v += part[w][d];
      o[d] = to_t<T>(v * inv);
    }
    return;
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  __shared__ float o_s[D], stats[2];  // the block's unnormalised output, max and sum
  for (int d = tid; d < D; d += kAttnThreads) {
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < kAttnWarps; ++w) v += part[w][d];
    o_s[d] = v;
  }
  if (tid == 0) stats[0] = m, stats[1] = sum;
  cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
  cluster.sync();  // every block's partials are in its shared memory
  if (z == 0) {
    float mz[kAttnMaxSplits], lz[kAttnMaxSplits], wz[kAttnMaxSplits];
    float M = -FLT_MAX, L = 0.f;
    for (int r = 0; r < Z; ++r) {
      const float* st = cluster.map_shared_rank(stats, r);
      mz[r] = st[0];
      lz[r] = st[1];
      M = fmaxf(M, mz[r]);
    }
    for (int r = 0; r < Z; ++r) {
      wz[r] = lz[r] == 0.f ? 0.f : __expf(mz[r] - M);  // a block without slots weighs nothing
      L += lz[r] * wz[r];
    }
    const float inv = 1.f / L;
    for (int d = tid; d < D; d += kAttnThreads) {
      float v = 0.f;
      for (int r = 0; r < Z; ++r)
        if (wz[r] != 0.f) v += cluster.map_shared_rank(o_s, r)[d] * wz[r];
      o[d] = to_t<T>(v * inv);
    }
  }
  cluster.sync();  // the others' shared memory stays until the first block has read it
#else
  __trap();  // attention_splits gives Z > 1 only to a build with the cluster code
#endif
}

// Blocks per (head, row) for decode attention: 1 unless split-KV is on (C3_ATTN_SPLIT=1, compute
// capability 9.0); then up to kAttnMaxSplits, while the grid is under two blocks a streaming
// multiprocessor and each block keeps at least 128 slots.
int attention_splits(int H, int B, int S) {
  static const int sms = [] {
    if (!env_switch("C3_ATTN_SPLIT", false) ||
        current_device_attribute(cudaDevAttrComputeCapabilityMajor) < 9)
      return 0;
    // The cluster code exists only in a build for compute capability 9.0 and up.
    cudaFuncAttributes fa = {};
    if (cudaFuncGetAttributes(&fa, decode_attention_kernel<__nv_bfloat16, 128>) != cudaSuccess ||
        fa.binaryVersion < 90)
      return 0;
    return current_device_attribute(cudaDevAttrMultiProcessorCount);
  }();
  int z = 1;
  while (sms > 0 && z < kAttnMaxSplits && int64_t{H} * B * z < 2 * sms && S / (2 * z) >= 128)
    z *= 2;
  return z;
}

}  // namespace

cudaError_t launch_gemv(DType t, const void* x, int64_t ldx, int64_t rows, const void* w,
                        int64_t n_out, int64_t K, const void* bias, bool silu_mul, void* y,
                        int64_t ldy, cudaStream_t stream) {
  if (rows < 1 || rows > kGemvMaxRows || K % 8 != 0) return cudaErrorInvalidValue;
  switch (t) {
    case DType::kBFloat16:
      return gemv_any<__nv_bfloat16>(x, ldx, static_cast<int>(rows), w, n_out, K, bias, silu_mul, y, ldy, stream);
    case DType::kHalf:
      return gemv_any<__half>(x, ldx, static_cast<int>(rows), w, n_out, K, bias, silu_mul, y, ldy, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

// The vector kernel for packs a thread P, over N rows.
template <typename T>
cudaError_t launch_add_rms_norm_vec(int P, const void* x, const void* delta, const void* w, void* h,
                                    void* out, int64_t N, int64_t C, float eps,
                                    cudaStream_t stream) {
  const auto* xt = static_cast<const T*>(x);
  const auto* dt = static_cast<const T*>(delta);
  const auto* wt = static_cast<const T*>(w);
  auto* ht = static_cast<T*>(h);
  auto* ot = static_cast<T*>(out);
  const int64_t packs = C / 8;
  const int threads = static_cast<int>(std::min<int64_t>(kNormThreads, (packs + 31) / 32 * 32));
  const dim3 grid(static_cast<unsigned>(N));
  if (P == 1)
    return launch_decode_kernel(add_rms_norm_vec_kernel<T, 1>, grid, dim3(threads), 0, stream, xt,
                                dt, wt, ht, ot, C, eps);
  if (P == 2)
    return launch_decode_kernel(add_rms_norm_vec_kernel<T, 2>, grid, dim3(threads), 0, stream, xt,
                                dt, wt, ht, ot, C, eps);
  return launch_decode_kernel(add_rms_norm_vec_kernel<T, 4>, grid, dim3(threads), 0, stream, xt,
                              dt, wt, ht, ot, C, eps);
}

cudaError_t launch_add_rms_norm(DType t, const void* x, const void* delta, const void* w, void* h,
                                void* out, int64_t N, int64_t C, float eps, cudaStream_t stream) {
  if (const int P = vector_norm_enabled() ? add_rms_norm_vec_packs(x, delta, w, h, out, C) : 0) {
    if (t == DType::kBFloat16)
      return launch_add_rms_norm_vec<__nv_bfloat16>(P, x, delta, w, h, out, N, C, eps, stream);
    if (t == DType::kHalf)
      return launch_add_rms_norm_vec<__half>(P, x, delta, w, h, out, N, C, eps, stream);
  }
  switch (t) {
    case DType::kBFloat16:
      return launch_decode_kernel(
          add_rms_norm_kernel<__nv_bfloat16>, dim3(static_cast<unsigned>(N)), dim3(kNormThreads), 0,
          stream, static_cast<const __nv_bfloat16*>(x), static_cast<const __nv_bfloat16*>(delta),
          static_cast<const __nv_bfloat16*>(w), static_cast<__nv_bfloat16*>(h),
          static_cast<__nv_bfloat16*>(out), C, eps);
    case DType::kHalf:
      return launch_decode_kernel(
          add_rms_norm_kernel<__half>, dim3(static_cast<unsigned>(N)), dim3(kNormThreads), 0, stream,
          static_cast<const __half*>(x), static_cast<const __half*>(delta),
          static_cast<const __half*>(w), static_cast<__half*>(h), static_cast<__half*>(out), C, eps);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_decode_attention(DType t, const DecodeAttentionArgs& a, cudaStream_t stream) {
  if (!decode_attention_head_dim_ok(a.D) || a.H % a.Hkv != 0) return cudaErrorInvalidValue;
  const int Z = attention_splits(a.H, a.B, a.S);
  const dim3 grid(static_cast<unsigned>(a.H * Z), static_cast<unsigned>(a.B));
  const size_t shared = static_cast<size_t>((a.S + Z - 1) / Z) * sizeof(float);
  const float scale = 1.0f / sqrtf(static_cast<float>(a.D));
  cudaError_t err = cudaSuccess;
#define C3_ATTN(T, D)                                                                             \
  err = launch_clustered(                                                                         \
      decode_attention_kernel<T, D>, grid, dim3(kAttnThreads), shared, stream,                    \
      static_cast<unsigned>(Z), static_cast<const T*>(a.qkv), a.ld_qkv, a.cos, a.sin, a.ld_rope,  \
      static_cast<T*>(a.k_cache), static_cast<T*>(a.v_cache), a.t_max, a.slot, a.key_valid,       \
      a.ld_valid, a.S, a.H, a.Hkv, Z, scale, static_cast<T*>(a.out), a.ld_out)
#define C3_ATTN_D(T)                            \
  switch (a.D) {                                \
    case 64: C3_ATTN(T, 64); break;             \
    case 128: C3_ATTN(T, 128); break;           \
    default: C3_ATTN(T, 256); break;            \
  }
  switch (t) {
    case DType::kBFloat16: C3_ATTN_D(__nv_bfloat16); break;
    case DType::kHalf: C3_ATTN_D(__half); break;
    default: return cudaErrorInvalidValue;
  }
#undef C3_ATTN_D
#undef C3_ATTN
  return err;
}

}  // namespace c3::model::fused::cuda
