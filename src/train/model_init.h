// Building the cascade to train: from scratch (dims + tokenizer), from HF Qwen2 checkpoints, or
// from a c3 checkpoint.
#pragma once
#include <string>

#include "c3/c3_model.h"

namespace c3::train {

struct ModelInit {
  std::string from_c3;         // a c3 checkpoint folder (weights, configs, tokenizer)
  std::string encoder_config;  // Qwen2 config.json for the encoder (scratch) ...
  std::string decoder_config;  // ... and the decoder
  std::string encoder_hf;      // HF Qwen2 folder to initialise the encoder from (paper setting)
  std::string decoder_hf;      // ... and the decoder
  std::string tokenizer;       // tokenizer.json (needed unless from_c3)
  int64_t latents = 32;        // L
  int64_t max_passage_tokens = 1280;
  // c3_query_positions / _mask / _pooling (c3/query_layout.h); empty = the --init checkpoint's, or
  // the official layout from scratch. Set with --init: train an existing model into the layout.
  std::string query_positions, query_mask, query_pooling;
  uint64_t seed = 0;
};

// Returns the model (fp32, CPU) and the path of its tokenizer.json.
cascade::C3Model build_model(const ModelInit& init, std::string* tokenizer_path);

// Parameter counts: all, and without embeddings / lm_head (for FLOP estimates).
int64_t count_parameters(torch::nn::Module& m);

}  // namespace c3::train
