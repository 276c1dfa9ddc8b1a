// C3Config: the official C3 config.json (a Qwen2 decoder config plus the cascade's keys) and the
// encoder's llm1/config.json.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "model/qwen2_config.h"

namespace c3::cascade {

struct C3Config {
  model::Qwen2Config decoder;  // <dir>/config.json
  model::Qwen2Config encoder;  // <dir>/llm1/config.json
  int64_t latent_token_len = 0;                       // L
  int64_t contexts_compression_llm_hidden_size = 0;   // encoder hidden size
  int64_t im_start_token = -1, im_end_token = -1, im_patch_token = -1;  // <img>, </img>, <imgpad>
  bool use_im_start_end = true;
  int64_t max_passage_tokens = 1280;  // c3's own key: longest passage one chunk holds

  // Reads both configs; errors name the key and the file. Checks that the encoder hidden size
  // agrees with contexts_compression_llm_hidden_size.
  static C3Config from_dir(const std::string& dir);
  nlohmann::json decoder_json() const;  // Qwen2 keys + model_type "C3" + the cascade's keys
};

}  // namespace c3::cascade
