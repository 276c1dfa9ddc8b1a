// Word diff: split into words, align by a longest common subsequence, mark the edits.
#include "eval/word_diff.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace c3::eval {
namespace {

struct Word {
  std::string_view text;  // the word
  std::string_view gap;   // the whitespace after it
};

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

// Words with their trailing whitespace; `lead` receives the whitespace before the first word.
std::vector<Word> split_words(std::string_view s, std::string_view* lead) {
  size_t i = 0;
  while (i < s.size() && is_space(s[i])) ++i;
  if (lead) *lead = s.substr(0, i);
  std::vector<Word> out;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    size_t k = j;
    while (k < s.size() && is_space(s[k])) ++k;
    out.push_back({s.substr(i, j - i), s.substr(j, k - j)});
    i = k;
  }
  return out;
}

enum class Op { kSame, kRemoved, kInserted };
struct Edit {
  Op op;
  const Word* word;
};

// Edit script from a to b. The common prefix and suffix are matched directly; the middle by an
// LCS table when it is small enough, else as one replacement (a regenerated text that far off
// gains nothing from a finer alignment).
std::vector<Edit> align(const std::vector<Word>& a, const std::vector<Word>& b) {
  size_t pre = 0;
  while (pre < a.size() && pre < b.size() && a[pre].text == b[pre].text) ++pre;
  size_t suf = 0;
  while (suf < a.size() - pre && suf < b.size() - pre &&
         a[a.size() - 1 - suf].text == b[b.size() - 1 - suf].text)
    ++suf;
  const size_t n = a.size() - pre - suf, m = b.size() - pre - suf;
  std::vector<Edit> out;
  for (size_t i = 0; i < pre; ++i) out.push_back({Op::kSame, &a[i]});
  constexpr size_t kMaxCells = size_t{1} << 24;
  if (n > 0 && m > 0 && (n + 1) * (m + 1) <= kMaxCells) {
    // lcs[i][j]: LCS length of a[pre+i..] and b[pre+j..] (suffix form, so the walk goes forward).
    std::vector<uint32_t> lcs((n + 1) * (m + 1), 0);
    auto at = [&](size_t i, size_t j) -> uint32_t& { return lcs[i * (m + 1) + j]; };
    for (size_t i = n; i-- > 0;)
      for (size_t j = m; j-- > 0;)
        at(i, j) = a[pre + i].text == b[pre + j].text ? at(i + 1, j + 1) + 1
                                                      : std::max(at(i + 1, j), at(i, j + 1));
    size_t i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[pre + i].text == b[pre + j].text) {
        out.push_back({Op::kSame, &a[pre + i++]});
        ++j;
      } else if (i < n && (j == m || at(i + 1, j) >= at(i, j + 1))) {
        out.push_back({Op::kRemoved, &a[pre + i++]});  // removals first, as git shows them
      } else {
        out.push_back({Op::kInserted, &b[pre + j++]});
      }
    }
  } else {
    for (size_t i = 0; i < n; ++i) out.push_back({Op::kRemoved, &a[pre + i]});
    for (size_t j = 0; j < m; ++j) out.push_back({Op::kInserted, &b[pre + j]});
  }
  for (size_t i = a.size() - suf; i < a.size(); ++i) out.push_back({Op::kSame, &a[i]});
  return out;
}

// A word and the whitespace after it; a word the source ends on still gets a space before a mark.
void emit(std::string& out, const Word& w, bool at_end) {
  out += w.text;
  out += w.gap.empty() && !at_end ? std::string_view(" ") : w.gap;
}

}  // namespace

WordDiff word_diff(std::string_view source, std::string_view regenerated, int context) {
  std::string_view lead;
  const std::vector<Word> a = split_words(source, &lead);
  const std::vector<Word> b = split_words(regenerated, nullptr);
  const std::vector<Edit> edits = align(a, b);

  WordDiff d;
  d.words = static_cast<int64_t>(a.size());
  d.marked = std::string(lead);
  size_t k = 0;
  while (k < edits.size()) {
    size_t end = k;
    while (end < edits.size() && edits[end].op == edits[k].op) ++end;
    const Op op = edits[k].op;
    if (op == Op::kSame) {
      const size_t run = end - k;
      const size_t keep = context < 0 ? run : static_cast<size_t>(context);
      const bool first = k == 0, last = end == edits.size();
      // Words of the run to show at its start and at its end.
      const size_t head = first && last ? run : first ? 0 : std::min(run, keep);
      const size_t tail = last ? 0 : std::min(run - head, keep);
      const bool shorten = context >= 0 && head + tail < run;
      for (size_t i = k; i < end; ++i) {
        if (shorten && i == k + head) d.marked += "\u2026 ";
        if (!shorten || i < k + head || i >= end - tail) emit(d.marked, *edits[i].word, i + 1 == edits.size());
      }
    } else {
      const bool removed = op == Op::kRemoved;
      d.marked += removed ? "[-" : "{+";
      for (size_t i = k; i < end; ++i) {
        d.marked += edits[i].word->text;
        if (i + 1 < end) d.marked += " ";
      }
      d.marked += removed ? "-]" : "+}";
      const std::string_view gap = edits[end - 1].word->gap;
      d.marked += gap.empty() && end < edits.size() ? std::string_view(" ") : gap;
      (removed ? d.changed : d.inserted) += static_cast<int64_t>(end - k);
    }
    k = end;
  }
  return d;
}

}  // namespace c3::eval
