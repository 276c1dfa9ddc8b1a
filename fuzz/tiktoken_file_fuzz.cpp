// libFuzzer target: parse_tiktoken on arbitrary text, then the merge table it implies.
#include <cstdint>
#include <string_view>

#include "tokenizer/tiktoken_file.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto f = c3::tokenizer::parse_tiktoken(text, "<fuzz>");
    (void)c3::tokenizer::tiktoken_merges(f.tokens);
  } catch (const c3::Error&) {
  }
  return 0;
}
