// 16-byte loads and stores for the element-wise kernels (SiLU·mul and RoPE, both ways): with one
// 2-byte element a thread they reached 32% of HBM bandwidth on an H100. Each kernel checks on the
// host (vec_aligned) that its rows allow whole 16-byte accesses, else it takes its scalar path.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace c3::model::fused::cuda {

// Elements of T in one 16-byte access: 8 bf16 / half, 4 float.
template <typename T>
constexpr int kVecWidth = static_cast<int>(16 / sizeof(T));

// C3_VECTOR_KERNELS=0 sends every kernel down its scalar path: a switch back, read once.
inline bool vector_kernels_on() {
  static const bool on = [] {
    const char* v = std::getenv("C3_VECTOR_KERNELS");
    return !(v && v[0] == '0' && v[1] == '\0');
  }();
  return on;
}

// Whether 16-byte accesses of T stay aligned at every pointer plus any sum of multiples of these
// element offsets (row strides, half rows, widths).
template <typename T>
inline bool vec_aligned(std::initializer_list<const void*> ptrs,
                        std::initializer_list<int64_t> offsets) {
  if (!vector_kernels_on()) return false;
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  for (int64_t o : offsets)
    if (o % kVecWidth<T> != 0) return false;
  return true;
}

// N consecutive elements of T, moved as whole 16-byte words.
template <typename T, int N = kVecWidth<T>>
struct alignas(16) Vec {
  static_assert(N * sizeof(T) % 16 == 0, "whole 16-byte words");
  static constexpr int kWords = static_cast<int>(N * sizeof(T) / 16);
  T v[N];
};

#ifdef __CUDACC__
// p must be 16-byte aligned.
template <typename T, int N = kVecWidth<T>>
__device__ __forceinline__ Vec<T, N> load_vec(const T* p) {
  Vec<T, N> out;
  const uint4* src = reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int i = 0; i < Vec<T, N>::kWords; ++i) {
    const uint4 w = src[i];
    memcpy(reinterpret_cast<char*>(out.v) + 16 * i, &w, 16);
  }
  return out;
}

// p must be 16-byte aligned. __stwb is a plain (write-back) store that stays one 128-bit store:
// a plain assignment came out as four 4-byte stores in RoPE.
template <typename T, int N>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, N>& in) {
  uint4* dst = reinterpret_cast<uint4*>(p);
#pragma unroll
  for (int i = 0; i < Vec<T, N>::kWords; ++i) {
    uint4 w;
    memcpy(&w, reinterpret_cast<const char*>(in.v) + 16 * i, 16);
    __stwb(dst + i, w);
  }
}

// RoPE's fp32 cos and sin packs at a pack start and at its partner half a row on.
template <int W>
struct RotaryTablePacks {
  Vec<float, W> c_lo, c_hi, s_lo, s_hi;
};
template <int W>
__device__ __forceinline__ RotaryTablePacks<W> load_rotary_tables(const float* cos,
                                                                  const float* sin, int64_t half) {
  return {load_vec<float, W>(cos), load_vec<float, W>(cos + half), load_vec<float, W>(sin),
          load_vec<float, W>(sin + half)};
}
#endif

}  // namespace c3::model::fused::cuda
