// Torch-facing wrapper of the cross-entropy row kernel (cross_entropy_rows.cu). Built only with a
// CUDA compiler (C3_HAVE_CUDA_KERNELS); model/chunked_cross_entropy.cpp calls it per chunk of rows.
#pragma once
#include <ATen/ATen.h>

namespace c3::model::fused::cuda {

struct CrossEntropyRows {
  at::Tensor loss_sum;  // fp32 0-dim: the sum of the rows' -log_softmax at their targets
  at::Tensor hits;      // long 0-dim: rows whose first largest logit is the target's
};

// logits [n, V]: contiguous CUDA fp32, bf16 or fp16; target [n] long on the same device.
bool cross_entropy_rows_supported(const at::Tensor& logits, const at::Tensor& target);
// Loss and hits of the rows (ignored rows, target < 0, add nothing). With scale defined (fp32
// 0-dim on the device), the logits are overwritten by the gradient of the loss sum times scale:
// softmax * scale, minus scale at the target, in the logits' dtype (0 on ignored rows).
CrossEntropyRows cross_entropy_rows(at::Tensor& logits, const at::Tensor& target,
                                    const at::Tensor& scale);

}  // namespace c3::model::fused::cuda
