// Writes the HF tokenizer.json of a byte-level BPE with the Qwen2 pre-tokenizer and NFC (what
// `c3 tokenizer train` learns and what `c3 tokenizer convert` makes of a qwen.tiktoken).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/added_tokens.h"

namespace c3::tokenizer {

struct HfBpeJson {
  std::vector<std::string> tokens;                  // token bytes by id (0 .. n-1)
  std::vector<std::pair<int32_t, int32_t>> merges;  // (left id, right id), highest priority first
  std::vector<AddedToken> added;                    // ids from n on
  bool ignore_merges = false;  // a pre-token that is a whole token is that token (tiktoken's rule)
};

// HF's layout, written by hand: a 151k-entry object through nlohmann's ordered_json would cost
// a linear search per key.
std::string hf_tokenizer_json(const HfBpeJson& spec);

}  // namespace c3::tokenizer
