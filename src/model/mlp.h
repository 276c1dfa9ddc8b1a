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
  // Inference: stacks gate and up into one [2I, C] weight (see fuse_rows), so that a forward
  // without autograd makes both with one GEMM. Idempotent; returns whether it (re)allocated.
  bool fuse_projections();
  bool is_fused() const;    // the parameters are still views into the fused tensor
  bool uses_fused() const;  // forward() takes the fused path now: fused, autograd not recording
  // forward() trains through the stacked gate/up (stacked_rows.h): fused, autograd recording, on.
  bool uses_stacked() const;
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};  // no biases

 private:
  at::Tensor gate_up_weight_;  // [2I, C]: gate rows then up rows; undefined unfused
};
TORCH_MODULE(Qwen2MLP);

}  // namespace c3::model
