// RMSNorm's autograd node: the CUDA kernels (forward: fused_kernels.cu, backward:
// rms_norm_backward.cu) where they apply, the ATen formulas elsewhere.
#include "model/rms_norm_autograd.h"

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

// The kernels take CUDA tensors of one dtype (and rows up to kRmsNormBackwardMaxC wide).
#ifdef C3_HAVE_CUDA_KERNELS  // its callers are CUDA-only
bool kernel_applies(const at::Tensor& x, const at::Tensor& weight) {
  return kernels_enabled() && cuda::rms_norm_backward_supported(x, weight);
}
#endif

struct RmsNormFunction : torch::autograd::Function<RmsNormFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            double eps) {
    ctx->save_for_backward({x, weight});
    ctx->saved_data["eps"] = eps;
#ifdef C3_HAVE_CUDA_KERNELS
    if (kernel_applies(x, weight)) return cuda::rms_norm(x, weight, eps);
#endif
    return reference::rms_norm(x, weight, eps);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const variable_list s = ctx->get_saved_variables();
    const double eps = ctx->saved_data["eps"].toDouble();
    std::pair<at::Tensor, at::Tensor> g;
#ifdef C3_HAVE_CUDA_KERNELS
    if (kernel_applies(s[0], s[1])) g = cuda::rms_norm_backward(grad_out[0], s[0], s[1], eps);
#endif
    if (!g.first.defined()) g = reference::rms_norm_backward(grad_out[0], s[0], s[1], eps);
    return {ctx->needs_input_grad(0) ? g.first : at::Tensor(),
            ctx->needs_input_grad(1) ? g.second : at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor rms_norm_autograd(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return RmsNormFunction::apply(x, weight, eps);
}

namespace reference {

std::pair<at::Tensor, at::Tensor> rms_norm_backward(const at::Tensor& grad, const at::Tensor& x,
                                                    const at::Tensor& weight, double eps) {
  const int64_t C = x.size(-1);
  const at::Tensor x32 = x.to(at::kFloat);
  const at::Tensor r = at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);  // [..., 1]
  const at::Tensor n = x32 * r;                                                 // fp32
  const at::Tensor gn =
      (grad.to(at::kFloat) * weight.to(at::kFloat)).to(x.scalar_type()).to(at::kFloat);
  const at::Tensor gx = r * (gn - n * (gn * n).mean(-1, /*keepdim=*/true));
  const at::Tensor gw =
      (grad.to(at::kFloat) * n.to(x.scalar_type()).to(at::kFloat)).reshape({-1, C}).sum(0);
  return {gx.to(x.scalar_type()), gw.to(weight.scalar_type())};
}

}  // namespace reference

}  // namespace c3::model::fused
