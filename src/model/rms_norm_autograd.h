// RMSNorm as one autograd node with a backward of its own: one CUDA kernel each way where the
// kernels are built (model/cuda), ATen ops elsewhere. Autograd through the reference ops records
// eight nodes per norm and keeps their fp32 intermediates; this one keeps x and the weight.
#pragma once
#include <ATen/ATen.h>

#include <utility>

namespace c3::model::fused {

// The value of reference::rms_norm (fused_ops.h), differentiable in x and weight.
at::Tensor rms_norm_autograd(const at::Tensor& x, const at::Tensor& weight, double eps);

namespace reference {
// Its backward in ATen ops, {grad_x, grad_weight}: with r = rsqrt(mean(x^2) + eps), n = x r and
// gn = grad * weight rounded to x's dtype (as autograd rounds the gradient of n.to(dtype)),
// grad_x = r (gn - n mean(gn n)) and grad_weight = sum over rows of grad * n.to(dtype).
std::pair<at::Tensor, at::Tensor> rms_norm_backward(const at::Tensor& grad, const at::Tensor& x,
                                                    const at::Tensor& weight, double eps);
}  // namespace reference

}  // namespace c3::model::fused
