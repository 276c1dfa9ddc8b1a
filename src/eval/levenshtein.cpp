// Bit-parallel Levenshtein distance (Myers/Hyyrö blocks) plus the plain DP and a UTF-8 decoder.
#include "eval/levenshtein.h"

#include <algorithm>
#include <array>
#include <unordered_map>
#include <vector>

namespace c3::eval {
namespace {

constexpr uint64_t kHigh = uint64_t(1) << 63;

// One column step of one 64-row block (Hyyrö 2003, as edlib writes it). Pv/Mv hold the vertical
// deltas (+1/-1) of the block; hin is the horizontal delta entering at its top row. Returns the
// horizontal delta leaving at the row selected by `out_bit`. Bits only flow upward (carries and
// left shifts), so rows above `out_bit` in a partial last block cannot disturb the result.
inline int advance_block(uint64_t& pv, uint64_t& mv, uint64_t eq, int hin, uint64_t out_bit) {
  const uint64_t hin_neg = hin < 0 ? 1 : 0;
  const uint64_t hin_pos = hin > 0 ? 1 : 0;
  const uint64_t xv = eq | mv;
  eq |= hin_neg;
  const uint64_t xh = (((eq & pv) + pv) ^ pv) | eq;
  uint64_t ph = mv | ~(xh | pv);
  uint64_t mh = pv & xh;
  const int hout = (ph & out_bit) ? 1 : (mh & out_bit) ? -1 : 0;
  ph = (ph << 1) | hin_pos;
  mh = (mh << 1) | hin_neg;
  pv = mh | ~(xv | ph);
  mv = ph & xv;
  return hout;
}

// Match masks of the pattern: row r (one per distinct pattern code point, W words each) has bit i
// of word b set where pattern[64 b + i] is that code point. The last row is all zeros, shared by
// every text code point absent from the pattern. `text_rows` maps each text position to its row
// offset, so the hot loop does no hashing.
struct PatternMasks {
  size_t words = 0;
  std::vector<uint64_t> peq;
  std::vector<size_t> text_rows;
};

PatternMasks build_masks(std::u32string_view pattern, std::u32string_view text) {
  PatternMasks pm;
  pm.words = (pattern.size() + 63) / 64;
  // Latin-1 gets a direct table (most text); the rest goes through a hash map.
  std::array<int32_t, 256> small;
  small.fill(-1);
  std::unordered_map<char32_t, int32_t> large;
  int32_t n_rows = 0;
  auto row_of = [&](char32_t c, bool insert) -> int32_t {
    if (c < 256) {
      if (small[c] < 0 && insert) small[c] = n_rows++;
      return small[c];
    }
    auto it = large.find(c);
    if (it != large.end()) return it->second;
    if (!insert) return -1;
    large.emplace(c, n_rows);
    return n_rows++;
  };
  std::vector<int32_t> pattern_rows(pattern.size());
  for (size_t i = 0; i < pattern.size(); ++i) pattern_rows[i] = row_of(pattern[i], true);
  pm.peq.assign(size_t(n_rows + 1) * pm.words, 0);
  for (size_t i = 0; i < pattern.size(); ++i) {
    pm.peq[size_t(pattern_rows[i]) * pm.words + i / 64] |= uint64_t(1) << (i % 64);
  }
  pm.text_rows.resize(text.size());
  for (size_t j = 0; j < text.size(); ++j) {
    const int32_t r = row_of(text[j], false);
    pm.text_rows[j] = size_t(r < 0 ? n_rows : r) * pm.words;
  }
  return pm;
}

// Distance with pattern.size() >= 1. Column by column over the text; the score is tracked at the
// pattern's last row, which starts at m (row m of column 0) and moves by the last block's hout.
int64_t myers_hyyro(std::u32string_view pattern, std::u32string_view text) {
  const PatternMasks pm = build_masks(pattern, text);
  const size_t m = pattern.size(), w = pm.words;
  const uint64_t last_bit = uint64_t(1) << ((m - 1) % 64);
  int64_t score = int64_t(m);
  if (w == 1) {  // the common short case: keep the state in registers
    uint64_t pv = ~uint64_t(0), mv = 0;
    for (size_t row : pm.text_rows) score += advance_block(pv, mv, pm.peq[row], 1, last_bit);
    return score;
  }
  std::vector<uint64_t> pv(w, ~uint64_t(0)), mv(w, 0);
  for (size_t row : pm.text_rows) {
    const uint64_t* eq = pm.peq.data() + row;
    int h = 1;  // row 0 is D[0][j] = j: it grows by one per text column
    for (size_t b = 0; b + 1 < w; ++b) h = advance_block(pv[b], mv[b], eq[b], h, kHigh);
    score += advance_block(pv[w - 1], mv[w - 1], eq[w - 1], h, last_bit);
  }
  return score;
}

}  // namespace

int64_t levenshtein(const std::u32string& a, const std::u32string& b) {
  std::u32string_view x(a), y(b);
  // A common prefix or suffix never changes the distance; dropping it is free and often large.
  size_t pre = 0;
  while (pre < x.size() && pre < y.size() && x[pre] == y[pre]) ++pre;
  x.remove_prefix(pre);
  y.remove_prefix(pre);
  while (!x.empty() && !y.empty() && x.back() == y.back()) {
    x.remove_suffix(1);
    y.remove_suffix(1);
  }
  if (x.size() > y.size()) std::swap(x, y);  // the pattern (rows) is the shorter one
  if (x.empty()) return int64_t(y.size());
  return myers_hyyro(x, y);
}

int64_t levenshtein_dp(const std::u32string& a, const std::u32string& b) {
  std::vector<int64_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = int64_t(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int64_t diag = row[0];  // D[i-1][j-1]
    row[0] = int64_t(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int64_t up = row[j];  // D[i-1][j]
      row[j] = std::min({up + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::u32string utf8_to_u32(std::string_view s) {
  constexpr char32_t kReplacement = 0xFFFD;
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = uint8_t(s[i]);
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    // The lead byte fixes the length and the allowed range of the second byte; narrowing that
    // range rejects overlongs (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
    size_t len = 0;
    char32_t cp = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {  // a continuation byte without a lead, C0/C1, or F5..FF
      out.push_back(kReplacement);
      ++i;
      continue;
    }
    size_t k = 1;
    for (; k < len && i + k < n; ++k) {
      const uint8_t d = uint8_t(s[i + k]);
      if (d < lo || d > hi) break;
      lo = 0x80, hi = 0xBF;
      cp = (cp << 6) | (d & 0x3F);
    }
    if (k == len) {
      out.push_back(cp);
      i += len;
    } else {  // the bad byte is not consumed: it may start the next sequence
      out.push_back(kReplacement);
      i += k;
    }
  }
  return out;
}

}  // namespace c3::eval
