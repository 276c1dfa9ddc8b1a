// Hand-written CUDA kernels behind model/fused_ops.h (built only with a CUDA compiler:
// C3_HAVE_CUDA_KERNELS). Each reproduces the roundings of the reference ATen ops; the
// *_supported checks say which inputs a kernel takes (others go to the reference path).
#pragma once
#include <ATen/ATen.h>

namespace c3::model::fused::cuda {

bool rms_norm_supported(const at::Tensor& x, const at::Tensor& weight);
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

bool silu_mul_supported(const at::Tensor& gate_up);
at::Tensor silu_mul(const at::Tensor& gate_up);

bool rotary_supported(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
at::Tensor rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace c3::model::fused::cuda
