// The SwiGLU feed-forward block of Qwen2: down(silu(gate(x)) * up(x)).
#include "model/mlp.h"

namespace c3::model {


Qwen2MLPImpl::Qwen2MLPImpl(const Qwen2Config& cfg) {
  const int64_t C = cfg.hidden_size, I = cfg.intermediate_size;
  gate_proj = register_module("gate_proj", Linear(C, I, /*bias=*/false));
  up_proj = register_module("up_proj", Linear(C, I, /*bias=*/false));
  down_proj = register_module("down_proj", Linear(I, C, /*bias=*/false));
}

at::Tensor Qwen2MLPImpl::forward(const at::Tensor& x) {
  const at::Tensor gate = at::silu(gate_proj(x));  // [B, T, I]
  const at::Tensor up = up_proj(x);                // [B, T, I]
  return down_proj(gate * up);                     // [B, T, C]
}

}  // namespace c3::model
