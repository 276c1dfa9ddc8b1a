// One Qwen2 decoder layer: norm -> attention -> residual -> norm -> SwiGLU -> residual.
#include "model/decoder_layer.h"

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
  const at::Tensor attn_norm = input_layernorm(x);
  const at::Tensor attn_out = self_attn(attn_norm, rope, mask, cache);
  const at::Tensor attn_resid = x + attn_out;
  const at::Tensor ffn_norm = post_attention_layernorm(attn_resid);
  const at::Tensor ffn_out = mlp(ffn_norm);
  return attn_resid + ffn_out;
}

}  // namespace c3::model
