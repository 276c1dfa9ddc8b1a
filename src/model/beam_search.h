// Beam search: HF transformers' `num_beams > 1` without sampling (length_penalty, and
// early_stopping = False: a prompt is done once it holds num_beams finished hypotheses and no
// running beam can still beat the worst of them).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/generate.h"

namespace c3::model {

// Called by generate() when cfg.num_beams > 1. Each prompt keeps num_beams rows in the batch
// (the prefill runs once per prompt, then the cache rows are repeated); a prompt leaves the
// batch when it is done. The n-gram ban applies per beam, to the beam's own ids. Returns each
// prompt's best hypothesis without the stop token. `on_step` gets the number of prompts still
// running.
std::vector<std::vector<int64_t>> beam_search(Qwen2ForCausalLM& model,
                                              const std::vector<Prompt>& prompts,
                                              const GenerationConfig& cfg,
                                              const std::function<void(int64_t)>& on_step);

// The finished hypotheses of one prompt: the num_beams best by normalised score.
class BeamHypotheses {
 public:
  BeamHypotheses(int64_t num_beams, double length_penalty)
      : num_beams_(num_beams), length_penalty_(length_penalty) {}
  // sum_logprobs over the generated ids (a stop token's included, though `ids` excludes it);
  // `length` counts them, the stop token too.
  void add(std::vector<int64_t> ids, double sum_logprobs, int64_t length);
  // HF's early_stopping = False test: full, and the best running beam (sum_logprobs at
  // `generated` tokens) cannot beat the worst kept hypothesis.
  bool done(double best_running_sum_logprobs, int64_t generated) const;
  bool empty() const { return hyps_.empty(); }
  const std::vector<int64_t>& best() const;  // the highest score (the earliest added on a tie)
  double score(double sum_logprobs, int64_t length) const;

 private:
  struct Hyp {
    double score;
    std::vector<int64_t> ids;
  };
  int64_t num_beams_;
  double length_penalty_;
  std::vector<Hyp> hyps_;  // at most num_beams
};

}  // namespace c3::model
