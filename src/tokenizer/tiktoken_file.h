// qwen.tiktoken: Qwen's tokenizer file (one "base64(token bytes) rank" line per token), the special
// tokens QWenTokenizer puts after it, and the merge table that tiktoken's rule amounts to.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace c3::tokenizer {

struct TiktokenFile {
  std::string path;
  std::vector<std::string> tokens;  // token bytes by rank; the rank is the id and the priority
  std::string hash;                 // XXH3-128 of the file's bytes (BpeTokenizer::file_hash)
};

// Reads a tiktoken BPE file. A malformed line (not "BASE64 RANK", bad base64, a rank that
// repeats or skips one, a token that repeats) or a missing single-byte token throws c3::Error
// naming the file and the line. Ranks must count up from 0 in file order, as tiktoken writes them.
TiktokenFile read_tiktoken(const std::string& path);
TiktokenFile parse_tiktoken(std::string_view text, const std::string& origin);

// QWenTokenizer's special tokens (tokenization_qwen.py), in id order from SPECIAL_START_ID, the
// first id after the ranks (151,643 for Qwen's file): <|endoftext|> <|im_start|> <|im_end|>
// <|extra_0|> ... <|extra_204|> <ref> </ref> <box> </box> <quad> </quad> <img> </img> <imgpad>.
const std::vector<std::string>& qwen_special_tokens();

// Checks a tokenizer_config.json that sits beside a qwen.tiktoken: its tokenizer_class, when
// given, must be QWenTokenizer, whose code fixes the special tokens above.
void check_qwen_tokenizer_config(const std::string& path);

// tiktoken merges the adjacent pair whose concatenation has the lowest rank. That is BPE over
// the merge table below: every split (left, right) of a token whose halves are both tokens,
// with the token's rank as the priority. Ordered by merged rank, then left rank, then right rank
// (transformers' TikTokenConverter writes this order).
struct TiktokenMerge {
  int32_t left, right, merged;
};
std::vector<TiktokenMerge> tiktoken_merges(const std::vector<std::string>& tokens);

// The equivalent HF tokenizer.json: byte-level vocabulary, the merges above, NFC, the Qwen2
// pre-tokenizer, the special tokens, ignore_merges (tiktoken looks a whole pre-token up first).
std::string tiktoken_to_hf_json(const TiktokenFile& f);

}  // namespace c3::tokenizer
