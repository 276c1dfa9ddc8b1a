// Chunking: split into units at the coarsest boundary that fits, then pack units greedily.
#include "c3/chunker.h"

#include <algorithm>

#include "util/error.h"

namespace c3::cascade {

namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }
bool is_utf8_start(char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }

enum class Level { Paragraph, Sentence, Word, Char };

// Cut positions (unit starts, excluding 0) inside text[b, e) at the given level.
std::vector<size_t> cuts(std::string_view t, size_t b, size_t e, Level level) {
  std::vector<size_t> out;
  for (size_t i = b; i < e; ++i) {
    if (level == Level::Char) {
      if (i > b && is_utf8_start(t[i])) out.push_back(i);
      continue;
    }
    if (!is_space(t[i])) continue;
    size_t j = i;
    while (j < e && is_space(t[j])) ++j;  // whitespace run [i, j)
    bool cut = false;
    if (level == Level::Word) {
      cut = true;
    } else if (level == Level::Paragraph) {
      cut = std::count(t.begin() + i, t.begin() + j, '\n') >= 2;
    } else {  // sentence: the run follows . ! ? (possibly closed by quotes/brackets)
      size_t k = i;
      while (k > b && (t[k - 1] == '"' || t[k - 1] == '\'' || t[k - 1] == ')' || t[k - 1] == ']')) --k;
      cut = k > b && (t[k - 1] == '.' || t[k - 1] == '!' || t[k - 1] == '?') ;
      cut = cut || std::count(t.begin() + i, t.begin() + j, '\n') >= 1;
    }
    if (cut && j < e) out.push_back(j);  // a unit keeps its trailing whitespace
    i = j - 1;
  }
  return out;
}

int64_t count_tokens(const tokenizer::BpeTokenizer& tok, std::string_view t) {
  return static_cast<int64_t>(tok.encode(t).size());
}

// Appends units of text[b, e) each of at most max_tokens tokens, splitting ever finer.
void units(const tokenizer::BpeTokenizer& tok, std::string_view t, size_t b, size_t e,
           int64_t max_tokens, Level level, std::vector<std::pair<size_t, size_t>>& out) {
  if (b >= e) return;
  if (level == Level::Char || count_tokens(tok, t.substr(b, e - b)) <= max_tokens) {
    if (level != Level::Char) {
      out.emplace_back(b, e);
      return;
    }
  }
  const Level finer = static_cast<Level>(static_cast<int>(level) + 1);
  std::vector<size_t> cs = cuts(t, b, e, level);
  if (level == Level::Char) {
    // One code point per unit; the packer merges them back up to the budget.
    size_t start = b;
    for (size_t c : cs) {
      out.emplace_back(start, c);
      start = c;
    }
    out.emplace_back(start, e);
    return;
  }
  size_t start = b;
  cs.push_back(e);
  for (size_t c : cs) {
    units(tok, t, start, c, max_tokens, finer, out);
    start = c;
  }
}

}  // namespace

std::vector<Chunk> split_into_chunks(const tokenizer::BpeTokenizer& tok, std::string_view text,
                                     int64_t max_tokens) {
  C3_CHECK(max_tokens > 0, "chunk size must be positive, got {}", max_tokens);
  std::vector<std::pair<size_t, size_t>> us;
  units(tok, text, 0, text.size(), max_tokens, Level::Paragraph, us);
  std::vector<Chunk> chunks;
  size_t i = 0;
  while (i < us.size()) {
    // Grow [us[i].first, us[j].second) while it stays within budget: exponential then linear
    // probing keeps tokenization cost near-linear.
    size_t j = i;
    std::vector<int32_t> best = tok.encode(text.substr(us[i].first, us[i].second - us[i].first));
    size_t step = 1;
    while (j + 1 < us.size()) {
      size_t k = std::min(us.size() - 1, j + step);
      auto ids = tok.encode(text.substr(us[i].first, us[k].second - us[i].first));
      if (static_cast<int64_t>(ids.size()) <= max_tokens) {
        j = k;
        best = std::move(ids);
        step *= 2;
      } else if (step > 1) {
        step = 1;
      } else {
        break;
      }
    }
    Chunk c;
    c.byte_begin = static_cast<int64_t>(us[i].first);
    c.byte_end = static_cast<int64_t>(us[j].second);
    c.ids = std::move(best);
    if (!c.ids.empty()) chunks.push_back(std::move(c));
    else if (!chunks.empty()) chunks.back().byte_end = static_cast<int64_t>(us[j].second);
    i = j + 1;
  }
  return chunks;
}

size_t block_boundary(std::string_view t, size_t limit) {
  if (t.size() <= limit) return t.size();
  for (const char* sep : {"\n\n", "\n", " "}) {
    size_t p = t.rfind(sep, limit - std::string_view(sep).size());
    if (p != std::string_view::npos && p > limit / 2) return p + std::string_view(sep).size();
  }
  size_t p = limit;
  while (p > 0 && !is_utf8_start(t[p])) --p;
  return p > 0 ? p : limit;
}

}  // namespace c3::cascade
