// Rotary position embeddings (RoPE), half-split "rotate_half" convention, tables kept in fp32.
#include "model/rotary.h"

#include "model/fused_ops.h"

namespace c3::model {

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, double theta) {
  // HF: 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)), all in fp32.
  const at::Tensor exponent = at::arange(0, head_dim, 2, at::kLong).to(at::kFloat) / head_dim;
  inv_freq_ = at::pow(theta, exponent).reciprocal();
}

RopeTables RotaryEmbedding::tables(const at::Tensor& position_ids) const {
  if (!inv_freq_dev_.defined() || inv_freq_dev_.device() != position_ids.device()) {
    inv_freq_dev_ = inv_freq_.to(position_ids.device());
  }
  // An outer product in fp32: HF's [D/2, 1] @ [1, T] matmul has one term per entry, so it is exact.
  const at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq_dev_;  // [B, T, D/2]
  const at::Tensor emb = at::cat({freqs, freqs}, -1);                                   // [B, T, D]
  return {emb.cos(), emb.sin()};
}

at::Tensor apply_rotary(const at::Tensor& x, const RopeTables& rope) {
  return fused::rotary(x, rope.cos, rope.sin);
}

}  // namespace c3::model
