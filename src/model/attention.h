// Qwen2 self-attention: q/k/v projections with bias, RoPE, grouped-query attention, o_proj.
//
// Shapes: B batch, T new tokens, S attended keys (cached + new), H query heads, Hkv key/value
// heads, D head dim, C hidden size.
#pragma once
#include <torch/nn.h>

#include "model/kv_cache.h"
#include "model/linear.h"
#include "model/qwen2_config.h"
#include "model/rotary.h"

namespace c3::model {

// Which keys each query may see; built once per forward pass and shared by every layer.
struct AttentionMask {
  at::Tensor allowed;   // [B, 1, T, S] bool, true = attend; undefined = no mask needed
  bool causal = false;  // with `allowed` undefined: plain causal attention over S == T keys
};

// Builds the mask for T new queries at slots [offset, offset + T) over S = offset + T keys.
// `key_valid` [B, S] bool marks real keys (undefined = all real). A query always sees its own
// slot, so that padding rows softmax over something and never produce NaN.
AttentionMask build_attention_mask(const at::Tensor& key_valid, int64_t offset, int64_t T,
                                   at::Device device);

class Qwen2AttentionImpl : public torch::nn::Module {
 public:
  Qwen2AttentionImpl(const Qwen2Config& cfg, int64_t layer_idx);
  // x [B, T, C] -> [B, T, C]. With a cache, this step's keys/values are written at cache->len and
  // the queries attend over slots [0, cache->len + T).
  at::Tensor forward(const at::Tensor& x, const RopeTables& rope, const AttentionMask& mask,
                     KVCache* cache);
  // Inference: stacks the q/k/v weights and biases into one tensor each (see fuse_rows), so
  // that a forward without autograd makes all three with one GEMM. Idempotent; returns whether
  // it (re)allocated. After a module.to() to another device or dtype, call it again.
  bool fuse_projections();
  bool is_fused() const;    // the parameters are still views into the fused tensors
  bool uses_fused() const;  // forward() takes the fused path now: fused, autograd not recording
  // forward() trains through the stacked q/k/v (stacked_rows.h): fused, autograd recording, on.
  bool uses_stacked() const;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t n_heads, n_kv_heads, head_dim, layer_idx;

 private:
  std::vector<at::Tensor> qkv_params(bool bias) const;
  at::Tensor qkv_weight_, qkv_bias_;  // [(H + 2 Hkv) D, C], [(H + 2 Hkv) D]; undefined unfused
};
TORCH_MODULE(Qwen2Attention);

}  // namespace c3::model
