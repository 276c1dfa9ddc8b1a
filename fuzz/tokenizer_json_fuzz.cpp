// libFuzzer target: BpeTokenizer::from_json on arbitrary text, then a short encode/decode.
#include <cstdint>
#include <string_view>

#include "tokenizer/bpe_tokenizer.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto tok = c3::tokenizer::BpeTokenizer::from_json(text, "<fuzz>");
    auto ids = tok.encode_lossy("Hello world, 123 <|endoftext|> \xff caf\xc3\xa9\n");
    (void)tok.decode(ids);
  } catch (const c3::Error&) {
  }
  return 0;
}
