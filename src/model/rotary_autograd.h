// RoPE as one autograd node with a backward of its own: one CUDA kernel each way where the
// kernels are built (model/cuda), ATen ops elsewhere. Through the reference ops autograd records
// a cast, two slices, a negation, a cat, two products and a sum per call.
#pragma once
#include <ATen/ATen.h>

namespace c3::model::fused {

// The value of reference::rotary (fused_ops.h): x [B, H, T, D] with fp32 tables cos/sin
// [B, T, D]; differentiable in x (the tables are constants).
at::Tensor rotary_autograd(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

namespace reference {
// Its backward in ATen ops, the transpose of the rotation with autograd's roundings:
// grad_x = grad c + [ (grad s)[D/2:], -(grad s)[:D/2] ], c and s the tables in grad's dtype
// (which is x's).
at::Tensor rotary_backward(const at::Tensor& grad, const at::Tensor& cos, const at::Tensor& sin);
}  // namespace reference

}  // namespace c3::model::fused
