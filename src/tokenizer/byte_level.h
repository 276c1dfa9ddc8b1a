// GPT-2's byte-level alphabet: every byte maps to a printable code point, so BPE runs on text.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace c3::tokenizer {

struct ByteLevel {
  std::array<uint32_t, 256> byte_to_cp;    // byte -> code point of its printable stand-in
  std::array<uint8_t, 256> order;          // bytes in GPT-2's vocabulary order (ids 0..255)
  std::array<int16_t, 324> cp_to_byte;     // inverse of byte_to_cp (-1 elsewhere); max cp is 323
};

const ByteLevel& byte_level();

// Maps raw bytes to the byte-level string used in vocab.json / tokenizer.json ("Ġthe").
std::string bytes_to_token(std::string_view bytes);

// Maps a byte-level string back to bytes; false when a character is not in the alphabet.
bool token_to_bytes(std::string_view token, std::string& out);

}  // namespace c3::tokenizer
