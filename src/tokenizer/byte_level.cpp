// The byte <-> code point table of GPT-2's bytes_to_unicode(), built once.
#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace c3::tokenizer {

static ByteLevel build() {
  ByteLevel t{};
  t.cp_to_byte.fill(-1);
  // Printable Latin-1 bytes keep their own code point; the other 68 bytes take 256, 257, ...
  // in byte order. The vocabulary lists the printable ones first, as GPT-2 does.
  bool printable[256] = {};
  int n = 0;
  auto keep = [&](int lo, int hi) {
    for (int b = lo; b <= hi; ++b) {
      printable[b] = true;
      t.byte_to_cp[b] = b;
      t.order[n++] = static_cast<uint8_t>(b);
    }
  };
  keep('!', '~');
  keep(0xA1, 0xAC);
  keep(0xAE, 0xFF);
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    if (printable[b]) continue;
    t.byte_to_cp[b] = next++;
    t.order[n++] = static_cast<uint8_t>(b);
  }
  for (int b = 0; b < 256; ++b) t.cp_to_byte[t.byte_to_cp[b]] = static_cast<int16_t>(b);
  return t;
}

const ByteLevel& byte_level() {
  static const ByteLevel table = build();
  return table;
}

std::string bytes_to_token(std::string_view bytes) {
  const ByteLevel& bl = byte_level();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(out, bl.byte_to_cp[b]);
  return out;
}

bool token_to_bytes(std::string_view token, std::string& out) {
  const ByteLevel& bl = byte_level();
  size_t i = 0;
  while (i < token.size()) {
    uint32_t cp = next_codepoint(token, i);
    if (cp >= bl.cp_to_byte.size() || bl.cp_to_byte[cp] < 0) return false;
    out.push_back(static_cast<char>(bl.cp_to_byte[cp]));
  }
  return true;
}

}  // namespace c3::tokenizer
