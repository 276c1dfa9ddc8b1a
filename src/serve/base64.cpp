// Base64 through OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock.
#include "serve/base64.h"

#include <openssl/evp.h>

#include <cstring>

#include "util/error.h"

namespace c3::serve {

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string base64_decode(std::string_view text, const std::string& what) {
  static constexpr const char* kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  // OpenSSL would skip some whitespace and stop at other bytes; check every character first.
  for (size_t i = 0; i + pad < text.size(); ++i) {
    if (text[i] == '\0' || !std::strchr(kAlphabet, text[i]))
      fail("{} is not base64: character {} ('{}') is outside A-Z a-z 0-9 + / (padding '=' only "
           "at the end). Send the .c3 file's bytes base64-encoded, as /v1/compress returns them.",
           what, i, text[i] == '\0' ? std::string("\\0") : std::string(1, text[i]));
  }
  C3_CHECK(text.size() % 4 == 0, "{} is not base64: its length {} is not a multiple of 4 (is it "
           "cut short?)", what, text.size());
  C3_CHECK(text.size() / 4 <= static_cast<size_t>(INT32_MAX / 3), "{} is too long", what);
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  C3_CHECK(n >= 0, "{} is not base64", what);
  out.resize(static_cast<size_t>(n) - pad);  // EVP_DecodeBlock counts the padding as zero bytes
  return out;
}

}  // namespace c3::serve
