// Plain launchers of the fused kernels (fused_kernels.cu), free of torch headers so that nvcc
// never compiles ATen. Each returns the launch's cudaError_t.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace c3::model::fused::cuda {

enum class DType { kFloat, kBFloat16, kHalf };

// x, out [N, C] contiguous; w [C].
cudaError_t launch_rms_norm(DType t, const void* x, const void* w, void* out, int64_t N,
                            int64_t C, float eps, cudaStream_t stream);
// gate_up [N, 2I] contiguous -> out [N, I].
cudaError_t launch_silu_mul(DType t, const void* gate_up, void* out, int64_t N, int64_t I,
                            cudaStream_t stream);
// x [B, H, S, D] with strides sx[4] -> out contiguous [B, H, S, D]; cos/sin fp32 [B, S, D] with
// strides (cb, ct, 1).
cudaError_t launch_rotary(DType t, const void* x, const float* cos, const float* sin, void* out,
                          int64_t B, int64_t H, int64_t S, int64_t D, const int64_t sx[4],
                          int64_t cb, int64_t ct, cudaStream_t stream);

}  // namespace c3::model::fused::cuda
