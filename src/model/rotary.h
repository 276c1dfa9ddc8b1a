// Rotary position embeddings (RoPE), half-split "rotate_half" convention, tables kept in fp32.
#pragma once
#include <ATen/ATen.h>

namespace c3::model {

// cos/sin for a batch of positions: [B, T, D] fp32 (the two halves repeat the D/2 frequencies).
struct RopeTables {
  at::Tensor cos, sin;
};

class RotaryEmbedding {
 public:
  // inv_freq = 1 / theta^(arange(0, D, 2) / D), computed in fp32 on the CPU exactly as HF does.
  RotaryEmbedding(int64_t head_dim, double theta);
  // position_ids [B, T] long -> tables on the same device, fp32.
  RopeTables tables(const at::Tensor& position_ids) const;
  const at::Tensor& inv_freq() const { return inv_freq_; }

 private:
  at::Tensor inv_freq_;              // [D/2] fp32, CPU; not a module buffer (not a checkpoint key)
  mutable at::Tensor inv_freq_dev_;  // a copy on the last device used
};

// x [B, H, T, D] -> x * cos + rotate_half(x) * sin, with cos/sin cast to x's dtype (as HF).
at::Tensor apply_rotary(const at::Tensor& x, const RopeTables& rope);

}  // namespace c3::model
