// Added tokens ("<|im_end|>", "<img>", ...): found in the text before pre-tokenization, as HF does.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace c3::tokenizer {

// One entry of tokenizer.json's "added_tokens", flags with HF's meaning.
struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;      // dropped by decode(skip_special_tokens=true)
  bool normalized = false;   // matched in the normalized text instead of the raw text
  bool lstrip = false;       // the match also swallows whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool single_word = false;  // only matches when not inside a word
};

// One piece of a split: an added token (token >= 0) or plain text to pre-tokenize (token < 0).
struct TextPiece {
  int32_t token;
  size_t begin, end;
};

// Finds the leftmost-longest occurrences of a set of strings (a byte trie; HF uses Aho-Corasick
// with LeftmostLongest, which gives the same matches).
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  bool empty() const { return tokens_.empty(); }
  // Splits `text` like HF's AddedVocabulary::find_matches, appending pieces (empty ones dropped).
  void split(std::string_view text, std::vector<TextPiece>& out) const;

 private:
  // Longest token that starts at text[i], or -1.
  int match_at(std::string_view text, size_t i, size_t& len) const;
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
    int32_t token = -1;                             // index in tokens_ ending here
  };
  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
};

// Rust's char::is_whitespace (the Unicode White_Space property), used by lstrip/rstrip.
bool is_unicode_whitespace(uint32_t cp);

}  // namespace c3::tokenizer
