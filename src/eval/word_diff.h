// A compact word diff of a regenerated text against its source, as `git diff --word-diff` marks
// it: [-removed words-] and {+inserted words+}, unchanged words as they are.
#pragma once
#include <string>
#include <string_view>

namespace c3::eval {

struct WordDiff {
  std::string marked;     // the source with the edits marked
  int64_t words = 0;      // words in the source
  int64_t changed = 0;    // source words removed or replaced
  int64_t inserted = 0;   // words in the regenerated text that the source lacks
};

// Aligns the two texts word by word (a longest common subsequence over whitespace-separated
// words; whitespace is kept as the source has it). Runs of unchanged words longer than
// 2 * `context` + 1 are shortened to their first and last `context` words around " … ", so a
// long passage with one slip stays readable; `context` < 0 keeps everything.
WordDiff word_diff(std::string_view source, std::string_view regenerated, int context = -1);

}  // namespace c3::eval
