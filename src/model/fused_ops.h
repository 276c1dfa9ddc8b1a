// Element-wise steps of the Qwen2 layer that a GPU would rather run as one kernel each.
//
// Each function has a reference path in plain ATen ops (fused::reference), in HF's op order and
// with HF's roundings, so CPU results match HF bit for bit. CUDA builds with a CUDA compiler
// (C3_HAVE_CUDA_KERNELS) route CUDA tensors to one hand-written kernel per call that rounds at
// the same points; RMSNorm's fp32 sum of squares may add in another order. C3_FUSED_KERNELS=0
// turns the kernels off. The kernels have no backward: with autograd recording (training), the
// reference path runs.
#pragma once
#include <ATen/ATen.h>

namespace c3::model::fused {

// HF Qwen2RMSNorm: weight * (x32 * rsqrt(mean(x32^2) + eps)).to(x.dtype). [..., C] -> [..., C].
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// SwiGLU's middle: gate_up [..., 2I] holds gate then up; returns silu(gate) * up [..., I],
// each op rounded to the input dtype as HF's two separate ops round.
at::Tensor silu_mul(const at::Tensor& gate_up);

// RoPE on x [B, H, T, D] with fp32 tables cos/sin [B, T, D]: x * cos + rotate_half(x) * sin,
// cos/sin cast to x's dtype first (HF).
at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// Whether the hand-written kernels are compiled in and switched on (C3_FUSED_KERNELS != 0).
bool kernels_enabled();

namespace reference {
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor silu_mul(const at::Tensor& gate_up);
at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
}  // namespace reference

}  // namespace c3::model::fused
