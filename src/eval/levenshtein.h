// Levenshtein edit distance over Unicode code points, bit-parallel so long passages stay cheap.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace c3::eval {

// Edit distance (unit-cost insert, delete, substitute) between two code-point strings.
// Myers (1999) bit-vector algorithm in Hyyrö's (2003) multi-word block form: the shorter string
// is the pattern, cut into 64-row blocks, so the cost is O(ceil(m / 64) * n) word operations
// after stripping the common prefix and suffix. Two 16k-code-point passages take milliseconds.
int64_t levenshtein(const std::u32string& a, const std::u32string& b);

// The textbook O(|a| * |b|) dynamic programme with one row of memory: the reference that tests
// and the benchmark compare `levenshtein` against.
int64_t levenshtein_dp(const std::u32string& a, const std::u32string& b);

// Decodes UTF-8 into code points. Never throws: each maximal invalid subsequence (a stray
// continuation byte, a truncated sequence, an overlong form, a surrogate, > U+10FFFF) becomes one
// U+FFFD, the same replacement Python's `bytes.decode(errors="replace")` makes.
std::u32string utf8_to_u32(std::string_view s);

}  // namespace c3::eval
