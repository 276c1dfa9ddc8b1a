// Qwen2Config: the fields of an HF Qwen2 config.json, under their HF key names.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/hf_config.h"

namespace c3::model {

struct Qwen2Config {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;   // defaults to num_attention_heads when absent
  int64_t max_position_embeddings = 32768;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;        // legacy top-level key, or rope_parameters.rope_theta
  bool tie_word_embeddings = false;
  std::string torch_dtype = "float32";  // legacy "torch_dtype" or current "dtype"
  std::vector<int64_t> eos_token_id;  // from config.json (int, list or null)

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t n_params() const;  // parameter count, embeddings included

  // Required: vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
  // rms_norm_eps, and rope_theta in either form. Unknown keys are ignored. Errors name key + file.
  static Qwen2Config from_json(const io::JsonFile& f);
  static Qwen2Config from_file(const std::string& path);
  // Writes the current HF form (model_type qwen2, rope_parameters, dtype) plus the legacy
  // rope_theta/torch_dtype keys so that older transformers read it too.
  nlohmann::json to_json() const;
};

// Stop tokens from generation_config.json (eos_token_id: int or list), falling back to
// config.json's; empty when neither names one.
std::vector<int64_t> read_stop_tokens(const std::string& model_dir, const Qwen2Config& cfg);

}  // namespace c3::model
