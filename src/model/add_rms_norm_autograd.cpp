// The residual add and RMSNorm's autograd node: the CUDA kernels (add_rms_norm_train.cu) where they
// apply, the ATen formulas elsewhere.
#include "model/add_rms_norm_autograd.h"

#include <torch/autograd.h>

#include "model/fused_ops.h"
#include "model/rms_norm_autograd.h"

#ifdef C3_HAVE_CUDA_KERNELS
#include "model/cuda/backward_kernels.h"
#endif

namespace c3::model::fused {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct AddRmsNormFunction : torch::autograd::Function<AddRmsNormFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& delta,
                               const at::Tensor& weight, double eps, int64_t y_dtype) {
    const auto yt = static_cast<at::ScalarType>(y_dtype);
    at::Tensor h, y;
#ifdef C3_HAVE_CUDA_KERNELS
    if (kernels_enabled() && cuda::add_rms_norm_train_supported(x, delta, weight, yt))
      std::tie(h, y) = cuda::add_rms_norm_train(x, delta, weight, eps, yt);
#endif
    if (!h.defined()) {
      h = x + delta;
      y = reference::rms_norm(h, weight, eps).to(yt);
    }
    ctx->save_for_backward({h, weight});
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["delta_dtype"] = static_cast<int64_t>(delta.scalar_type());
    return {h, y};
  }

  // grads: {of h (the residual stream's own), of y}; either may be undefined.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const at::Tensor &h = s[0], &weight = s[1];
    const double eps = ctx->saved_data["eps"].toDouble();
    const auto delta_dtype = static_cast<at::ScalarType>(ctx->saved_data["delta_dtype"].toInt());
    const at::Tensor &gh = grads[0], &gy = grads[1];
    at::Tensor gx, gdelta, gw;
    if (!gy.defined()) {  // y unused: the residual's gradient passes through
      gx = gh;
      if (gh.defined()) gdelta = gh.to(delta_dtype);
    } else {
#ifdef C3_HAVE_CUDA_KERNELS
      if (kernels_enabled() &&
          cuda::add_rms_norm_train_backward_supported(gy, gh, h, weight, delta_dtype))
        std::tie(gx, gdelta, gw) =
            cuda::add_rms_norm_train_backward(gy, gh, h, weight, eps, delta_dtype,
                                              ctx->needs_input_grad(0), ctx->needs_input_grad(1));
#endif
      if (!gw.defined()) {
        const auto [g_norm, g_w] =
            reference::rms_norm_backward(gy.to(h.scalar_type()), h, weight, eps);
        gx = gh.defined() ? gh + g_norm : g_norm;
        gdelta = gx.to(delta_dtype);
        gw = g_w;
      }
    }
    return {ctx->needs_input_grad(0) ? gx : at::Tensor(),
            ctx->needs_input_grad(1) ? gdelta : at::Tensor(),
            ctx->needs_input_grad(2) ? gw : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::pair<at::Tensor, at::Tensor> add_rms_norm_autograd(const at::Tensor& x,
                                                        const at::Tensor& delta,
                                                        const at::Tensor& weight, double eps,
                                                        at::ScalarType y_dtype) {
  const variable_list out =
      AddRmsNormFunction::apply(x, delta, weight, eps, static_cast<int64_t>(y_dtype));
  return {out[0], out[1]};
}

}  // namespace c3::model::fused
