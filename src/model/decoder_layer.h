// One Qwen2 decoder layer: norm -> attention -> residual -> norm -> SwiGLU -> residual.
#pragma once
#include <torch/nn.h>

#include <utility>

#include "model/attention.h"
#include "model/mlp.h"
#include "model/rms_norm.h"

namespace c3::model {

class Qwen2DecoderLayerImpl : public torch::nn::Module {
 public:
  Qwen2DecoderLayerImpl(const Qwen2Config& cfg, int64_t layer_idx);
  // [B, T, C] -> [B, T, C]
  at::Tensor forward(const at::Tensor& x, const RopeTables& rope, const AttentionMask& mask,
                     KVCache* cache);
  // The same layer with its last residual add left to the caller: the input is resid + delta
  // (delta may be undefined), the output {resid', delta'} sums to forward(resid + delta). The
  // stack passes delta on, so each residual add runs inside the next RMSNorm (fused::add_rms_norm).
  std::pair<at::Tensor, at::Tensor> forward_deferred(const at::Tensor& resid,
                                                     const at::Tensor& delta,
                                                     const RopeTables& rope,
                                                     const AttentionMask& mask, KVCache* cache);
  Qwen2Attention self_attn{nullptr};
  Qwen2MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(Qwen2DecoderLayer);

}  // namespace c3::model
