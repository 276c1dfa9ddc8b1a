// StreamingDecoder: turns ids into text as they are generated, never emitting half a character.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/bpe_tokenizer.h"

namespace c3::tokenizer {

// Feeds ids one at a time and returns only complete UTF-8 text, never half a character. The
// concatenation of everything returned, flush() included, equals decode() of all the ids.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const BpeTokenizer& tok, bool skip_special_tokens = false)
      : tok_(&tok), skip_special_(skip_special_tokens) {}
  std::string feed(int32_t id);
  std::string feed(const std::vector<int32_t>& ids);
  // The held-back bytes of an unfinished character, as U+FFFD; call at the end of the stream.
  std::string flush();

 private:
  std::string take_complete();
  const BpeTokenizer* tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace c3::tokenizer
