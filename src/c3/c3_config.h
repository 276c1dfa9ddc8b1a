// C3Config: the official C3 config.json (a Qwen2 decoder config plus the cascade's keys) and the
// encoder's llm1/config.json.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "model/qwen2_config.h"

namespace c3::cascade {

// Where the L query slots sit for RoPE (c3's own key c3_query_positions; see query_layout.h).
enum class QueryPositions {
  kAfterText,  // "after_text": N+1 ... N+L after the text and <img> (the official layout)
  kSegments,   // "segments": query j at the end of the j-th of L equal text segments (EPL)
};
// What each query slot may attend to in the encoder (c3's own key c3_query_mask).
enum class QueryMask {
  kCausal,   // "causal": everything before it (the official layout)
  kSegment,  // "segment": only its own text segment and itself (a block mask)
};
// What each latent is made of (c3's own key c3_query_pooling).
enum class QueryPooling {
  kNone,         // "none": the query slot's final hidden state (the official layout)
  kSegmentMean,  // "segment_mean": plus the mean of its text segment's final hidden states
};
const char* name_of(QueryPositions p);
const char* name_of(QueryMask m);
const char* name_of(QueryPooling p);
// From the names above; anything else is a c3::Error naming `where` (a key or a flag) and the
// accepted values.
QueryPositions parse_query_positions(const std::string& v, const std::string& where);
QueryMask parse_query_mask(const std::string& v, const std::string& where);
QueryPooling parse_query_pooling(const std::string& v, const std::string& where);

struct C3Config {
  model::Qwen2Config decoder;  // <dir>/config.json
  model::Qwen2Config encoder;  // <dir>/llm1/config.json
  int64_t latent_token_len = 0;                       // L
  int64_t contexts_compression_llm_hidden_size = 0;   // encoder hidden size
  int64_t im_start_token = -1, im_end_token = -1, im_patch_token = -1;  // <img>, </img>, <imgpad>
  bool use_im_start_end = true;
  int64_t max_passage_tokens = 1280;  // c3's own key: longest passage one chunk holds
  // c3's own keys, written only when not the default, so official folders load unchanged.
  QueryPositions query_positions = QueryPositions::kAfterText;  // c3_query_positions
  QueryMask query_mask = QueryMask::kCausal;                    // c3_query_mask
  QueryPooling query_pooling = QueryPooling::kNone;             // c3_query_pooling

  // Reads both configs; errors name the key and the file. Checks that the encoder hidden size
  // agrees with contexts_compression_llm_hidden_size.
  static C3Config from_dir(const std::string& dir);
  nlohmann::json decoder_json() const;  // Qwen2 keys + model_type "C3" + the cascade's keys
};

}  // namespace c3::cascade
