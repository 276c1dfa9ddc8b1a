// UTF-8 helpers shared by the tokenizer: validation with byte offsets and lossy repair.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace c3::tokenizer {

// What sits at one position of a byte string.
struct Utf8Step {
  int len = 0;           // bytes consumed: a whole code point, or one maximal invalid subpart
  bool valid = false;    // a well-formed code point
  bool truncated = false;  // invalid only because the input ends mid-sequence
};

// Classifies the bytes at s[0..n) (n >= 1) per Unicode Table 3-7. An invalid step covers the
// "maximal subpart" (Unicode 3.9, U+FFFD substitution), as Rust's from_utf8_lossy and HF do.
Utf8Step utf8_step(const uint8_t* s, size_t n);

// Byte offset of the first invalid sequence, or std::string_view::npos when all of `s` is valid.
size_t find_invalid_utf8(std::string_view s);

// `s` with each maximal invalid subpart replaced by U+FFFD (HF's decode does exactly this).
std::string to_valid_utf8(std::string_view s);

// Decodes the code point at s[i] of a valid string and advances i.
uint32_t next_codepoint(std::string_view s, size_t& i);

// Appends the UTF-8 encoding of `cp`.
void append_utf8(std::string& out, uint32_t cp);

}  // namespace c3::tokenizer
