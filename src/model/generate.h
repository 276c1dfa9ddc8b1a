// Generation: prefill, decode step, sample, stop check (the ExecuTorch runner's split).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "model/qwen2_model.h"

namespace c3::model {

struct GenerationConfig {
  int64_t max_new_tokens = 64;
  int64_t no_repeat_ngram_size = 0;  // HF semantics: n-grams over prompt + generated ids; 0 = off
  std::vector<int64_t> stop_tokens;  // a row stops after emitting one (it is not returned)
  std::vector<int64_t> banned_tokens;  // never emitted (their logits are -inf at every step)
  double temperature = 0.0;          // 0 = greedy
  int64_t top_k = 0;                 // 0 = off
  double top_p = 1.0;                // 1 = off
  uint64_t seed = 0;
  // Beam search (beam_search.h) when > 1: greedy only, the dynamic cache only.
  int64_t num_beams = 1;
  double length_penalty = 1.0;  // a finished beam's score is sum log p / length^length_penalty
  // Fixed-shape decode steps over a static cache: every row stays in the batch until all stop
  // (finished rows' tokens are discarded), and each step attends over a window of the cache
  // rounded up to 256 slots, masked. On CUDA the step is then captured once per window size as a
  // CUDA graph and replayed (cuda_graphs). Same ids as the dynamic path; on the CPU it only adds
  // work, so it is off by default there (auto_static_cache picks: on for CUDA).
  bool auto_static_cache = true;
  bool static_cache = false;  // used when auto_static_cache is false
  bool cuda_graphs = true;
};

// One prompt of the batch: token ids, or precomputed input embeddings [T, C] (the cascade splices
// latents into the embeddings). `ngram_ids` are the ids the n-gram ban sees for the prompt part
// (with embeddings it is the prompt ids, placeholders included, as HF does).
struct Prompt {
  std::vector<int64_t> ids;
  at::Tensor embeds;  // optional [T, C]; when set, ids must have T entries (for the n-gram ban)
};

// Generates for a batch of prompts of different lengths (left-padded), each row stopping on its
// own. Returns the new ids of each row, without the stop token. `on_token` (optional) is called
// after each decode step with the number of rows still running.
std::vector<std::vector<int64_t>> generate(Qwen2ForCausalLM& model, const std::vector<Prompt>& prompts,
                                           const GenerationConfig& cfg,
                                           const std::function<void(int64_t)>& on_step = {});

}  // namespace c3::model
