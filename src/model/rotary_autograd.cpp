// RoPE's autograd node: the CUDA kernels (forward: fused_kernels.cu, backward:
// rotary_backward.cu) where they apply, the ATen formulas elsewhere.
#include "model/rotary_autograd.h"

#include <torch/autograd.h>

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
bool kernel_applies(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return kernels_enabled() && cuda::rotary_backward_supported(x, cos, sin);
}
#endif

struct RotaryFunction : torch::autograd::Function<RotaryFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos,
                            const at::Tensor& sin) {
    ctx->save_for_backward({cos, sin});  // x is not needed: the map is linear in it
#ifdef C3_HAVE_CUDA_KERNELS
    if (kernel_applies(x, cos, sin)) return cuda::rotary(x, cos, sin);
#endif
    return reference::rotary(x, cos, sin);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const variable_list s = ctx->get_saved_variables();
    const at::Tensor& g = grad_out[0];  // [B, H, T, D] in x's dtype
#ifdef C3_HAVE_CUDA_KERNELS
    if (kernel_applies(g, s[0], s[1])) return {cuda::rotary_backward(g, s[0], s[1]), {}, {}};
#endif
    return {reference::rotary_backward(g, s[0], s[1]), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor rotary_autograd(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return RotaryFunction::apply(x, cos, sin);
}

namespace reference {

at::Tensor rotary_backward(const at::Tensor& g, const at::Tensor& cos_t, const at::Tensor& sin_t) {
  const at::Tensor cos = cos_t.to(g.scalar_type()).unsqueeze(1);  // [B, 1, T, D]
  const at::Tensor sin = sin_t.to(g.scalar_type()).unsqueeze(1);
  const int64_t half = g.size(-1) / 2;
  const at::Tensor gs = g * sin;  // the gradient of rotate_half(x)
  return g * cos + at::cat({gs.slice(-1, half), -gs.slice(-1, 0, half)}, -1);
}

}  // namespace reference

}  // namespace c3::model::fused
