// Training's residual add and RMSNorm as one autograd node: h = x + delta and y = RMSNorm(h), with
// y made directly in the dtype its reader wants (autocast's, before a GEMM). One CUDA kernel each
// way where the kernels are built (model/cuda/add_rms_norm_train.cu), ATen ops elsewhere.
//
// Per norm, under bf16 autocast, the unfused step ran five element-wise kernels beside the norm's
// own: the add; the cast of the fp32 norm to bf16; in backward, the cast of its gradient back to
// fp32, the add of the residual's own gradient, and the cast of the sum to bf16 for delta. This
// node does each way in one pass over the rows, with the same roundings.
#pragma once
#include <ATen/ATen.h>

#include <utility>

namespace c3::model::fused {

// {h, y}: h = x + delta (x's dtype; x and weight of one dtype, delta of any floating dtype),
// y = reference::rms_norm(h, weight, eps).to(y_dtype). Differentiable in x, delta and weight;
// y_dtype other than h's is exact only where y's reader casts to y_dtype anyway.
std::pair<at::Tensor, at::Tensor> add_rms_norm_autograd(const at::Tensor& x,
                                                        const at::Tensor& delta,
                                                        const at::Tensor& weight, double eps,
                                                        at::ScalarType y_dtype);

}  // namespace c3::model::fused
