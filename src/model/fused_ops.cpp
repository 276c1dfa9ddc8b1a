// Reference paths of the fused element-wise steps, and the dispatch to the CUDA kernels.
#include "model/fused_ops.h"

#include <cstdlib>
#include <cstring>

#ifdef C3_HAVE_CUDA_KERNELS
#include "model/cuda/fused_kernels.h"
#endif

namespace c3::model::fused {

bool kernels_enabled() {
#ifdef C3_HAVE_CUDA_KERNELS
  static const bool on = [] {
    const char* v = std::getenv("C3_FUSED_KERNELS");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return on;
#else
  return false;
#endif
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (x.is_cuda() && kernels_enabled() && cuda::rms_norm_supported(x, weight))
    return cuda::rms_norm(x, weight, eps);
#endif
  // The variance is taken in fp32 even for bf16 activations, as HF does.
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  const at::Tensor normed = x32 * at::rsqrt(variance + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor silu_mul(const at::Tensor& gate_up) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (gate_up.is_cuda() && kernels_enabled() && cuda::silu_mul_supported(gate_up))
    return cuda::silu_mul(gate_up);
#endif
  const int64_t I = gate_up.size(-1) / 2;
  return at::silu(gate_up.narrow(-1, 0, I)) * gate_up.narrow(-1, I, I);
}

}  // namespace c3::model::fused
