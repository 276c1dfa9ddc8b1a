// SiLU-and-multiply's autograd node: the CUDA kernels (forward: fused_kernels.cu, backward:
// silu_mul_backward.cu) where they apply, the ATen formulas elsewhere.
#include "model/silu_mul_autograd.h"

#include <torch/autograd.h>

#include <vector>

#include "model/fused_ops.h"

#ifdef C3_HAVE_CUDA_KERNELS
#include "model/cuda/backward_kernels.h"
#include "model/cuda/fused_kernels.h"
#endif

namespace c3::model::fused {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

#ifdef C3_HAVE_CUDA_KERNELS  // its callers are CUDA-only
bool kernel_applies(const at::Tensor& gate_up) {
  return kernels_enabled() && cuda::silu_mul_backward_supported(gate_up);
}
#endif

struct SiluMulFunction : torch::autograd::Function<SiluMulFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate_up) {
    ctx->save_for_backward({gate_up});  // [..., 2I]: as the reference keeps gate, silu(gate), up
#ifdef C3_HAVE_CUDA_KERNELS
    if (kernel_applies(gate_up)) return cuda::silu_mul(gate_up);
#endif
    return reference::silu_mul(gate_up);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const at::Tensor gate_up = ctx->get_saved_variables()[0];
#ifdef C3_HAVE_CUDA_KERNELS
    if (kernel_applies(gate_up)) return {cuda::silu_mul_backward(grad_out[0], gate_up)};
#endif
    return {reference::silu_mul_backward(grad_out[0], gate_up)};
  }
};

}  // namespace

at::Tensor silu_mul_autograd(const at::Tensor& gate_up) { return SiluMulFunction::apply(gate_up); }

namespace reference {

at::Tensor silu_mul_backward(const at::Tensor& grad, const at::Tensor& gate_up) {
  const int64_t I = gate_up.size(-1) / 2;
  const std::vector<at::Tensor> gu = gate_up.split_with_sizes({I, I}, -1);
  const at::Tensor g = grad.to(gate_up.scalar_type());
  const at::Tensor grad_up = g * at::silu(gu[0]);
  const at::Tensor grad_gate = at::silu_backward(g * gu[1], gu[0]);
  return at::cat({grad_gate, grad_up}, -1);
}

}  // namespace reference

}  // namespace c3::model::fused
