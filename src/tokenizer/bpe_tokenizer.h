// BpeTokenizer: loads an HF tokenizer.json (byte-level BPE, GPT-2 / Qwen2 family) or Qwen's
// qwen.tiktoken and encodes and decodes exactly as HF tokenizers / QWenTokenizer do.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/added_tokens.h"

namespace c3::tokenizer {

class BpeTokenizer {
 public:
  // Reads tokenizer.json. Unsupported features (another model type, byte_fallback, a Metaspace
  // pre-tokenizer, ...) throw c3::Error naming the key and the file.
  static BpeTokenizer from_file(const std::string& path);
  // The same from the file's text; `origin` names it in error messages.
  static BpeTokenizer from_json(std::string_view json_text, const std::string& origin = "<json>");
  // Reads a qwen.tiktoken (tiktoken_file.h) as QWenTokenizer does: NFC, the Qwen2 pre-tokenizer
  // regex, rank-ordered merges, and its special tokens after the last rank, all allowed in text.
  // A tokenizer_config.json beside it must not name another tokenizer_class. Errors name the
  // file and the line. (load_tokenizer() in tokenizer_files.h picks between the two formats.)
  static BpeTokenizer from_tiktoken(const std::string& path);

  // Token ids of `text` as HF's encode(text, add_special_tokens=False): added tokens in the text
  // (special or not) become their ids. Invalid UTF-8 throws c3::Error with the byte offset.
  // Thread-safe: each thread keeps its own word cache and regex match data.
  std::vector<int32_t> encode(std::string_view text) const;
  // Like encode(), but each invalid byte sequence becomes U+FFFD first (never throws on bytes).
  std::vector<int32_t> encode_lossy(std::string_view text) const;
  // Appends the ids of `text` to `out` (saves an allocation per call in hot loops).
  void encode_to(std::string_view text, std::vector<int32_t>& out) const;

  // Text of `ids` as HF's decode(): the tokens' bytes joined, invalid UTF-8 shown as U+FFFD.
  // Ids that name no token are skipped, as HF does.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // The raw bytes a token stands for (possibly part of a UTF-8 character); empty if unknown.
  std::string_view token_bytes(int32_t id) const;

  int32_t token_id(std::string_view token) const;  // -1 when absent
  std::string id_to_token(int32_t id) const;       // "Ġthe", "<|im_end|>"; "" when absent
  bool is_special(int32_t id) const;
  int64_t vocab_size() const;                      // max id + 1, added tokens included
  const std::string& file_hash() const;  // XXH3-128 of the file's bytes (.json or .tiktoken)
  const std::string& origin() const;     // the file it was read from (for messages)
  const std::vector<AddedToken>& added_tokens() const;

  struct Impl;

 private:
  BpeTokenizer() = default;  // only from_file / from_json / from_tiktoken make one
  std::shared_ptr<const Impl> impl_;
};

}  // namespace c3::tokenizer
