// The SwiGLU feed-forward block of Qwen2: down(silu(gate(x)) * up(x)).
#pragma once
#include <torch/nn.h>

#include "model/linear.h"
#include "model/qwen2_config.h"

namespace c3::model {

class Qwen2MLPImpl : public torch::nn::Module {
 public:
  explicit Qwen2MLPImpl(const Qwen2Config& cfg);
  at::Tensor forward(const at::Tensor& x);  // [B, T, C] -> [B, T, C]
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};  // no biases
};
TORCH_MODULE(Qwen2MLP);

}  // namespace c3::model
