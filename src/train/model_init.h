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
  std::string tokenizer;       // tokenizer.json or qwen.tiktoken (needed unless from_c3)
  int64_t latents = 32;        // L
  // c3_max_passage_tokens; 0 = the --init checkpoint's, or 1280 from scratch.
  int64_t max_passage_tokens = 0;
  // c3_query_positions / _mask / _pooling (c3/query_layout.h); empty = the --init checkpoint's, or
  // the official layout from scratch. Set with --init: train an existing model into the layout.
  std::string query_positions, query_mask, query_pooling;
  uint64_t seed = 0;
};

// Where the model's tokenizer comes from, to be written into every checkpoint.
struct TokenizerSource {
  std::string path;        // tokenizer.json, qwen.tiktoken or a c3 checkpoint folder
  std::string grown_json;  // set when C3's tokens were added: the tokenizer.json to write instead
  std::string grown_config;  // ... and the tokenizer_config.json beside it, when it had one
};

// Returns the model (fp32, CPU) and its tokenizer's source. A tokenizer lacking <img>, </img>,
// <imgpad> gets them as special tokens after its last id (hf_init.h), and embeddings from HF
// folders grow to cover them; both are said on stderr.
cascade::C3Model build_model(const ModelInit& init, TokenizerSource* tokenizer);

// Writes the run's tokenizer into `out_dir` (once per run: the source may be a checkpoint that
// is pruned later) and returns the path to hand to save_c3 for each checkpoint.
std::string write_run_tokenizer(const TokenizerSource& src, const std::string& out_dir);

// Parameter counts: all, and without embeddings / lm_head (for FLOP estimates).
int64_t count_parameters(torch::nn::Module& m);

}  // namespace c3::train
