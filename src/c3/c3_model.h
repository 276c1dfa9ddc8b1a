// C3Model: encoder LLM + learnable queries Q + projector + decoder LLM, read like the method:
//   1. run the encoder over the context plus L query slots,
//   2. gather the final-normed hidden states at the slots      [B, L, C_enc],
//   3. project them                                            [B, L, C_dec],
//   4. splice them into the decoder prompt's embeddings,
//   5. decode.
#pragma once
#include <torch/nn.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "c3/batch_inputs.h"
#include "c3/c3_config.h"
#include "model/decode_batch.h"
#include "model/qwen2_model.h"
#include "tokenizer/bpe_tokenizer.h"

namespace c3::cascade {

// The official decoder prompt ("mpt" template); {slots} is <img><imgpad>*L</img>.
std::string decoder_prompt_text(int64_t latent_token_len);
// The official encoder input: context + <img> + <imgpad>*L + </img>.
std::string encoder_input_text(const std::string& context, int64_t latent_token_len);

struct DecompressOptions {
  int64_t max_new_tokens = 4096;
  int64_t no_repeat_ngram_size = 20;
  bool stop_at_im_end = true;
  // The source length of each row in tokens, when known (a .c3 file records it per chunk). A
  // row then stops after ceil(length_cap * n) + 16 tokens: a model that has not emitted
  // <|im_end|> by then is repeating itself, and on the CPU those tokens cost seconds.
  std::vector<int64_t> source_tokens;
  double length_cap = 1.5;  // 0 = off
  // With each row's source length known: the row decodes exactly that many tokens, <|im_end|>
  // banned before (it would stop the row early) and no step after (which could only run on
  // past the source). The lengths are side information a .c3 file holds anyway.
  bool exact_length = false;
  int64_t num_beams = 1;    // > 1: beam search (model/beam_search.h) instead of greedy
  std::function<void(int64_t)> on_step;  // called after each decode step (rows still running)
};

// The most tokens one chunk may generate: opt.max_new_tokens, and with its source length known
// (source_tokens >= 0) and opt.length_cap > 0, at most ceil(length_cap * source_tokens) + 16.
int64_t chunk_token_budget(const DecompressOptions& opt, int64_t source_tokens);

// Teacher-forced reconstruction: cross-entropy over the target tokens (passage + <|im_end|>).
// Input noise replaces each passage token the decoder reads (never a target) by a random one
// with probability `rate`: the model then learns to stay on course after a wrong token, as it
// must when it reads its own output in free-running generation. `key` seeds the draws.
// Self-feed replaces a share `self_feed` of them by the decoder's own teacher-forced prediction
// of that token (argmax of a no-grad pass over the same latents): the slips it will really make,
// not random ones (scheduled sampling in one parallel pass). A token is replaced by one or the
// other, never both: rate + self_feed <= 1.
struct InputNoise {
  double rate = 0.0;
  uint64_t key = 0;
  double self_feed = 0.0;
};
struct LossOutput {
  at::Tensor loss;       // scalar, mean over target tokens
  at::Tensor n_tokens;   // scalar long
  at::Tensor n_correct;  // scalar long: argmax == target (token accuracy)
};
struct LossSums {
  at::Tensor loss_sum;   // fp32 scalar on the device: the sum over the real target tokens
  at::Tensor n_correct;  // long scalar on the device
};

class C3ModelImpl : public torch::nn::Module {
 public:
  C3ModelImpl(const C3Config& cfg, std::shared_ptr<const tokenizer::BpeTokenizer> tok);

  // Encoder input ids for one passage: context ids, <img>, <imgpad> x L, </img>.
  std::vector<int64_t> encoder_input_ids(const std::vector<int32_t>& context_ids) const;
  const std::vector<int64_t>& prompt_ids() const { return prompt_ids_; }
  int64_t im_end_id() const { return im_end_id_; }
  int64_t pad_id() const { return pad_id_; }  // pads right-padded rows (<|endoftext|> or 0)
  int64_t latent_len() const { return config.latent_token_len; }
  const tokenizer::BpeTokenizer& tok() const { return *tok_; }
  at::Device device() const;

  // Steps 1-2 for a batch of passages (token ids; rows may differ in length; right-padded, so
  // attention stays purely causal): [B, L, C_enc]. The query slots' positions, mask and pooling
  // follow config.query_positions / _mask / _pooling (query_layout.h; official by default).
  at::Tensor encode_queries(const std::vector<std::vector<int32_t>>& contexts);
  // The same from inputs already on the model's device (batch_inputs.h).
  at::Tensor encode_queries(const EncoderInputs& on_device);
  // Steps 1-3: [B, L, C_dec] latents (in the model's dtype).
  at::Tensor compress(const std::vector<std::vector<int32_t>>& contexts);
  at::Tensor compress(const EncoderInputs& on_device);
  // Step 4: decoder prompt embeddings with the latents in the <imgpad> slots: [B, P, C_dec].
  at::Tensor prompt_embeds(const at::Tensor& latents);
  // Step 5: greedy decoding from latents [B, L, C_dec]; each row stops on its own.
  std::vector<std::vector<int64_t>> decompress(const at::Tensor& latents,
                                               const DecompressOptions& opt = {});
  // Step 5 as rows for continuous batching (model::DecodeBatch), greedy: one per latent row,
  // with opt's n-gram ban, stop token and per-row budget (chunk_token_budget of
  // opt.source_tokens[b] when given). Each row then gets the ids decompress() gives it.
  std::vector<model::DecodeRow> decode_rows(const at::Tensor& latents,
                                            const DecompressOptions& opt = {});
  // Decoder logits over the prompt only, [B, P, V] (golden check).
  at::Tensor prompt_logits(const at::Tensor& latents);
  // Training objective; `lm_targets` optional plain-LM auxiliary loss is computed by the trainer.
  LossOutput reconstruction_loss(const std::vector<std::vector<int32_t>>& contexts,
                                 const InputNoise& noise = {});
  // The same objective as sums, from inputs already on the device (train_inputs()): no host
  // reads or syncs, fixed shapes for fixed input shapes, so a CUDA graph can capture it.
  LossSums train_loss(const TrainInputs& on_device);
  // Fuses the encoder's and the decoder's q/k/v and gate/up projections for inference
  // (Qwen2ForCausalLMImpl::fuse_projections). Call again after a to() to another device/dtype.
  void fuse_projections();

  C3Config config;
  model::Qwen2ForCausalLM encoder{nullptr};
  model::Qwen2ForCausalLM decoder{nullptr};
  torch::nn::Embedding Q{nullptr};          // decoder key model.Q.weight [L, C_enc]
  model::Linear mm_projector{nullptr};  // decoder keys model.mm_projector.{weight,bias}

 private:
  std::vector<std::vector<int64_t>> decompress_exact(const std::vector<model::Prompt>& prompts,
                                                     model::GenerationConfig g,
                                                     const DecompressOptions& opt);

  std::shared_ptr<const tokenizer::BpeTokenizer> tok_;
  std::vector<int64_t> prompt_ids_;
  std::vector<int64_t> prompt_slots_;  // positions of the L <imgpad> in prompt_ids_
  at::Tensor prompt_dev_, slots_dev_;  // the two above on the model's device
  int64_t im_end_id_ = -1, pad_id_ = 0;
};
TORCH_MODULE(C3Model);

// A loaded checkpoint: the model, its tokenizer and its fingerprint.
struct LoadedC3 {
  C3Model model{nullptr};
  std::shared_ptr<const tokenizer::BpeTokenizer> tok;
  std::string fingerprint;  // XXH3-128 over both configs and every weight byte
  std::string dir;
};

// Loads the official layout (root config.json + weights, llm1/, and tokenizer.json or
// qwen.tiktoken + tokenizer_config.json as tokenizer::load_tokenizer picks; single or sharded
// safetensors; both config styles).
LoadedC3 load_c3(const std::string& dir, at::ScalarType dtype, at::Device device);
// Fingerprint of a checkpoint folder without building the model.
std::string fingerprint_c3(const std::string& dir);
// Writes the official layout into `dir` (created; files written atomically). `tokenizer` is a
// tokenizer file or a model folder: its tokenizer files (tokenizer::find_tokenizer) are copied.
void save_c3(C3Model& m, const std::string& tokenizer, const std::string& dir,
             at::ScalarType dtype);

}  // namespace c3::cascade
