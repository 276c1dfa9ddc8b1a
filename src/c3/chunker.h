// Splits long text into passages of at most N tokens at paragraph, sentence, then whitespace
// boundaries (a hard split at a UTF-8 character boundary only for a single over-long word).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe_tokenizer.h"

namespace c3::cascade {

struct Chunk {
  int64_t byte_begin = 0, byte_end = 0;  // [begin, end) in the input; chunks tile the input
  std::vector<int32_t> ids;              // tokens of text[begin, end)
};

// Concatenating the chunks' texts gives `text` back exactly. Every chunk has 1..max_tokens tokens.
std::vector<Chunk> split_into_chunks(const tokenizer::BpeTokenizer& tok, std::string_view text,
                                     int64_t max_tokens);

// Largest prefix length of `text` (in bytes) that ends at a paragraph break ("\n\n"), else at a
// line break, else at whitespace, else at a UTF-8 boundary, and is at most `limit` bytes; used to
// stream huge inputs block by block.
size_t block_boundary(std::string_view text, size_t limit);

}  // namespace c3::cascade
