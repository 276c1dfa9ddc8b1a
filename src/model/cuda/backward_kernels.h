// Torch-facing wrappers of the training kernels' backward halves (rms_norm_backward.cu,
// rotary_backward.cu, silu_mul_backward.cu; forward halves: fused_kernels.h). Built only with a
// CUDA compiler (C3_HAVE_CUDA_KERNELS). The *_supported checks say which inputs a kernel takes;
// the autograd functions (model/*_autograd.h) run their ATen formulas on the others.
#pragma once
#include <ATen/ATen.h>

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

}  // namespace c3::model::fused::cuda
