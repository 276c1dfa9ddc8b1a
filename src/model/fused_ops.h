// Element-wise steps of the Qwen2 layer that a GPU would rather run as one kernel each.
//
// Each function has a reference path in plain ATen ops, in HF's op order and with HF's roundings
// (so CPU results match HF bit for bit). CUDA builds with a CUDA compiler (C3_HAVE_CUDA_KERNELS)
// route CUDA tensors to one hand-written kernel per call that keeps the same roundings; its
// fp32 reductions may sum in another order. C3_FUSED_KERNELS=0 turns the kernels off.
#pragma once
#include <ATen/ATen.h>

namespace c3::model::fused {

// HF Qwen2RMSNorm: weight * (x32 * rsqrt(mean(x32^2) + eps)).to(x.dtype). [..., C] -> [..., C].
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// SwiGLU's middle: gate_up [..., 2I] holds gate then up; returns silu(gate) * up [..., I],
// each op rounded to the input dtype as HF's two separate ops round.
at::Tensor silu_mul(const at::Tensor& gate_up);

// Whether the hand-written kernels are compiled in and switched on (C3_FUSED_KERNELS != 0).
bool kernels_enabled();

}  // namespace c3::model::fused
