// Qwen2ForCausalLM in LibTorch: module names equal the HF checkpoint keys.
//
// Shapes: B batch, T new tokens, S cached + new tokens, H query heads, Hkv key/value heads,
// D head dim, C hidden size, V vocabulary.
#pragma once
#include <torch/nn.h>

#include <memory>
#include <string>

#include "io/safetensors.h"
#include "model/kv_cache.h"
#include "model/linear.h"
#include "model/qwen2_config.h"

namespace c3::model {

// What one forward pass needs besides the embeddings.
struct ForwardInputs {
  at::Tensor position_ids;    // [B, T] long; empty = cache.len + arange(T) (or arange(T))
  at::Tensor attention_mask;  // [B, T] bool/long, 1 = real token, 0 = padding; empty = all real
  KVCache* cache = nullptr;   // when set, new keys/values are appended at cache->len
  // [B, T, T] bool, true = token t may see key s: replaces the causal mask (no cache, no
  // attention_mask). For encoders with a block layout (c3/query_layout.h).
  at::Tensor attend =
      {};  // "= {}": callers that brace-initialise the first fields need not name it
};

class RMSNormImpl;
class Qwen2DecoderLayerImpl;
class RotaryEmbedding;

// The decoder stack: embed_tokens, layers.{i}, norm (HF prefix "model.").
class Qwen2ModelImpl : public torch::nn::Module {
 public:
  explicit Qwen2ModelImpl(const Qwen2Config& cfg);
  // [B, T, C] embeddings -> [B, T, C] hidden states after the final RMSNorm.
  at::Tensor forward(const at::Tensor& inputs_embeds, const ForwardInputs& in);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  std::shared_ptr<RMSNormImpl> norm;
  std::shared_ptr<RotaryEmbedding> rotary;  // fp32 RoPE tables; not a module, not a checkpoint key
  Qwen2Config config;
  bool activation_checkpointing = false;  // recompute each layer in backward (training)
};
TORCH_MODULE(Qwen2Model);

struct DecodeSession;  // generate.cpp: a static KV cache and its CUDA graphs

class Qwen2ForCausalLMImpl : public torch::nn::Module {
 public:
  explicit Qwen2ForCausalLMImpl(const Qwen2Config& cfg);
  at::Tensor embed(const at::Tensor& ids);                                  // [B,T] -> [B,T,C]
  at::Tensor hidden(const at::Tensor& inputs_embeds, const ForwardInputs& in);  // final-normed
  at::Tensor logits(const at::Tensor& hidden);  // [..., C] -> [..., V] (fp32 out)
  const at::Tensor& output_weight() const;       // [V, C]: lm_head's, or the tied embedding
  at::Tensor forward(const at::Tensor& ids, const ForwardInputs& in = {});  // ids -> logits
  const Qwen2Config& config() const { return config_; }
  // Inference speed-up: every layer's q/k/v and gate/up projections run as one GEMM each when
  // autograd is off (Qwen2AttentionImpl/Qwen2MLPImpl::fuse_projections; parameters, checkpoint
  // keys and training are unchanged). Idempotent; call again after a to() to another device or
  // dtype. Returns whether any layer (re)allocated.
  bool fuse_projections();
  Qwen2Model model{nullptr};
  Linear lm_head{nullptr};  // nullptr when tie_word_embeddings
  // Kept between static-cache generate() calls of the same batch size, so that each CUDA graph
  // is captured once, not once per call (it holds the cache's memory; reset() frees it).
  std::shared_ptr<DecodeSession> decode_session;

 private:
  Qwen2Config config_;
};
TORCH_MODULE(Qwen2ForCausalLM);

// Loads every named parameter of `module` from `ckpt` (key = parameter name), converting to the
// parameter's dtype. Every key must be present exactly once with the right shape; checkpoint keys
// the module lacks are errors too. Errors list missing and unexpected keys and the shape
// mismatches (expected vs got), naming the checkpoint folder.
void load_parameters(torch::nn::Module& module, const io::Checkpoint& ckpt);

// Saves every named parameter (as `dtype`, e.g. BFloat16 or Float) into the safetensors file
// `path` (e.g. dir/model.safetensors), atomically, with metadata format=pt as transformers expects.
void save_parameters(const torch::nn::Module& module, const std::string& path,
                     at::ScalarType dtype, const std::map<std::string, std::string>& metadata = {});

// Reads config.json + weights from an HF folder into a model on `device` with `dtype`.
Qwen2ForCausalLM load_qwen2(const std::string& dir, at::ScalarType dtype, at::Device device);

// Writes config.json + model.safetensors (+ generation_config.json) in the HF layout.
void save_qwen2(Qwen2ForCausalLM& m, const std::string& dir, at::ScalarType dtype);

// Random init as HF does (normal(0, 0.02), zero biases, unit norms), deterministic under the
// current torch seed.
void init_weights(torch::nn::Module& m, double std = 0.02);

}  // namespace c3::model
