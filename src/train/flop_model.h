// Training FLOPs of a cascade per passage, for MFU: the dense matmuls of both models, the
// decoder's lm_head and causal attention, forward + backward (3x forward).
#pragma once
#include <cstdint>

#include "c3/c3_model.h"

namespace c3::train {

struct FlopModel {
  double enc_layer_params = 0, dec_layer_params = 0;
  int64_t enc_layers = 0, dec_layers = 0, enc_c = 0, dec_c = 0, vocab = 0, L = 0, P = 0;

  static FlopModel of(cascade::C3Model& m);
  double passage(int64_t T) const;  // one passage of T text tokens
  // One passage under the language-model objective: both halves over its T - 1 inputs, each
  // with its lm_head (the encoder's of the same vocabulary).
  double lm_passage(int64_t T) const;
};

}  // namespace c3::train
