// libFuzzer target: encode, encode_lossy and decode of arbitrary bytes with the shipped tokenizer.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "tokenizer/bpe_tokenizer.h"
#include "util/atomic_file.h"
#include "util/error.h"

using c3::tokenizer::BpeTokenizer;

static const BpeTokenizer& tokenizer() {
  static const BpeTokenizer tok = [] {
    const char* env = std::getenv("C3_FUZZ_TOKENIZER");
    const std::string path = env && *env ? env : C3_FUZZ_TOKENIZER_DEFAULT;
    return BpeTokenizer::from_json(c3::read_file(path), path);
  }();
  return tok;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const BpeTokenizer& tok = tokenizer();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // Lossy encode never throws; decoding its ids must give valid UTF-8 back.
  std::vector<int32_t> ids = tok.encode_lossy(text);
  std::string back = tok.decode(ids);
  try {
    std::vector<int32_t> strict = tok.encode(text);
    // Valid UTF-8 input: the lossy path must agree with the strict one.
    if (strict != ids) std::abort();
  } catch (const c3::Error&) {
  }
  // Arbitrary ids (out of range included) must be rejected cleanly or decoded.
  std::vector<int32_t> raw(size / 4);
  if (!raw.empty()) std::memcpy(raw.data(), data, raw.size() * 4);
  try {
    (void)tok.decode(raw, size % 2 == 0);
  } catch (const c3::Error&) {
  }
  return 0;
}
