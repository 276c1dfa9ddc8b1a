// Torch-facing wrappers of the training kernels' backward halves (rms_norm_backward.cu,
// rotary_backward.cu, silu_mul_backward.cu; forward halves: fused_kernels.h). Built only with a
// CUDA compiler (C3_HAVE_CUDA_KERNELS). The *_supported checks say which inputs a kernel takes;
// the autograd functions (model/*_autograd.h) run their ATen formulas on the others.
#pragma once
#include <ATen/ATen.h>

#include <tuple>
#include <utility>

namespace c3::model::fused::cuda {

// {grad_x, grad_weight} of y = rms_norm(x, weight, eps), for grad and x [..., C] and weight [C]
// of one floating dtype.
bool rms_norm_backward_supported(const at::Tensor& x, const at::Tensor& weight);
std::pair<at::Tensor, at::Tensor> rms_norm_backward(const at::Tensor& grad, const at::Tensor& x,
                                                    const at::Tensor& weight, double eps);

// grad_x of y = rotary(x, cos, sin) from grad [B, H, T, D] (any strides, x's dtype). grad_x is
// laid out [B, T, H, D], as the projection that x is a view of: the views back cost nothing.
bool rotary_backward_supported(const at::Tensor& grad, const at::Tensor& cos,
                               const at::Tensor& sin);
at::Tensor rotary_backward(const at::Tensor& grad, const at::Tensor& cos, const at::Tensor& sin);

// grad_gate_up [..., 2I] of y = silu_mul(gate_up).
bool silu_mul_backward_supported(const at::Tensor& gate_up);
at::Tensor silu_mul_backward(const at::Tensor& grad, const at::Tensor& gate_up);

// Training's residual add and RMSNorm (add_rms_norm_train.cu; node: model/add_rms_norm_autograd.h).
// {h, y}: h = x + delta in x's dtype, y = RMSNorm(h) in y_dtype. x, delta [..., C] of one shape,
// weight [C] of x's dtype.
bool add_rms_norm_train_supported(const at::Tensor& x, const at::Tensor& delta,
                                  const at::Tensor& weight, at::ScalarType y_dtype);
std::pair<at::Tensor, at::Tensor> add_rms_norm_train(const at::Tensor& x, const at::Tensor& delta,
                                                     const at::Tensor& weight, double eps,
                                                     at::ScalarType y_dtype);
// Its backward: {grad_x (gh + the norm's gradient of h), grad_delta (the same in delta_dtype),
// grad_weight}; gh may be undefined, and grad_x / grad_delta are made only where asked for.
bool add_rms_norm_train_backward_supported(const at::Tensor& gy, const at::Tensor& gh,
                                           const at::Tensor& h, const at::Tensor& weight,
                                           at::ScalarType delta_dtype);
std::tuple<at::Tensor, at::Tensor, at::Tensor> add_rms_norm_train_backward(
    const at::Tensor& gy, const at::Tensor& gh, const at::Tensor& h, const at::Tensor& weight,
    double eps, at::ScalarType delta_dtype, bool need_x, bool need_delta);

}  // namespace c3::model::fused::cuda
