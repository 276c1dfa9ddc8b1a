// Validation during training: held-out passages cut deterministically from the valid files, and
// on them the reconstruction loss, the token accuracy and the char precision of greedy decoding
// (under --objective lm: the halves' next-token loss and the decoder's token accuracy).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "c3/c3_model.h"
#include "train/passage_sampler.h"
#include "train/trainer.h"

namespace c3::train {

class Validation {
 public:
  // Reads up to opt.eval_passages passages from opt.valid_files, their target lengths spread
  // evenly over `dist`. None when there are no valid files.
  Validation(const tokenizer::BpeTokenizer& tok, const TrainOptions& opt, const LengthDist& dist);
  bool empty() const { return passages_.empty(); }

  // The {"event": "valid", ...} record at `step`, passages cut to `cur_len` tokens. Leaves the
  // model in train mode.
  nlohmann::json run(cascade::C3Model& model, int64_t step, int64_t cur_len, bool bf16) const;

 private:
  nlohmann::json run_lm(cascade::C3Model& model, int64_t cur_len) const;

  const TrainOptions& opt_;
  std::vector<Passage> passages_;
};

// The first n ids (all when there are fewer).
std::vector<int32_t> truncated(const std::vector<int32_t>& ids, int64_t n);

}  // namespace c3::train
