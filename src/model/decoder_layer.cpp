// One Qwen2 decoder layer: norm -> attention -> residual -> norm -> SwiGLU -> residual.
#include "model/decoder_layer.h"

#include "model/fused_ops.h"

namespace c3::model {

Qwen2DecoderLayerImpl::Qwen2DecoderLayerImpl(const Qwen2Config& cfg, int64_t layer_idx) {
  self_attn = register_module("self_attn", Qwen2Attention(cfg, layer_idx));
  mlp = register_module("mlp", Qwen2MLP(cfg));
  input_layernorm = register_module("input_layernorm",
                                    RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm",
                                             RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
}

at::Tensor Qwen2DecoderLayerImpl::forward(const at::Tensor& x, const RopeTables& rope,
                                          const AttentionMask& mask, KVCache* cache) {
  const auto [attn_resid, ffn_out] = forward_deferred(x, at::Tensor(), rope, mask, cache);
  return attn_resid + ffn_out;
}

std::pair<at::Tensor, at::Tensor> Qwen2DecoderLayerImpl::forward_deferred(
    const at::Tensor& resid, const at::Tensor& delta, const RopeTables& rope,
    const AttentionMask& mask, KVCache* cache) {
  // HF's order and roundings: x = resid + delta; attn_resid = x + attn(norm(x));
  // out = attn_resid + mlp(norm(attn_resid)), the last add deferred.
  // Both norms feed only the projections after them (see add_rms_norm_before_linear).
  const auto [x, attn_norm] =
      fused::add_rms_norm_before_linear(resid, delta, input_layernorm->weight, input_layernorm->eps);
  const at::Tensor attn_out = self_attn(attn_norm, rope, mask, cache);
  const auto [attn_resid, ffn_norm] = fused::add_rms_norm_before_linear(
      x, attn_out, post_attention_layernorm->weight, post_attention_layernorm->eps);
  return {attn_resid, mlp(ffn_norm)};
}

}  // namespace c3::model
