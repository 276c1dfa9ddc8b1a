// Qwen2ForCausalLM in LibTorch: embed, decoder layers, final norm, lm_head (reads like the figure).
//
// Shapes: B batch, T new tokens, S cached + new tokens, C hidden size, V vocabulary.
#include "model/qwen2_model.h"

#include <cstdlib>
#include <string>
#include <tuple>

#include "model/activation_checkpoint.h"
#include "model/decoder_layer.h"
#include "model/fused_ops.h"
#include "model/rms_norm.h"
#include "model/rotary.h"
#include "util/error.h"

namespace c3::model {

Qwen2ModelImpl::Qwen2ModelImpl(const Qwen2Config& cfg) : config(cfg) {
  embed_tokens = register_module("embed_tokens",
                                 torch::nn::Embedding(cfg.vocab_size, cfg.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) layers->push_back(Qwen2DecoderLayer(cfg, i));
  norm = register_module("norm", std::make_shared<RMSNormImpl>(cfg.hidden_size, cfg.rms_norm_eps));
  rotary = std::make_shared<RotaryEmbedding>(cfg.head_dim(), cfg.rope_theta);
}

at::Tensor Qwen2ModelImpl::forward(const at::Tensor& inputs_embeds, const ForwardInputs& in) {
  TORCH_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(2) == config.hidden_size,
              "Qwen2Model: expected inputs_embeds [B, T, ", config.hidden_size, "], got ",
              inputs_embeds.sizes());
  const int64_t B = inputs_embeds.size(0), T = inputs_embeds.size(1);
  const at::Device device = inputs_embeds.device();
  KVCache* cache = in.cache;
  const int64_t offset = cache ? cache->len : 0;
  if (in.attention_mask.defined()) {
    TORCH_CHECK(in.attention_mask.sizes() == at::IntArrayRef({B, T}),
                "Qwen2Model: attention_mask must be [B, T] = [", B, ", ", T, "], got ",
                in.attention_mask.sizes());
  }

  // Which keys are real: this step's mask, appended to the cache's when there is one.
  AttentionMask mask;
  if (in.attend.defined()) {
    TORCH_CHECK(
        !cache && !in.attention_mask.defined() && in.attend.sizes() == at::IntArrayRef({B, T, T}),
        "Qwen2Model: attend must be [B, T, T] = [", B, ", ", T, ", ", T,
        "] without a cache or attention_mask, got ", in.attend.sizes());
    mask = {in.attend.to(device, at::kBool).unsqueeze(1), false};  // [B, 1, T, T]
  } else if (cache && cache->static_mode) {
    // Static decode step (graph-safe: no host reads of device values, fixed shapes).
    TORCH_CHECK(T == 1 && !in.attention_mask.defined() && in.position_ids.defined(),
                "Qwen2Model: a static-cache step takes one token per row and explicit "
                "position_ids");
    const int64_t start = cache->attend_start, S = cache->attend_len - start;
    TORCH_CHECK(cache->batch() == B && start >= 0 && S > 0 &&
                    cache->attend_len <= cache->max_len(),
                "Qwen2Model: static cache of ", cache->batch(), " rows, window [", start, ", ",
                cache->attend_len, "); input has ", B, " rows");
    cache->key_valid.index_fill_(1, cache->slot, true);
    const at::Tensor allowed = cache->key_valid.narrow(1, start, S) &
                               cache->slot_index.narrow(0, start, S).le(cache->slot);  // [B, S]
    mask = {allowed.view({B, 1, 1, S}), false};
  } else {
    at::Tensor key_valid;
    const at::Tensor step_valid = in.attention_mask.defined()
                                      ? in.attention_mask.to(device, at::kBool)
                                      : at::Tensor();
    if (cache) {
      C3_CHECK(cache->batch() == B, "KVCache holds {} rows but the input has {}", cache->batch(), B);
      C3_CHECK(offset + T <= cache->max_len(),
               "KVCache overflow: {} cached + {} new tokens exceed its {} slots", offset, T,
               cache->max_len());
      TORCH_CHECK(cache->k[0].scalar_type() == inputs_embeds.scalar_type(),
                  "KVCache dtype ", cache->k[0].scalar_type(), " != activation dtype ",
                  inputs_embeds.scalar_type());
      at::Tensor slots = cache->key_valid.slice(1, offset, offset + T);  // [B, T]
      if (step_valid.defined()) {
        slots.copy_(step_valid);
      } else {
        slots.fill_(true);
      }
      key_valid = cache->key_valid.slice(1, 0, offset + T);  // [B, S]
    } else {
      key_valid = step_valid;
    }
    mask = build_attention_mask(key_valid, offset, T, device);
  }

  at::Tensor position_ids = in.position_ids;
  if (position_ids.defined()) {
    TORCH_CHECK(position_ids.sizes() == at::IntArrayRef({B, T}),
                "Qwen2Model: position_ids must be [B, T] = [", B, ", ", T, "], got ",
                position_ids.sizes());
    position_ids = position_ids.to(device, at::kLong);
  } else {
    position_ids = at::arange(offset, offset + T, at::TensorOptions(at::kLong).device(device))
                       .unsqueeze(0)
                       .expand({B, T});  // [B, T]
  }
  const RopeTables rope = rotary->tables(position_ids);  // [B, T, D] fp32

  // Activations are recomputed in backward only when training (grad on, no cache).
  const bool recompute = activation_checkpointing && at::GradMode::is_enabled() && !cache;
  // The residual stream is carried as resid + delta: each layer's last add runs inside the next
  // layer's first RMSNorm (one kernel on CUDA), and the last one inside the final norm.
  at::Tensor resid = inputs_embeds, delta;  // [B, T, C]
  for (size_t i = 0; i < layers->size(); ++i) {
    auto layer = layers->ptr<Qwen2DecoderLayerImpl>(i);
    if (recompute) {
      // The pair passes through the checkpoint, so recomputed layers run the plain kernels.
      auto run = [layer, rope, mask](const std::vector<at::Tensor>& in) {
        const auto [r, d] = layer->forward_deferred(in[0], in.size() > 1 ? in[1] : at::Tensor(),
                                                    rope, mask, nullptr);
        return std::vector<at::Tensor>{r, d};
      };
      std::vector<at::Tensor> in{resid};
      if (delta.defined()) in.push_back(delta);
      const std::vector<at::Tensor> out = checkpoint(run, in, layer->parameters());
      resid = out[0];
      delta = out[1];
    } else {
      std::tie(resid, delta) = layer->forward_deferred(resid, delta, rope, mask, cache);
    }
  }
  if (cache && !cache->static_mode) cache->len += T;
  return fused::add_rms_norm(resid, delta, norm->weight, norm->eps).second;  // [B, T, C]
}

Qwen2ForCausalLMImpl::Qwen2ForCausalLMImpl(const Qwen2Config& cfg) : config_(cfg) {
  model = register_module("model", Qwen2Model(cfg));
  if (!cfg.tie_word_embeddings) {
    lm_head = register_module(
        "lm_head",
        Linear(cfg.hidden_size, cfg.vocab_size, /*bias=*/false));
  }
}

bool Qwen2ForCausalLMImpl::fuse_projections() {
  // C3_FUSE_PROJECTIONS=0 keeps the separate projections (to measure what fusing gains).
  if (const char* v = std::getenv("C3_FUSE_PROJECTIONS"); v && std::string(v) == "0") return false;
  bool changed = false;
  for (size_t i = 0; i < model->layers->size(); ++i) {
    auto layer = model->layers->ptr<Qwen2DecoderLayerImpl>(i);
    changed |= layer->self_attn->fuse_projections();
    changed |= layer->mlp->fuse_projections();
  }
  // Captured decode graphs read the old weights' addresses.
  if (changed) decode_session.reset();
  return changed;
}

at::Tensor Qwen2ForCausalLMImpl::embed(const at::Tensor& ids) {
  return model->embed_tokens(ids);  // [B, T, C]
}

at::Tensor Qwen2ForCausalLMImpl::hidden(const at::Tensor& inputs_embeds, const ForwardInputs& in) {
  return model->forward(inputs_embeds, in);
}

const at::Tensor& Qwen2ForCausalLMImpl::output_weight() const {
  // Tied: the embedding matrix [V, C] is the output projection too.
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

at::Tensor Qwen2ForCausalLMImpl::logits(const at::Tensor& hidden) {
  const at::Tensor out = lm_head ? lm_head(hidden) : apply_linear(hidden, model->embed_tokens->weight);
  return out.to(at::kFloat);  // [..., V]
}

at::Tensor Qwen2ForCausalLMImpl::forward(const at::Tensor& ids, const ForwardInputs& in) {
  return logits(hidden(embed(ids), in));
}

}  // namespace c3::model
