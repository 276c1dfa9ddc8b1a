// Plain next-token losses of the cascade's halves on the passages themselves, without latents:
// the auxiliary objective (--aux-lm-weight, the decoder's) and the language-model objective
// (--objective lm, both halves').
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "c3/c3_model.h"
#include "model/qwen2_model.h"

namespace c3::train {

struct LmSums {
  at::Tensor loss_sum;   // summed over every target token (the caller weights it per token)
  at::Tensor n_correct;  // targets whose argmax prediction is right (long)
};

// One half as a language model over `ids`: each passage's token t predicts token t + 1. Zeros
// when no passage has two tokens.
LmSums lm_loss_sums(model::Qwen2ForCausalLM& half, const std::vector<std::vector<int32_t>>& ids);

// The decoder's summed next-token loss (--aux-lm-weight).
at::Tensor decoder_lm_loss_sum(cascade::C3Model& m, const std::vector<std::vector<int32_t>>& ids);

}  // namespace c3::train
