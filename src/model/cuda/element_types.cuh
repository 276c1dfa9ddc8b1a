// Element types of the training kernels: loads to fp32, rounding back (to nearest even), and the
// switch from launch.h's DType to a C++ type. Device code only; include from .cu files.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "model/cuda/launch.h"

namespace c3::model::fused::cuda::elem {

template <typename T>
__device__ __forceinline__ float to_f(T v);
template <>
__device__ __forceinline__ float to_f(float v) {
  return v;
}
template <>
__device__ __forceinline__ float to_f(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <>
__device__ __forceinline__ float to_f(__half v) {
  return __half2float(v);
}

template <typename T>
__device__ __forceinline__ T to_t(float v);
template <>
__device__ __forceinline__ float to_t(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 to_t(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half to_t(float v) {
  return __float2half_rn(v);
}

// v rounded to T and read back: where an ATen op on T tensors would round its result.
template <typename T>
__device__ __forceinline__ float round_to(float v) {
  return to_f(to_t<T>(v));
}

}  // namespace c3::model::fused::cuda::elem

// Runs __VA_ARGS__ with scalar_t bound to the C++ type of a DType.
#define C3_ELEM_DISPATCH(T, ...)                       \
  switch (T) {                                         \
    case ::c3::model::fused::cuda::DType::kFloat: {    \
      using scalar_t = float;                          \
      __VA_ARGS__;                                     \
      break;                                           \
    }                                                  \
    case ::c3::model::fused::cuda::DType::kBFloat16: { \
      using scalar_t = __nv_bfloat16;                  \
      __VA_ARGS__;                                     \
      break;                                           \
    }                                                  \
    case ::c3::model::fused::cuda::DType::kHalf: {     \
      using scalar_t = __half;                         \
      __VA_ARGS__;                                     \
      break;                                           \
    }                                                  \
  }
