// Leftmost-longest matching of added tokens with HF's lstrip / rstrip / single_word handling.
#include "tokenizer/added_tokens.h"

#include <utf8proc.h>

#include <algorithm>

#include "tokenizer/utf8.h"

namespace c3::tokenizer {

bool is_unicode_whitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Rust's is_alphanumeric() || '_', approximated by the L and N general categories.
static bool is_word_char(uint32_t c) {
  if (c == '_') return true;
  if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// The code point that ends at byte `end` of a valid string.
static uint32_t codepoint_before(std::string_view s, size_t end, size_t& begin) {
  begin = end - 1;
  while (begin > 0 && (static_cast<uint8_t>(s[begin]) & 0xC0) == 0x80) --begin;
  size_t i = begin;
  return next_codepoint(s, i);
}

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  nodes_.emplace_back();
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const std::string& c = tokens_[t].content;
    if (c.empty()) continue;
    first_byte_[static_cast<uint8_t>(c[0])] = true;
    int32_t n = 0;
    for (unsigned char b : c) {
      auto& nx = nodes_[n].next;
      auto it = std::lower_bound(nx.begin(), nx.end(), std::make_pair(b, int32_t(-1)));
      if (it != nx.end() && it->first == b) {
        n = it->second;
      } else {
        int32_t fresh = static_cast<int32_t>(nodes_.size());
        nx.insert(it, {b, fresh});
        nodes_.emplace_back();
        n = fresh;
      }
    }
    if (nodes_[n].token < 0) nodes_[n].token = static_cast<int32_t>(t);  // first one wins
  }
}

int AddedTokenMatcher::match_at(std::string_view text, size_t i, size_t& len) const {
  int32_t n = 0, best = -1;
  for (size_t k = i; k < text.size(); ++k) {
    const auto& nx = nodes_[n].next;
    const uint8_t b = static_cast<uint8_t>(text[k]);
    auto it = std::lower_bound(nx.begin(), nx.end(), std::make_pair(b, int32_t(-1)));
    if (it == nx.end() || it->first != b) break;
    n = it->second;
    if (nodes_[n].token >= 0) {
      best = nodes_[n].token;
      len = k + 1 - i;
    }
  }
  return best;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextPiece>& out) const {
  size_t start_offset = 0;  // end of what has been emitted
  size_t pos = 0;           // where the search goes on (the end of the raw match, as in HF)
  const size_t n = text.size();
  while (pos < n) {
    if (!first_byte_[static_cast<uint8_t>(text[pos])]) {
      ++pos;
      continue;
    }
    size_t len = 0;
    int t = match_at(text, pos, len);
    if (t < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[t];
    size_t start = pos, stop = pos + len;
    pos = stop;
    if (tok.single_word) {
      size_t b;
      bool word_before = start > 0 && is_word_char(codepoint_before(text, start, b));
      size_t j = stop;
      bool word_after = stop < n && is_word_char(next_codepoint(text, j));
      if (word_before || word_after) continue;
    }
    if (tok.lstrip) {
      size_t s = start;
      while (s > 0) {
        size_t b;
        if (!is_unicode_whitespace(codepoint_before(text, s, b))) break;
        s = b;
      }
      start = std::max(s, start_offset);  // spaces already taken by a previous match stay there
    }
    if (tok.rstrip) {
      while (stop < n) {
        size_t j = stop;
        if (!is_unicode_whitespace(next_codepoint(text, j))) break;
        stop = j;
      }
    }
    if (start_offset < start) out.push_back({-1, start_offset, start});
    out.push_back({tok.id, start, stop});
    start_offset = stop;
  }
  if (start_offset < n) out.push_back({-1, start_offset, n});
}

}  // namespace c3::tokenizer
