// Reference paths of the fused element-wise steps, and the dispatch to the CUDA kernels.
#include "model/fused_ops.h"

#include <ATen/core/grad_mode.h>

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

#ifdef C3_HAVE_CUDA_KERNELS
namespace {
// A kernel may run: CUDA input, kernels on, and no autograd graph to record (no backward).
bool use_kernel(const at::Tensor& x, const at::Tensor& param = at::Tensor()) {
  if (!x.is_cuda() || !kernels_enabled()) return false;
  if (at::GradMode::is_enabled() && (x.requires_grad() || (param.defined() && param.requires_grad())))
    return false;
  return true;
}
}  // namespace
#endif

namespace reference {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  // The variance is taken in fp32 even for bf16 activations, as HF does.
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  const at::Tensor normed = x32 * at::rsqrt(variance + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor silu_mul(const at::Tensor& gate_up) {
  const int64_t I = gate_up.size(-1) / 2;
  return at::silu(gate_up.narrow(-1, 0, I)) * gate_up.narrow(-1, I, I);
}

at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos_t, const at::Tensor& sin_t) {
  const at::Tensor cos = cos_t.to(x.scalar_type()).unsqueeze(1);  // [B, 1, T, D]
  const at::Tensor sin = sin_t.to(x.scalar_type()).unsqueeze(1);  // [B, 1, T, D]
  const int64_t half = x.size(-1) / 2;
  const at::Tensor x1 = x.slice(-1, 0, half), x2 = x.slice(-1, half);
  const at::Tensor rotated = at::cat({-x2, x1}, -1);  // rotate_half: [-x2, x1]
  return x * cos + rotated * sin;
}

}  // namespace reference

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (use_kernel(x, weight) && cuda::rms_norm_supported(x, weight)) return cuda::rms_norm(x, weight, eps);
#endif
  return reference::rms_norm(x, weight, eps);
}

at::Tensor silu_mul(const at::Tensor& gate_up) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (use_kernel(gate_up) && cuda::silu_mul_supported(gate_up)) return cuda::silu_mul(gate_up);
#endif
  return reference::silu_mul(gate_up);
}

at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
#ifdef C3_HAVE_CUDA_KERNELS
  if (use_kernel(x) && cuda::rotary_supported(x, cos, sin)) return cuda::rotary(x, cos, sin);
#endif
  return reference::rotary(x, cos, sin);
}

}  // namespace c3::model::fused
