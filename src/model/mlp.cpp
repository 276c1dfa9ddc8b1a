// The SwiGLU feed-forward block of Qwen2: down(silu(gate(x)) * up(x)).
#include "model/mlp.h"

#include "model/fused_ops.h"
#include "model/stacked_rows.h"

namespace c3::model {

Qwen2MLPImpl::Qwen2MLPImpl(const Qwen2Config& cfg) {
  const int64_t C = cfg.hidden_size, I = cfg.intermediate_size;
  gate_proj = register_module("gate_proj", Linear(C, I, /*bias=*/false));
  up_proj = register_module("up_proj", Linear(C, I, /*bias=*/false));
  down_proj = register_module("down_proj", Linear(I, C, /*bias=*/false));
}

bool Qwen2MLPImpl::is_fused() const {
  return rows_of(gate_up_weight_, {gate_proj->weight, up_proj->weight});
}

bool Qwen2MLPImpl::fuse_projections() {
  if (is_fused()) return false;
  gate_up_weight_ = fuse_rows({gate_proj->weight, up_proj->weight});
  return true;
}

bool Qwen2MLPImpl::uses_fused() const {
  // Under autograd the projections train through stacked_rows (or separately).
  return !at::GradMode::is_enabled() && is_fused();
}

bool Qwen2MLPImpl::uses_stacked() const {
  return at::GradMode::is_enabled() && stacked_training_enabled() && is_fused();
}

at::Tensor Qwen2MLPImpl::forward(const at::Tensor& x) {
  if (uses_fused()) {
    return down_proj(fused::linear_silu_mul(x, gate_up_weight_));  // [B, T, C]
  }
  if (uses_stacked()) {  // training: one GEMM whose gradient reaches gate_proj and up_proj
    const at::Tensor w = stacked_rows(gate_up_weight_, {gate_proj->weight, up_proj->weight});
    return down_proj(fused::silu_mul(apply_linear(x, w)));  // [B, T, 2I] -> [B, T, C]
  }
  const at::Tensor gate = at::silu(gate_proj(x));  // [B, T, I]
  const at::Tensor up = up_proj(x);                // [B, T, I]
  return down_proj(gate * up);                     // [B, T, C]
}

}  // namespace c3::model
