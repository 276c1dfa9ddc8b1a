// The tokenizer.json "pre_tokenizer": regex Splits (PCRE2, UTF + UCP, JIT) and ByteLevel.
#pragma once
#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace c3::tokenizer {

// The pre-tokenizer regexes of Qwen2 (also used by our trainer) and GPT-2, as HF writes them.
extern const char* const kQwen2Pattern;
extern const char* const kGpt2Pattern;

// A compiled PCRE2 pattern. HF compiles these patterns with Oniguruma; the two engines agree
// except on what `\s` means, so `\s`/`\S` are rewritten to Oniguruma's set first (PCRE2 adds
// U+180E). Matching is thread-safe: match data and the JIT stack are per thread.
//
// The Qwen2 pattern also has a hand-written matcher for matches made of ASCII only; any match
// that would look at a non-ASCII character goes to PCRE2. On English text this removes most of
// the regex cost (tests compare the two on random strings).
class Regex {
 public:
  explicit Regex(const std::string& pattern, bool allow_fast_path = true);
  const std::string& pattern() const { return pattern_; }
  // Calls f(begin, end) for each non-overlapping match of `s` (valid UTF-8), left to right.
  template <typename F>
  void for_each_match(std::string_view s, F&& f) const {
    size_t pos = 0;
    size_t b, e;
    while (pos <= s.size()) {
      if (fast_) {
        if (pos == s.size()) break;  // the fast patterns never match the empty string
        if (fast_(s, pos, e)) {
          f(pos, e);
          pos = e;
          continue;
        }
      }
      if (!find(s, pos, b, e)) break;
      f(b, e);
      pos = e > b ? e : next_char(s, e);
    }
  }

 private:
  using FastMatch = bool (*)(std::string_view s, size_t pos, size_t& end);
  bool find(std::string_view s, size_t from, size_t& begin, size_t& end) const;
  static size_t next_char(std::string_view s, size_t i);
  std::string pattern_;
  std::shared_ptr<void> code_;  // pcre2_code_8
  FastMatch fast_ = nullptr;
};

// Rewrites Oniguruma's `\s` and `\S` into explicit classes for PCRE2 (exposed for tests).
std::string onig_to_pcre2(const std::string& pattern);

class PreTokenizer {
 public:
  // Reads the "pre_tokenizer" value: Split, ByteLevel or a Sequence of them. ByteLevel's byte
  // mapping itself happens in the BPE model, which works on raw bytes.
  static PreTokenizer from_json(const nlohmann::json& j);
  // The Qwen2 pre-tokenizer (Split with kQwen2Pattern, Isolated; ByteLevel without regex).
  static PreTokenizer qwen2();

  // Splits `text` into words, appended to `words`. Words point into `text`, or into `scratch`
  // when a step changed the bytes (ByteLevel add_prefix_space); empty words are dropped.
  void split(std::string_view text, std::vector<std::string_view>& words,
             std::deque<std::string>& scratch) const;

 private:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  struct Step {
    std::shared_ptr<Regex> regex;  // null: no splitting (ByteLevel without use_regex)
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;
  };
  static void add_from_json(const nlohmann::json& j, std::vector<Step>& steps);
  static void apply(const Step& st, std::string_view piece, std::vector<std::string_view>& out,
                    std::deque<std::string>& scratch);
  std::vector<Step> steps_;
};

}  // namespace c3::tokenizer
