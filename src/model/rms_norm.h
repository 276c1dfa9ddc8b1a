// RMSNorm as in HF Qwen2: normalise in fp32, cast back, then scale by a learned weight.
#pragma once
#include <torch/nn.h>

namespace c3::model {

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  // [..., C] -> [..., C] in the input dtype: weight * (x / sqrt(mean(x^2) + eps)).to(dtype).
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight;  // [C]
  double eps;
};
TORCH_MODULE(RMSNorm);

}  // namespace c3::model
