// SwiGLU's middle, silu(gate) * up over the stacked [gate, up] projection, as one autograd node
// with a backward of its own: one CUDA kernel each way where the kernels are built (model/cuda),
// ATen ops elsewhere. Its gradient is the stacked projection's, [..., 2I], in one tensor.
#pragma once
#include <ATen/ATen.h>

namespace c3::model::fused {

// The value of reference::silu_mul (fused_ops.h), differentiable in gate_up [..., 2I].
at::Tensor silu_mul_autograd(const at::Tensor& gate_up);

namespace reference {
// Its backward in ATen ops, the ops autograd runs through the reference: grad_up = grad silu(gate),
// grad_gate = silu_backward(grad up, gate); returned side by side, [..., 2I].
at::Tensor silu_mul_backward(const at::Tensor& grad, const at::Tensor& gate_up);
}  // namespace reference

}  // namespace c3::model::fused
