// The auxiliary objective (--aux-lm-weight): a plain next-token loss of the decoder on the
// passages themselves, without latents.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "c3/c3_model.h"

namespace c3::train {

// Summed over every target token of `ids` (the caller weights it per token); 0 when no passage
// has two tokens.
at::Tensor decoder_lm_loss_sum(cascade::C3Model& m, const std::vector<std::vector<int32_t>>& ids);

}  // namespace c3::train
