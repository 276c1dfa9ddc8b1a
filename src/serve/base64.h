// Base64 (RFC 4648, standard alphabet, padded), as .c3 files travel inside JSON: OpenSSL's codec,
// with the position of the first bad character in errors.
#pragma once
#include <string>
#include <string_view>

namespace c3::serve {

std::string base64_encode(std::string_view bytes);

// Throws c3::Error naming `what` and the offset of the first character that is not base64, or
// saying the length is not a multiple of 4.
std::string base64_decode(std::string_view text, const std::string& what);

}  // namespace c3::serve
